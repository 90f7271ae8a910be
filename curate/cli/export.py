"""`curate export`, `curate versions`, `curate diff`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from curate.cli.choices import ExportTask, ResizePolicy
from curate.cli.options import DbOpt, JsonOpt, WorkersOpt, WorkspaceOpt, open_workspace
from curate.output import console, err_console, print_json, shown, stage_bars, table

DEVIATION_WARN_PP = 2.0


def export(
    name: Annotated[str, typer.Option("--name", "-n", help="Dataset name, e.g. mpox.")],
    version: Annotated[str, typer.Option("--version", "-v", help="Semantic version MAJOR.MINOR.PATCH, e.g. 1.0.0.")],
    task: Annotated[
        ExportTask,
        typer.Option(
            help="binary (mpox: the settings' positive diagnoses / non_mpox: every other, 'other "
            "diagnosis' included) or diagnosis (one class per declared diagnosis, and other_diagnosis)."
        ),
    ] = ExportTask.BINARY,
    size: Annotated[
        int, typer.Option(min=32, max=4096, help="Output width and height in pixels (the paper used 320).")
    ] = 320,
    resize_policy: Annotated[ResizePolicy, typer.Option(help="How a photo becomes a square.")] = ResizePolicy.STRETCH,
    roi_margin: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="ROI crop margin around the lesion boxes, as a fraction of their size."),
    ] = 0.1,
    test_fraction: Annotated[
        float,
        typer.Option(
            min=0.01, max=0.9, help="Share of the non-external images held out for testing (a test split is required)."
        ),
    ] = 0.2,
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds inside train.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 0,
    external: Annotated[
        list[str] | None,
        typer.Option("--external", "-x", help="Source reserved whole for external validation (repeatable)."),
    ] = None,
    parent: Annotated[
        str | None,
        typer.Option(
            help="Parent version (default: the highest earlier version of NAME whose folder remains). Its images "
            "keep their split and fold."
        ),
    ] = None,
    reshuffle: Annotated[
        bool,
        typer.Option(
            "--reshuffle",
            help="Deal every image afresh, ignoring the parent's splits and folds "
            "(images may change split: a model trained on the parent must not be "
            "tested on this version).",
        ),
    ] = False,
    archive: Annotated[bool, typer.Option("--archive", help="Also write exports/NAME/NAME-VERSION.tar.")] = False,
    workers: WorkersOpt = 0,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Build one immutable dataset version from the consensus labels.

    Every catalogue image left out is counted by reason (not assessable, identifiable features, low quality,
    discarded, pending, duplicate, low resolution, not labelled).

    Splits are stable across versions: every image that was in the parent version keeps its split and fold.
    Only groups (near-duplicate cluster or case id) with no image in the parent are dealt, seeded and stratified.
    A new image that joins a group with parent images goes where they are.
    A group whose parent images disagree goes where most of them were (ties: test).
    Images of a newly reserved --external source leave train/test; those of a source no longer reserved are re-dealt.
    Every such move is printed and listed in README.md. --reshuffle deals everything afresh instead.
    Before the version is sealed, the leakage audit (see `curate audit leakage`) looks for the same photo
    in two splits or folds; its summary is printed and written into README.md and audit.json.

    Example: curate export --name mpox --version 1.0.0 --external kaggle-msid
    """
    from curate.audit import audited
    from curate.export import ExportOptions, ImageSpec, export_version
    from curate.parallel import stage_of

    ws = open_workspace(workspace, db)
    spec = ImageSpec(size=(size, size), policy=resize_policy.value, roi_margin=roi_margin)
    options = ExportOptions(
        name=name,
        version=version,
        task=task.value,
        spec=spec,
        test_fraction=test_fraction,
        folds=folds,
        seed=seed,
        external_sources=tuple(external or ()),
        parent=parent,
        reshuffle=reshuffle,
        archive=archive,
        workers=workers,
    )
    args = {
        "name": name,
        "version": version,
        "task": task.value,
        "size": size,
        "resize_policy": resize_policy.value,
        "roi_margin": roi_margin,
        "test_fraction": test_fraction,
        "folds": folds,
        "seed": seed,
        "external": external,
        "parent": parent,
        "reshuffle": reshuffle,
        "archive": archive,
    }
    with audited(ws, "export", args) as run, stage_bars(json_out) as bars:
        # the images rendered, then the leakage audit of the rendered version (`curate audit leakage`)
        result = export_version(
            ws,
            options,
            run_id=run.id,
            on_image=stage_of(bars, "exporting"),
            on_audit=lambda stage, done, total: bars(f"leakage audit: {stage}", done, total),
        )
        run.summary = result.as_dict()
    if json_out:
        print_json(result.as_dict())
        return
    splits = sorted({c for per in result.counts.values() for c in per})
    rows = [
        [split, *(result.counts[split].get(c, 0) for c in splits), sum(result.counts[split].values())]
        for split in result.counts
    ]
    console.print(table(f"{name}@{version} ({result.status})", ["split", *splits, "total"], rows))
    if result.status == "exists":
        console.print(
            f"{name}@{version} was already written (by an earlier or a concurrent export) with this content; "
            "nothing changed"
        )
    _render_export(result, name, version)


def _render_export(result, name: str, version: str) -> None:
    """The export's tables and notes for people (an ExportResult)."""
    from curate.export.card import conflicting_advice, conflicting_note, uncompared_note, undecided_note
    from curate.export.exclusions import REASONS
    from curate.export.leakage import LeakageAudit

    console.print(f"{result.images} images, {result.roi_images} ROI crops → {shown(result.path)}")
    if result.excluded:
        console.print(
            table(
                f"not exported: {sum(result.excluded.values())} catalogue image(s)",
                ["reason", "images", "meaning"],
                [[k, v, REASONS.get(k, "")] for k, v in result.excluded.items()],
            )
        )
    console.print(f"checksum {result.checksum}")
    if result.uncompared:
        console.print(f"[yellow]warning:[/] {uncompared_note(result.uncompared)}")
    if result.undecided_pairs:
        console.print(f"note: {undecided_note(result.undecided_pairs)}")
    if groups := result.conflicting_images:
        console.print(f"[yellow]warning:[/] {conflicting_note(len(groups))}: {conflicting_advice(groups)}")
    if result.leakage is not None:
        audit = LeakageAudit.from_dict(result.leakage)
        colour = "yellow" if audit.suspects else "green"
        console.print(f"[{colour}]{escape(audit.summary())}[/]", highlight=False)
        if audit.suspects:
            console.print(f"[yellow]note:[/] see `curate audit leakage {name}@{version}` for both photos of each pair")
    if result.rendered:
        console.print(
            f"{result.rendered} images rendered in {result.seconds:.1f} s ({result.images_per_second:.0f} images/s)"
        )
    if result.archive:
        console.print(f"archive {result.archive} (sha256 {result.archive_sha256})")
    if result.max_deviation_pp > DEVIATION_WARN_PP:
        worst = max(result.bins, key=lambda b: b["deviation_pp"])
        console.print(
            f"[yellow]note:[/] the group rule moved {worst['name']} {worst['deviation_pp']:.1f} percentage points "
            f"off its target ({worst['target']:.0%}); see README.md"
        )
    if result.pulled_external:
        console.print(
            f"[yellow]note:[/] {result.pulled_external} image(s) share a group with a reserved source "
            "and went to external"
        )
    if gone := result.parents_gone:
        after = f"follow {name}@{result.parent}'s" if result.parent else "were drawn afresh"
        console.print(
            f"[yellow]note:[/] {', '.join(f'{name}@{v}' for v in gone)} no longer "
            f"{'has its' if len(gone) == 1 else 'have their'} folder, so this version's splits {after}: an image may "
            "sit in another split than there"
        )
    if result.parent is not None:
        if result.reshuffle:
            console.print(
                f"[yellow]note:[/] splits dealt afresh (--reshuffle), ignoring {name}@{result.parent}'s; "
                f"`curate diff {name}@{result.parent} {name}@{version}` lists the moves"
            )
        else:
            console.print(
                f"splits: {result.kept} image(s) of {name}@{result.parent} kept their split and fold, "
                f"{len(result.moved)} moved"
            )
        if result.moved and not result.reshuffle:
            console.print(
                table(
                    f"moved since {name}@{result.parent}",
                    ["image id", "from", "to", "why"],
                    [[m["image_id"], m["from"], m["to"], m["reason"]] for m in result.moved],
                )
            )


def versions(
    name: Annotated[str | None, typer.Argument(help="Only this dataset name.")] = None,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List the dataset versions in the catalogue.

    Example: curate versions mpox
    """
    from curate.export import list_versions
    from curate.export.plan import iso_utc
    from curate.export.writer import folder_state, unrecorded_folders

    ws = open_workspace(workspace, db)
    records = list_versions(ws, name)
    for folder in unrecorded_folders(ws, records, name):  # on stderr: --json's list stays the catalogue's
        err_console.print(
            f"warning: {shown(folder.relative_to(ws.root))} is a version folder the catalogue does not record (a "
            "catalogue restored from an older backup, a folder copied in, or an export stopped before it was "
            "recorded?); `curate diff` and `curate audit leakage` read it as any folder, and an export whose parent "
            "it would be is refused until it is moved out of exports/",
            highlight=False,
        )
    data = [
        {
            "name": r.name,
            "version": r.version,
            "task": r.task,
            "images": r.images,
            "roi_images": r.roi_images,
            "parent": r.parent,
            "checksum": r.checksum,
            "path": r.path,
            "archive": r.archive,
            "created_at": iso_utc(r.created_at),  # one format whatever the catalogue's backend
            "folder": folder_state(ws, r),
        }
        for r in records
    ]
    if json_out:
        print_json(data)
        return
    console.print(
        table(
            "dataset versions",
            ["name@version", "task", "images", "roi", "parent", "checksum", "folder"],
            [
                [
                    f"{d['name']}@{d['version']}",
                    d["task"],
                    d["images"],
                    d["roi_images"],
                    d["parent"] or "",
                    d["checksum"][:12],
                    d["folder"],
                ]
                for d in data
            ],
        )
    )


def diff(
    a: Annotated[str, typer.Argument(help="Old version: NAME@VERSION or a folder.")],
    b: Annotated[str, typer.Argument(help="New version: NAME@VERSION or a folder.")],
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show images added, removed, relabeled, moved between splits and recropped (lesion box) from A to B.

    Example: curate diff mpox@1.0.0 mpox@1.1.0
    """
    from curate.export import diff_versions

    ws = open_workspace(workspace, db)
    d = diff_versions(ws, a, b)
    if json_out:
        print_json(d.as_dict())
        return
    console.print(table(f"{a} → {b}", ["change", "images"], [[k, v] for k, v in d.summary().items()]))
    rows = [["added", i, "", " ".join(d.where[i])] for i in d.added]
    rows += [["removed", i, " ".join(d.where[i]), ""] for i in d.removed]
    rows += [["relabeled", i, old, new] for i, old, new in d.relabeled] + [
        ["moved", i, old, new] for i, old, new in d.moved
    ]
    rows += [["recropped", i, old, new] for i, old, new in d.recropped]
    if rows:
        console.print(table("changed images", ["change", "image id", "from", "to"], rows))


def register(app: typer.Typer) -> None:
    """Mount this module's commands on the root app."""
    app.command("export")(export)
    app.command("versions")(versions)
    app.command("diff")(diff)
