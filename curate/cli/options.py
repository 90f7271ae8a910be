"""Options shared by every command, each declared once with one spelling, and the workspace opener.

Parameter names are fixed too, so a command reads like its neighbours: `workspace`, `db`, `json_out`,
`workers`. Helpers for rendering live in `curate.output`; command modules import them from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer
from rich.markup import escape

from curate import lock
from curate.output import JsonOpt, err_console

if TYPE_CHECKING:
    from curate.workspace import Workspace

__all__ = ["DbOpt", "JsonOpt", "WorkersOpt", "WorkspaceOpt", "http_url", "http_urls", "open_workspace"]

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        envvar="CURATE_WORKSPACE",
        show_envvar=True,
        help="Workspace folder (default: current folder).",
    ),
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="CURATE_DB_URL",
        show_envvar=True,
        help="SQLAlchemy URL of the catalogue (default: SQLite in the workspace).",
    ),
]
WorkersOpt = Annotated[int, typer.Option("--workers", min=0, help="Worker processes; 0: one per core.")]


lock.on_wait = lambda message: err_console.print(f"[yellow]{escape(message)}[/]", highlight=False)


def http_url(value: str | None) -> str | None:
    """typer callback for URL options: a malformed URL is a usage error (exit 2) naming the option."""
    if value is None:
        return value
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a bad port
    except ValueError as exc:
        raise typer.BadParameter(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter("must be an http(s) URL with a host")
    return value


def http_urls(values: list[str] | None) -> list[str] | None:
    """typer callback for repeated `[EMAIL=]URL` options: each URL part checked like `http_url`."""
    for v in values or []:
        who, sep, url = v.partition("=")
        http_url(url if sep and "@" in who and not who.startswith(("http://", "https://")) else v)
    return values


def open_workspace(workspace: Path | None, db: str | None) -> Workspace:
    """The workspace a command works on; a WorkspaceError is reported by the root group like every error."""
    from curate.workspace import Workspace  # the catalogue stack loads when a command runs (see curate.cli)

    return Workspace.open(workspace, db_url=db)
