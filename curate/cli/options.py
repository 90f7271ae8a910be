"""Options and output helpers shared by every command."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, NoReturn, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from curate.errors import CurateError
from curate.workspace import Workspace

console = Console()
err_console = Console(stderr=True)

WorkspaceOpt = Annotated[
    Optional[Path],
    typer.Option("--workspace", "-w", envvar="CURATE_WORKSPACE", help="Workspace folder (default: current folder)."),
]
DbOpt = Annotated[
    Optional[str],
    typer.Option("--db", envvar="CURATE_DB_URL", help="SQLAlchemy URL of the catalogue (default: SQLite in the workspace).", show_envvar=True),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def open_workspace(workspace: Optional[Path], db: Optional[str]) -> Workspace:
    try:
        return Workspace.open(workspace, db_url=db)
    except CurateError as exc:
        fail(str(exc))


class reported:
    """`with reported():` turns a CurateError into one red line and exit code 1."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and isinstance(exc, CurateError):
            fail(str(exc))
        if exc_type is KeyboardInterrupt:
            fail("interrupted; re-run the same command to continue", code=130)
        return False


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*[("" if v is None else str(v)) for v in r])
    return t


@contextmanager
def progress_bar(label: str, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (stdout stays clean for tables and --json); yields the
    `on_progress(done, total)` callback the library's long-running functions take."""
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console, disable=quiet, transient=True) as progress:
        task = progress.add_task(label, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)
