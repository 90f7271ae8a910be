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
from curate.output import console, progress_bar


def pipeline(
    incoming: Annotated[Path, typer.Option(help="Folder whose sub-folders are sources (default: ./incoming).")] = Path(
        "incoming"
    ),
    demo: Annotated[
        bool, typer.Option("--demo", help="When incoming/ is empty, fill it with synthetic demo photos.")
    ] = False,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
) -> None:
    """Run the steward's job on embedded defaults: init → ingest incoming/* → dedupe → status.

    Labeling needs clinicians, so the pipeline stops there and prints the next commands;
    once consensus exists, `curate export` builds a dataset version.

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
    if found.demo_photos:
        console.print(f"wrote {found.demo_photos} synthetic demo photos to {incoming / DEMO_SOURCE}")
    if found.loose:
        console.print(
            f"[yellow]warning:[/] {len(found.loose)} file(s) directly in {escape(str(incoming))}/ skipped: only its "
            f"sub-folders are sources, so move each into {escape(str(incoming))}/<source-name>/"
            f"{escape(intake_cli.file_names(found.loose))}",
            highlight=False,
            soft_wrap=True,
        )
    if found.hidden:
        console.print(
            f"[yellow]warning:[/] {len(found.hidden)} hidden, trash or system folder(s) in {escape(str(incoming))}/ "
            "skipped (.Trashes, .git, $RECYCLE.BIN, @eaDir: never sources)"
            f"{escape(intake_cli.file_names(found.hidden))}",
            highlight=False,
            soft_wrap=True,
        )
    if not found.sources:
        console.print(
            f"[yellow]warning:[/] no source folders in {escape(str(incoming))}/: put each source's photos in "
            f"{escape(str(incoming))}/<source-name>/ (or use --demo)",
            highlight=False,
            soft_wrap=True,
        )
    diagnoses = intake_cli.declared(ws)
    every = [source_options(f, diagnoses) for f in found.sources]  # a bad source.toml stops before any ingest
    check_kinds(ws, found.sources, every)  # a kind the catalogue contradicts, too (before: after some ingests)
    for folder, options in zip(found.sources, every, strict=True):
        _heading(f"ingest {folder.name}")
        with audited(ws, "ingest", {**asdict(options), "via": "pipeline"}) as run, progress_bar("ingest") as on_file:
            report = ingest_folder(ws, folder, options, run_id=run.id, on_file=on_file)
            run.summary = report.as_dict()
        intake_cli.render_ingest(report)
    _heading("dedupe")
    dedupe_cli.run_and_render(ws)
    _heading("status")
    intake_cli.status(workspace=ws.root, db=db, json_out=False)
    with ws.session() as s:
        held = s.exec(select(func.count()).select_from(Image)).one()
    if not held:  # before: the labelling steps, for a catalogue with nothing to label
        console.print(
            f"\nnext: put each source's photos in {escape(str(incoming))}/<source-name>/ and run "
            "[bold]curate pipeline[/] again ([bold]--demo[/] fills an empty incoming/ with synthetic photos)"
        )
        return
    console.print(
        "\nnext: [bold]curate studio start[/] → [bold]curate studio add-user EMAIL[/] (each clinician) → "
        "[bold]curate label push --raters A,B[/] → [bold]curate label pull[/] → "
        "[bold]curate label adjudicate --reviewer C[/] → [bold]curate label pull[/] (the reviewer's answers) → "
        "[bold]curate export --name mpox --version 1.0.0[/]"
    )


def _heading(title: str) -> None:
    """A stage heading of fixed width (a rule would span the whole, unlimited, width of piped output)."""
    console.print(f"── {title} " + "─" * max(3, 60 - len(title)), style="bold", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(pipeline)
