"""Options and output helpers shared by every command."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curate.errors import CurateError
from curate.output import (  # noqa: F401  (re-exported: every command module imports its helpers from here)
    JsonOpt, console, err_console, fail, print_json, progress_bar, reported, table,
)
from curate.workspace import Workspace

WorkspaceOpt = Annotated[
    Optional[Path],
    typer.Option("--workspace", "-w", envvar="CURATE_WORKSPACE", help="Workspace folder (default: current folder)."),
]
DbOpt = Annotated[
    Optional[str],
    typer.Option("--db", envvar="CURATE_DB_URL", help="SQLAlchemy URL of the catalogue (default: SQLite in the workspace).", show_envvar=True),
]


def open_workspace(workspace: Optional[Path], db: Optional[str]) -> Workspace:
    try:
        return Workspace.open(workspace, db_url=db)
    except CurateError as exc:
        fail(str(exc))
