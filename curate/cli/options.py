"""Options shared by every command, each declared once with one spelling, and the workspace opener.

Parameter names are fixed too, so a command reads like its neighbours: `workspace`, `db`, `json_out`,
`workers`. Helpers for rendering live in `curate.output`; command modules import them from there.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar
from urllib.parse import urlsplit

import typer
from rich.markup import escape

from curate import lock
from curate.output import FULL, JsonOpt, err_console
from curate.redact import url_secret

if TYPE_CHECKING:
    from curate.workspace import Workspace

__all__ = [
    "DbOpt",
    "HtmlOpt",
    "JsonOpt",
    "WorkersOpt",
    "WorkspaceOpt",
    "http_url",
    "http_urls",
    "open_workspace",
    "refuse_page_at",
    "write_page",
]

DB_ENV = "CURATE_DB_URL"  # the same name as curate.workspace.DB_ENV, which loads the catalogue stack

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


def _typed_secret(ctx: typer.Context, param: typer.CallbackParam, value: str) -> str | None:
    """The secret a URL typed on the command line carries (not one from the environment), or None: any local
    user reads a command line in the process list (`/proc/PID/cmdline`) while the command runs."""
    source = ctx.get_parameter_source(param.name)  # typer's own click: its enum is compared by name
    if getattr(source, "name", None) != "COMMANDLINE":
        return None
    return url_secret(value)


def db_url(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """typer callback for --db: a password typed into the URL is refused (README, "Secrets")."""
    if value and (secret := _typed_secret(ctx, param, value)):
        raise typer.BadParameter(
            f"holds {secret}, which other local users can read in the process list: leave it out and put the "
            f"password in $PGPASSWORD or ~/.pgpass, or the whole URL in ${DB_ENV}"
        )
    return value


DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar=DB_ENV,
        show_envvar=True,
        callback=db_url,
        help="SQLAlchemy URL of the catalogue (default: SQLite in the workspace); its password from $PGPASSWORD "
        "or ~/.pgpass, never typed here.",
    ),
]
MAX_WORKERS = 64  # each worker is a Python process of 100-200 MB: --workers 1000000 ran the machine out of memory
WorkersOpt = Annotated[
    int, typer.Option("--workers", min=0, max=MAX_WORKERS, help="Worker processes; 0: one per core.")
]

HtmlOpt = Annotated[
    Path | None,
    typer.Option("--html", help="Write the HTML page here (default: in the workspace's reports/ folder)."),
]
T = TypeVar("T")
READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def write_page(write: Callable[[Path], T], ws: Workspace, default: Path, chosen: Path | None) -> T | None:
    """A reading command's HTML page, written by `write(dest)` at `chosen` (--html) or else at `default` in the
    workspace. A workspace this user cannot write (a backup mounted read-only, a reviewer's copy) still
    gives the table or --json: the page is skipped with a warning that names --html; before, all the work was lost
    to "Read-only file system". A --html destination that cannot be written stays an error, and one that is no
    plain file or is part of the workspace is refused (`refuse_page_at`)."""
    if chosen is not None:
        refuse_page_at(chosen, ws)
        return write(chosen)
    folder = default.parent
    why = "cannot be written here"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK)
    except OSError as exc:
        if exc.errno not in (*READ_ONLY, *FULL):
            raise
        writable = False
        if exc.errno in FULL:
            why = f"is on a full disk ({exc.strerror or 'no space left'})"
    if writable:  # any other refusal (an input file this user cannot read) is the command's error, as before
        try:
            return write(default)
        except OSError as exc:  # a full disk: the table or --json still given (before: all the work lost to it)
            if exc.errno not in FULL:
                raise
            why = f"is on a full disk ({exc.strerror or 'no space left'})"
    err_console.print(
        f"[yellow]warning:[/] page not written: {escape(str(folder))} {why}; pass --html PATH to write it elsewhere",
        highlight=False,
        soft_wrap=True,
    )
    return None


def refuse_page_at(dest: Path, ws: Workspace) -> None:
    """--html names a file to write, never a link, a pipe or a device, nor a part of the workspace or of another,
    nor an existing file that is not a page: the page is renamed into place, so each of those was replaced by it
    (as root, `--html /dev/stdout` replaced the device; another workspace's catalogue.db, an ingested photo)."""
    from curate.errors import ConfigError
    from curate.regular import special_kind
    from curate.workspace import workspace_holding

    if dest.is_symlink():
        raise ConfigError(f"--html {dest} is a symbolic link: name the file it points to, or another")
    try:
        kind = special_kind(os.stat(dest).st_mode)
    except FileNotFoundError:
        kind = None
    if kind is not None:
        raise ConfigError(f"--html {dest} is {kind}, not a file: name a file to write")
    if (part := ws.part_at(dest)) is not None:
        raise ConfigError(f"--html {dest} is part of the workspace ({part}): name a file outside it, or in reports/")
    if (other := workspace_holding(dest)) is not None and other != ws.root:  # its catalogue was replaced by a page
        raise ConfigError(f"--html {dest} is inside another workspace ({other}): name a file outside it")
    if kind is None and dest.exists() and not _a_page(dest):  # an ingested clinic photo was replaced by a page
        raise ConfigError(f"--html {dest} exists and is not an HTML page: name a new file, or remove that one first")


def _a_page(path: Path) -> bool:
    """Whether a file begins as an HTML page does (what --html may write over: a page written before)."""
    from curate.intake.decode import html_head  # Pillow: not for every command's start

    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return True  # unreadable: writing it is the command's own error, as before
    return html_head(head) or not head.strip()


lock.on_wait = lambda message: err_console.print(f"[yellow]{escape(message)}[/]", highlight=False)


def http_url(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """typer callback for URL options: a malformed URL is a usage error (exit 2) naming the option, and so is a
    password or token typed into it (the steward's key comes from $LABEL_STUDIO_API_KEY)."""
    if value is None:
        return value
    _check_http_url(value)
    if secret := _typed_secret(ctx, param, value):
        raise typer.BadParameter(
            f"holds {secret}, which other local users can read in the process list: leave credentials out of "
            "the URL (Label Studio is opened with $LABEL_STUDIO_API_KEY)"
        )
    return value


def _check_http_url(value: str) -> None:
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a bad port
    except ValueError as exc:
        raise typer.BadParameter(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter("must be an http(s) URL with a host")


def http_urls(ctx: typer.Context, param: typer.CallbackParam, values: list[str] | None) -> list[str] | None:
    """typer callback for repeated `[EMAIL=]URL` options: each URL part checked like `http_url`."""
    for v in values or []:
        who, sep, url = v.partition("=")
        http_url(ctx, param, url if sep and "@" in who and not who.startswith(("http://", "https://")) else v)
    return values


def open_workspace(workspace: Path | None, db: str | None) -> Workspace:
    """The workspace a command works on; a WorkspaceError is reported by the root group like every error."""
    from curate.workspace import Workspace  # the catalogue stack loads when a command runs (see curate.cli)

    return Workspace.open(workspace, db_url=db)
