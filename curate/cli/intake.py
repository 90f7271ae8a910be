"""`curate init`, `curate ingest`, `curate status`."""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from curate.cli.choices import SourceKind
from curate.cli.options import DbOpt, JsonOpt, WorkersOpt, WorkspaceOpt, open_workspace
from curate.output import console, print_json, printable, progress_bar, shown, table


def init(
    path: Annotated[Path, typer.Argument(help="Folder for the workspace (created if missing).")] = Path("."),
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a workspace: catalogue, image store, exports folder. Safe to re-run.

    Makes the workspace and everything in it private to you (folders 0700, files 0600/0400), also when
    it already exists. A PostgreSQL URL is remembered without its password ($PGPASSWORD or ~/.pgpass).

    Example: curate init ./mpox-study
    """
    from curate.workspace import Workspace

    ws = Workspace.init(path, db_url=db)
    if json_out:  # a script's first step: where the workspace is, what to pass as --workspace
        print_json({"workspace": str(ws.root), "catalogue": ws.describe_db()})
        return
    console.print(f"workspace ready at [bold]{shown(ws.root)}[/] (catalogue: {shown(ws.describe_db())})")


def ingest(
    folder: Annotated[Path, typer.Argument(help="Folder of photos, read recursively.")],
    source: Annotated[str, typer.Option("--source", "-s", help="Name of the source, e.g. clinic-2022 or kaggle-msid.")],
    kind: Annotated[SourceKind | None, typer.Option(help="Kind of source (default for a new source: clinic).")] = None,
    licence: Annotated[
        str | None, typer.Option("--licence", "--license", help="Licence of these images, e.g. CC-BY-4.0.")
    ] = None,
    label_from_folders: Annotated[
        bool,
        typer.Option(
            "--label-from-folders",
            help="Take each file's prior label from the nearest folder above it named after a declared diagnosis "
            "(e.g. Mpox/, 'Healthy skin/'); files under none get no label, counted in one warning.",
        ),
    ] = False,
    label_map: Annotated[
        Path | None, typer.Option(help="CSV (folder,label) or JSON mapping sub-folder names to prior labels.")
    ] = None,
    case_id_pattern: Annotated[
        str | None,
        typer.Option(
            help="Regex with a group (named 'case' or the first) that extracts a patient/case id "
            "from the relative path."
        ),
    ] = None,
    workers: WorkersOpt = 0,
    follow_symlinks: Annotated[
        bool,
        typer.Option("--follow-symlinks", help="Follow symlinks that lead out of FOLDER (default: skipped and named)."),
    ] = False,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add every photo under FOLDER to the store and catalogue, with its provenance.

    Images are recognised by content, not extension. FIFOs, devices, sockets, non-images and symlinks
    leading out of FOLDER are skipped and named; files over 100 MB are rejected unread.

    Example: curate ingest ~/exports/clinic --source clinic-2022 --case-id-pattern '(?P<case>P\\d{5})'
    """
    from dataclasses import replace

    from curate.audit import audited
    from curate.intake.ingest import IngestOptions, ingest_folder, load_label_map

    options = IngestOptions(  # a bad --source or --licence stops here, before the workspace is opened
        source=source,
        kind=kind and kind.value,
        licence=licence,
        label_from_folders=label_from_folders,
        label_map=load_label_map(label_map) if label_map else None,
        case_id_pattern=case_id_pattern,
        workers=workers,
        follow_symlinks=follow_symlinks,
    )
    ws = open_workspace(workspace, db)
    options = replace(options, diagnoses=declared(ws))
    args = {
        "source": source,
        # which folder, never its name (a patient's can be in it): an ingest of another folder into the same source
        # must not pass for the re-run that finishes a stopped one (`curate.status.unfinished_commands`)
        "folder_digest": hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:16],
        "kind": options.kind,
        "licence": licence,
        "label_from_folders": label_from_folders,
        "case_id_pattern": case_id_pattern,
        "follow_symlinks": follow_symlinks,
    }
    with audited(ws, "ingest", args) as run, progress_bar("ingest", json_out) as on_file:
        report = ingest_folder(ws, folder, options, run_id=run.id, on_file=on_file)
        run.summary = report.as_dict()
    if json_out:
        print_json(report.as_dict())
    else:
        render_ingest(report)


def declared(ws) -> tuple[str, ...]:
    """The workspace's declared diagnosis slugs: the only folder names a prior label is taken from."""
    return tuple(slug for slug, _ in ws.diagnoses.declared)


def render_ingest(report) -> None:
    """The per-label summary, the rejected and skipped files, then the case ids and warnings (an IngestReport)."""
    rows = [
        [k, v.get("added", 0), v.get("provenance", 0), v.get("known", 0), v.get("rejected", 0)]
        for k, v in sorted(report.per_class.items())
    ]
    rows.append(["total", report.added, report.provenance, report.known, len(report.rejected)])
    columns = ["label", "added", "new provenance", "already known", "rejected"]
    console.print(table("ingest summary (by prior label)", columns, rows))
    if report.rejected:
        console.print(table("rejected files", ["file", "reason"], [[f, r] for f, r in report.rejected[:50]]))
        if len(report.rejected) > 50:
            console.print(f"… and {len(report.rejected) - 50} more (see --json)")
    if report.skipped:
        console.print(table("skipped files", ["file", "why"], [[f, r] for f, r in report.skipped[:50]]))
    console.print(
        f"{report.files} files in {report.seconds:.1f} s ({report.images_per_second:.1f} images/s, "
        f"{report.bytes_read / 1e6:.0f} MB); {report.ignored} files skipped"
        f"{file_names([f for f, _ in report.skipped])}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    if report.case_ids is not None:
        console.print(f"case id pattern matched {report.case_ids} of {report.arrivals} files", highlight=False)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


def file_names(names: list[str], limit: int = 10) -> str:
    """': a, b and 3 more' for the end of a summary line; control characters in a name shown escaped."""
    if not names:
        return ""
    shown = ", ".join(printable(f) for f in names[:limit])
    return f": {shown}" + (f" and {len(names) - limit} more (see --json)" if len(names) > limit else "")


def status(workspace: WorkspaceOpt = None, db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Counts by source, stage and prior label; says which command is running now, and warns about unfinished
    runs, originals missing from the store, unreadable or listed by no row, exported versions holding images flagged
    identifiable since, and files other users can read.

    Example: curate status --json
    """
    from curate.export.flagged import FlaggedCopies, flagged_note
    from curate.lock import describe
    from curate.status import workspace_status

    ws = open_workspace(workspace, db)
    data = workspace_status(ws)
    if json_out:
        print_json(data)
        return
    console.print(
        table(
            "sources",
            ["source", "kind", "images", "arrivals", "rejected files"],
            [[r["source"], r["kind"], r["images"], r["arrivals"], r["rejected_files"]] for r in data["by_source"]],
        )
    )
    console.print(table("stages", ["stage", "images"], [[k, v] for k, v in data["stages"].items()]))
    console.print(
        table("prior labels", ["label", "images"], [[k, v] for k, v in sorted(data["by_prior_label"].items())])
    )
    if conflicting := data["conflicting_prior_labels"]:
        _warn(
            f"{conflicting} image(s) were ingested under two prior labels (the same bytes in two diagnoses' "
            "folders); the table above counts each under both"
        )
    if fresh := data["dedupe_not_compared"]:  # before: counted as clusters and "to label" with nothing said
        # not "run `curate dedupe`" while one runs: that invited a second (README: status names the running writer)
        deduping = (data["running_now"] or {}).get("command") == "dedupe"
        _warn(
            f"{fresh} image(s) in no dedupe cluster (ingested since the last `curate dedupe`, or unreadable to it): "
            "each counts above as a cluster of its own, and `curate label push` would send them, copies and all; "
            + (
                "the `curate dedupe` running now compares them"
                if deduping
                else "run `curate dedupe` first (it names any it cannot read)"
            )
        )
    if undecided := data["dedupe_undecided_pairs"]:
        console.print(
            f"dedupe: {undecided} pair{'s' * (undecided != 1)} found alike still undecided (to review, or kept apart "
            "on the review sheet); export puts both pictures of each in the same train, test or external set until "
            "then: `curate dedupe review`",
            highlight=False,
            soft_wrap=True,
        )
    if data["running_now"] is not None:
        console.print(f"running now: {escape(describe(data['running_now']))}", highlight=False, soft_wrap=True)
    if data["unfinished"]:
        runs = ", ".join(
            f"`{printable(u.get('rerun') or 'curate ' + u['command'])}`"
            + (f" into source {printable(u['source'])}" if u.get("source") and not u.get("rerun") else "")
            + f" ({u['status']}, started {u['started_at']})"
            for u in data["unfinished"]
        )
        console.print(
            f"[yellow]did not finish: {escape(runs)}; re-run {'it' if len(data['unfinished']) == 1 else 'them'} "
            "to complete.[/]",
            highlight=False,
            soft_wrap=True,
        )
    if data["missing_originals"]:
        _warn(
            f"{data['missing_originals']} original(s) listed in the catalogue are missing from the store; re-run "
            "`curate ingest` on their folder to restore them (scraped ones: the same `curate scrape`)."
        )
    if unreadable := data["unreadable_originals"]:
        _warn(
            f"{unreadable} original(s) in objects/ cannot be read (the file system refuses them: a "
            "folder's permissions or a failing disk): give the workspace's owner read access again "
            "(chmod -R u+rX objects; originals stay read-only), or re-run `curate ingest` on their folder."
        )
    if unlisted := data["unlisted_originals"]:
        _warn(
            f"{unlisted} original(s) in objects/ are listed by no catalogue row (an ingest or scrape stopped between "
            "storing and recording them): run it again to record them; until then they are never labelled or "
            "exported."
        )
    for v in data["versions_not_whole"]:
        _warn(f"{printable(v['version'])}: {printable(v['folder'])} (`curate versions` lists every version)")
    if unrecorded := data["versions_unrecorded"]:
        _warn(
            f"version folder(s) the catalogue does not record: {', '.join(map(printable, unrecorded[:5]))}"
            f"{' …' if len(unrecorded) > 5 else ''} (an export stopped before it was recorded: run it again; a "
            "catalogue restored from an older backup, or a folder copied in: move it out of exports/, since an "
            "export whose parent it would be is refused)"
        )
    if flagged := data["flagged_in_versions"]:
        _warn(flagged_note([FlaggedCopies(**f) for f in flagged]))
    if data["exposed_paths"]:
        shown = ", ".join(f"{printable(e['path'])} ({exposed_count(e)})" for e in data["exposed_paths"][:8])
        more = len(data["exposed_paths"]) - 8
        _warn(
            f"readable by other local users: {shown}{f' and {more} more' if more > 0 else ''}; run "
            f"`curate init {printable(shlex.quote(str(ws.root)))}` to make the workspace private."
        )


def _warn(text: str) -> None:
    """One of `curate status`'s warnings: yellow, "warning: " first, the text as it is (escaped, never markup)."""
    console.print(f"[yellow]warning: {escape(text)}[/]", highlight=False, soft_wrap=True)


def exposed_count(entry: dict) -> str:
    """'60 files, 3 folders' for one entry of `curate status`'s permissions warning."""
    parts = [(entry["files"], "file"), (entry["folders"], "folder")]
    return ", ".join(f"{n} {noun}{'s' if n != 1 else ''}" for n, noun in parts if n)


def register(app: typer.Typer) -> None:
    """Mount this module's commands on the root app."""
    app.command()(init)
    app.command()(ingest)
    app.command()(status)
