"""Options and output helpers shared by every command."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional
from urllib.parse import urlsplit

import typer
from rich.markup import escape

from curate import lock
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


lock.on_wait = lambda message: err_console.print(f"[yellow]{escape(message)}[/]", highlight=False)


def http_url(value: Optional[str]) -> Optional[str]:
    """typer callback for URL options: a malformed URL is a usage error (exit 2) naming the option."""
    if value is None:
        return value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise typer.BadParameter(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter("must be an http(s) URL with a host")
    return value


def http_urls(values: Optional[list[str]]) -> Optional[list[str]]:
    """typer callback for repeated `[EMAIL=]URL` options: each URL part checked like `http_url`."""
    for v in values or []:
        who, sep, url = v.partition("=")
        http_url(url if sep and "@" in who and not who.startswith(("http://", "https://")) else v)
    return values


def open_workspace(workspace: Optional[Path], db: Optional[str]) -> Workspace:
    try:
        return Workspace.open(workspace, db_url=db)
    except CurateError as exc:
        fail(str(exc))
