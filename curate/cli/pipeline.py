"""`curate pipeline`: the main job on embedded defaults, one stage after another.

Every top-level folder of `incoming/` is a source; an optional `source.toml`
inside it says what kind of source it is (see README). Each stage is the same
library call its own command makes, so re-running continues where it stopped.
"""
from __future__ import annotations

import tomllib
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from curate.cli import dedupe as dedupe_cli
from curate.cli import intake as intake_cli
from curate.cli.options import DbOpt, WorkspaceOpt
from curate.errors import ConfigError
from curate.output import console, fail, progress_bar

SOURCE_KEYS = {"kind", "licence", "label_from_folders", "label_map", "case_id_pattern"}


def source_options(folder: Path):
    """Ingest options for one incoming source folder, from its optional source.toml."""
    from curate.intake.ingest import IngestOptions, load_label_map

    settings: dict = {"label_from_folders": True}
    cfg = folder / "source.toml"
    if cfg.is_file():
        try:
            data = tomllib.loads(cfg.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{cfg}: {exc}") from exc
        unknown = set(data) - SOURCE_KEYS
        if unknown:
            raise ConfigError(f"{cfg}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(SOURCE_KEYS))}")
        settings.update(data)
    if settings.get("label_map"):
        settings["label_map"] = load_label_map(folder / settings["label_map"])
    return IngestOptions(source=folder.name, **settings)


def pipeline(
    incoming: Annotated[Path, typer.Option(help="Folder whose sub-folders are sources (default: ./incoming).")] = Path("incoming"),
    demo: Annotated[bool, typer.Option("--demo", help="When incoming/ is empty, fill it with synthetic demo photos.")] = False,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
) -> None:
    """Run the steward's job on embedded defaults: init → ingest incoming/* → dedupe → status.

    Labeling needs clinicians, so the pipeline stops there and prints the next commands;
    once consensus exists, `curate export` builds a dataset version.

    Example: curate pipeline --demo
    """
    from curate.audit import audited
    from curate.demo import write_demo_folder
    from curate.intake.ingest import ingest_folder
    from curate.workspace import Workspace

    ws = Workspace.init(workspace or Path("."), db_url=db)
    if demo and not (incoming.is_dir() and any(incoming.iterdir())):
        n = write_demo_folder(incoming / "demo-clinic")
        console.print(f"wrote {n} synthetic demo photos to {incoming / 'demo-clinic'}")
    if not incoming.is_dir():
        fail(f"no {incoming}/ folder: put each source's photos in {incoming}/<source-name>/ (or use --demo)")
    sources = sorted(p for p in incoming.iterdir() if p.is_dir())
    for folder in sources:
        options = source_options(folder)
        _heading(f"ingest {folder.name}")
        with audited(ws, "ingest", {**asdict(options), "via": "pipeline"}) as run, progress_bar("ingest") as on_file:
            report = ingest_folder(ws, folder, options, run_id=run.id, on_file=on_file)
            run.summary = report.as_dict()
        intake_cli.render_ingest(report)
    _heading("dedupe")
    dedupe_cli.run_and_render(ws)
    _heading("status")
    intake_cli.status(workspace=ws.root, db=db, json_out=False)
    console.print(
        "\nnext: [bold]curate studio start[/] → [bold]curate studio add-user EMAIL[/] (each clinician) → "
        "[bold]curate label push --raters A,B[/] → [bold]curate label pull[/] → "
        "[bold]curate label adjudicate --reviewer C[/] → "
        "[bold]curate export --name mpox --version 1.0.0[/]"
    )


def _heading(title: str) -> None:
    """A stage heading of fixed width (a rule would span the whole, unlimited, width of piped output)."""
    console.print(f"── {title} " + "─" * max(3, 60 - len(title)), style="bold", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(pipeline)
