"""`curate pipeline`: the main job on embedded defaults, one stage after another.

Which folders are sources and their settings: `curate.intake.incoming`. Each stage is the same
library call its own command makes, so re-running continues where it stopped.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from curate.cli import dedupe as dedupe_cli
from curate.cli import intake as intake_cli
from curate.cli.options import DbOpt, WorkspaceOpt
from curate.output import JsonOpt, console, print_json, progress_bar, shown


def pipeline(
    incoming: Annotated[Path, typer.Option(help="Folder whose sub-folders are sources (default: ./incoming).")] = Path(
        "incoming"
    ),
    demo: Annotated[
        bool, typer.Option("--demo", help="When incoming/ is empty, fill it with synthetic demo photos.")
    ] = False,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run the steward's job on embedded defaults: init → ingest incoming/* → dedupe → status.

    Labeling needs clinicians, so the pipeline stops there and prints the next commands;
    once consensus exists, `curate export` builds a dataset version. `--json`: one object at the end, each
    stage's own `--json` under its name (ingest: one per source), the warnings and the next commands.

    Example: curate pipeline --demo
    """
    from sqlalchemy import func
    from sqlmodel import select

    from curate.audit import audited
    from curate.intake.incoming import DEMO_SOURCE, check_kinds, find_sources, source_options
    from curate.intake.ingest import ingest_folder
    from curate.workspace import Workspace
    from db.models import Image

    ws = Workspace.init(workspace or Path("."), db_url=db, keep_catalogue=True)  # a lost catalogue is not renewed
    found = find_sources(incoming, demo, tmp_dir=ws.tmp, own=tuple(ws.own_folders()), whose=ws.whose)
    data: dict = {"workspace": str(ws.root), "demo_photos": found.demo_photos, "warnings": []}
    visible = not json_out

    def say(text: str, warning: bool = False) -> None:  # a table's text for people, a warning in --json's list too
        if warning:
            data["warnings"].append(text)
        if visible:
            console.print(
                f"[yellow]warning:[/] {escape(text)}" if warning else escape(text), highlight=False, soft_wrap=True
            )

    where = str(incoming)
    if found.demo_photos:
        say(f"wrote {found.demo_photos} synthetic demo photos to {incoming / DEMO_SOURCE}")
    if found.loose:
        say(
            f"{len(found.loose)} file(s) directly in {where}/ skipped: only its sub-folders are sources, so move each "
            f"into {where}/<source-name>/{intake_cli.file_names(found.loose)}",
            warning=True,
        )
    if found.hidden:
        say(
            f"{len(found.hidden)} hidden, trash or system folder(s) in {where}/ skipped (.Trashes, .git, $RECYCLE.BIN, "
            f"@eaDir: never sources){intake_cli.file_names(found.hidden)}",
            warning=True,
        )
    if not found.sources:
        demo_said = (  # before: "(or use --demo)" to a steward who had, when incoming/ held a loose photo
            f"--demo fills only an empty {where}/: it holds files"
            if demo and not found.demo_photos
            else "or use --demo"
        )
        say(f"no source folders in {where}/: put each source's photos in {where}/<source-name>/ ({demo_said})", True)
    diagnoses = intake_cli.declared(ws)
    every = [source_options(f, diagnoses) for f in found.sources]  # a bad source.toml stops before any ingest
    check_kinds(ws, found.sources, every)  # a kind the catalogue contradicts, too (before: after some ingests)
    data["ingest"] = []
    for folder, options in zip(found.sources, every, strict=True):
        _heading(f"ingest {folder.name}", visible)
        with (
            audited(ws, "ingest", {**asdict(options), "via": "pipeline"}) as run,
            progress_bar("ingest", json_out) as on_file,
        ):
            report = ingest_folder(ws, folder, options, run_id=run.id, on_file=on_file)
            run.summary = report.as_dict()
        data["ingest"].append({"source": options.source, **report.as_dict()})
        if visible:
            intake_cli.render_ingest(report)
    _heading("dedupe", visible)
    data["dedupe"] = dedupe_cli.run_and_render(ws, json_out=json_out, show=visible)
    _heading("status", visible)
    if visible:
        intake_cli.status(workspace=ws.root, db=db, json_out=False)
    else:
        from curate.status import workspace_status

        data["status"] = workspace_status(ws)
    with ws.session() as s:
        held = s.exec(select(func.count()).select_from(Image)).one()
    if not held:  # before: the labelling steps, for a catalogue with nothing to label
        data["next"] = ["curate pipeline"]  # once each source's photos are in incoming/<source-name>/ (a warning)
    else:
        data["next"] = [command for command, _ in LABELLING]
    if json_out:
        print_json(data)
    elif not held:
        console.print(
            f"\nnext: put each source's photos in {escape(where)}/<source-name>/ and run "
            "[bold]curate pipeline[/] again ([bold]--demo[/] fills an empty incoming/ with synthetic photos)"
        )
    else:
        console.print("\nnext: " + " → ".join(f"[bold]{command}[/]{note}" for command, note in LABELLING))


LABELLING = [  # the next commands once the catalogue holds images, and what each is for where that needs saying
    ("curate studio start", ""),
    ("curate studio add-user EMAIL", " (each clinician)"),
    ("curate label push --raters A,B", ""),
    ("curate label pull", ""),
    ("curate label adjudicate --reviewer C", ""),
    ("curate label pull", " (the reviewer's answers)"),
    ("curate export --name mpox --version 1.0.0", ""),
]


def _heading(title: str, visible: bool = True) -> None:
    """A stage heading of fixed width (a rule would span the whole, unlimited, width of piped output); a source
    folder's name in it is text, never markup (`shown`)."""
    if visible:
        console.print(f"── {shown(title)} " + "─" * max(3, 60 - len(title)), style="bold", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(pipeline)
