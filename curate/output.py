"""Terminal output shared by the `curate` and `train` command lines.

No catalogue or workspace import here: `train` uses it and must stay free of the catalogue.
"""
from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from typing import Annotated, Any, Callable, Iterator, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup
from typer.exceptions import Abort, Exit, TyperException

from curate.errors import CurateError
from curate.redact import redact_text

console = Console()
err_console = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


DEBUG_ENV = "CURATE_DEBUG"


def one_line(message: str) -> str:
    """What an error may show: secrets redacted (URLs' passwords, echoed Authorization headers), one line."""
    return " ".join(redact_text(str(message)).split())


def fail(message: str, code: int = 1) -> NoReturn:
    """One red line on stderr, then exit. The message is escaped: paths like `[clinic] photos` print as-is."""
    err_console.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class SafeGroup(TyperGroup):
    """The root command group: an exception no command anticipated still ends in one line and exit 1,
    never a traceback (set $CURATE_DEBUG=1 to see it); a CurateError anywhere is reported like `fail`."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (Exit, Abort, TyperException, SystemExit):  # typer's own: usage errors (exit 2), exits
            raise
        except KeyboardInterrupt:
            fail("interrupted; re-run the same command to continue", code=130)
        except CurateError as exc:
            fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - the last line of defence against a traceback
            if os.environ.get(DEBUG_ENV):
                raise
            fail(f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for the traceback)")


class reported:
    """`with reported():` turns a CurateError into one red line and exit code 1, Ctrl-C into exit 130."""

    def __init__(self, interrupt_hint: str = "interrupted; re-run the same command to continue"):
        self.interrupt_hint = interrupt_hint

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and isinstance(exc, CurateError):
            fail(str(exc))
        if exc_type is KeyboardInterrupt:
            fail(self.interrupt_hint, code=130)
        return False


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*[("" if v is None else escape(str(v))) for v in r])
    return t


@contextmanager
def progress_bar(label: str, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (stdout stays clean for tables and --json); yields the
    `on_progress(done, total)` callback the library's long-running functions take."""
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console, disable=quiet, transient=True) as progress:
        task = progress.add_task(label, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)
