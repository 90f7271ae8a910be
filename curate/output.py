"""Terminal output shared by the `curate` and `train` command lines.

No catalogue or workspace import here: `train` uses it and must stay free of the catalogue.
"""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from typer.core import TyperGroup
from typer.exceptions import Abort, Exit, TyperException

from curate.errors import CurateError
from curate.numbers import whole_number
from curate.redact import redact_text

PLAIN_WIDTH = 10_000  # "as wide as the text": output that is not a terminal is never cut or wrapped

# rich (ours and typer's consoles alike) takes $COLUMNS="²" for a number (str.isdigit) and int() refuses it: a
# traceback before any command ran. A size that is not ASCII digits is dropped, as rich drops "abc"; so is 0,
# a console of no width, on which every message, the one-line error too, vanished (the exit status alone left).
for _size in ("COLUMNS", "LINES"):
    if _size in os.environ and not whole_number(os.environ[_size]):
        del os.environ[_size]


class PlainWhenPiped(Console):
    """rich's Console, except that output which is not a terminal (a pipe, a file, a test runner) has no width
    limit unless $COLUMNS sets one: a table cell is never cut to `Efficient…` and a path never wrapped, so
    `curate ... | grep` and `> out.txt` keep every value whole. On a terminal, rich's own width."""

    @property
    def size(self) -> ConsoleDimensions:
        real = super().size
        if self.is_terminal or self._width is not None or whole_number(self._environ.get("COLUMNS")) is not None:
            return real
        return ConsoleDimensions(PLAIN_WIDTH, real.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = PlainWhenPiped()
err_console = PlainWhenPiped(stderr=True)

_json_asked = False  # this command's --json: set as the option is parsed, cleared by SafeGroup for each command


def _asked_json(value: bool) -> bool:
    """Remember that the command was asked for JSON, so that `fail` answers a script in JSON too. (A module
    flag, not click's ctx.meta: typer carries its own copy of click, whose current context a plain `click`
    import does not see.)"""
    global _json_asked
    _json_asked = bool(value)
    return value


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.", callback=_asked_json)
]


DEBUG_ENV = "CURATE_DEBUG"


# What a terminal obeys rather than shows, or a row splits at: control (C0, C1, DEL), format (bidi overrides,
# zero-width characters), line and paragraph separators, and lone surrogates (a file name's undecodable bytes).
# The one definition: `printable` escapes these and `curate.intake.catalogue.check_name` refuses them.
CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def first_control(text: str) -> str | None:
    """The first character of `text` in `CONTROL_CATEGORIES`, or None."""
    if text.isprintable():  # the fast path: no character of those categories (nor a non-space blank)
        return None
    return next((c for c in text if unicodedata.category(c) in CONTROL_CATEGORIES), None)


def _escaped(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def printable(text: str) -> str:
    """`text` with control characters written as escapes (ESC as `\\x1b`): a file or source name cannot clear
    the screen, recolour the terminal, hide itself or split a one-line row."""
    if first_control(text) is None:
        return text
    return "".join(_escaped(c) if unicodedata.category(c) in CONTROL_CATEGORIES else c for c in text)


def shown(value: object) -> str:
    """A name or path inside a line that `console.print` reads as markup: control characters shown (`printable`)
    and rich's tags taken as text. Before, a folder `[link=https:evil.example]clinic` printed as a live hyperlink
    on the terminal, and `--html '[conceal]x.html'` as "x.html"."""
    return escape(printable(str(value)))


def one_line(message: str) -> str:
    """What an error may show: secrets redacted (URLs' passwords, echoed Authorization headers), one line, no
    control characters (`printable`)."""
    return printable(" ".join(redact_text(str(message)).split()))


def fail(message: str, code: int = 1) -> NoReturn:
    """One red line on stderr, then exit. The message is escaped: paths like `[clinic] photos` print as-is.
    Under `--json`, stdout also gets `{"error": line, "exit_code": code}`: a script parsing stdout reads why,
    where before it read an empty document."""
    line = one_line(message)
    err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if _json_asked:
        print_json({"error": line, "exit_code": code})
    raise typer.Exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, a service manager's stop), raised where Ctrl-C's KeyboardInterrupt would be
    (`stop_on_sigterm`)."""


INTERRUPTED = "interrupted; re-run the same command to continue"


def stop_on_sigterm() -> None:
    """Take SIGTERM as Ctrl-C is taken: the command stops where it is, records its run as interrupted, ends
    its worker processes and says so in one line (exit 143). Python's default for SIGTERM is to die at once,
    which left a pool's clean-started workers (the leakage audit's) running after the command had gone.
    Call from the main thread, before the command runs. A process forked later (a worker) inherits the handler
    but not the command's cleanup: there SIGTERM ends the process as it would have, without a traceback."""
    command = os.getpid()

    def stop(signum, frame):
        if os.getpid() != command:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        _sigterm["pending"] = True
        raise Terminated()

    signal.signal(signal.SIGTERM, stop)


_sigterm = {"pending": False}  # a SIGTERM came: cleared as each command starts (a test runs many in one process)


def still_terminated() -> None:
    """Raise Terminated again at a safe point (a stage's start, a command's end) once a SIGTERM came. Python ignores
    an exception raised inside a finalizer or a weakref callback ("Exception ignored in … Terminated"): a probe's
    SIGTERM landed in SQLAlchemy's, and `curate pipeline` ran every stage to the end, exit 0, 3 times in 14."""
    if _sigterm["pending"]:
        raise Terminated()


def stop_done() -> None:
    """A command for which a stop is its end, done (`train serve`, stopped gracefully): no Terminated again."""
    _sigterm["pending"] = False


def _stopped(exc: KeyboardInterrupt, hint: str = INTERRUPTED) -> NoReturn:
    """Ctrl-C's line (`hint`, which begins "interrupted") and exit 130, or SIGTERM's and 143."""
    if isinstance(exc, Terminated):
        fail("terminated (SIGTERM)" + hint.removeprefix("interrupted"), code=143)
    fail(hint, code=130)


_ARGV = "curate.argv"


class SafeGroup(TyperGroup):
    """The root command group and the CLI's one error handler: a CurateError raised anywhere below becomes
    one red line and exit 1 (the error's `exit_code`; like `fail`), Ctrl-C exit 130 with how to continue, and an
    exception no command anticipated still one line and exit 1, never a traceback (set $CURATE_DEBUG=1 to see it).
    Commands therefore just call the library; none catches CurateError itself."""

    def parse_args(self, ctx, args):
        ctx.meta[_ARGV] = list(args)  # the words typed: a usage error comes before --json is parsed
        try:
            return super().parse_args(ctx, args)
        except TyperException as exc:  # the root's own options: `curate --json status`
            _usage_json(ctx, exc)
            raise

    def invoke(self, ctx):
        global _json_asked
        _json_asked = False  # a test runner invokes many commands in one process
        _sigterm["pending"] = False
        try:
            done = super().invoke(ctx)
            still_terminated()  # the SIGTERM a finalizer swallowed: said, exit 143, though the work got to its end
            return done
        except TyperException as exc:  # typer's own: usage errors (exit 2, click's text), exits
            _usage_json(ctx, exc)
            raise
        except (Exit, Abort, SystemExit):
            raise
        except BrokenPipeError:  # `curate ... | head`: the reader has all it wanted
            # As Python's docs advise: point stdout at devnull, so the flush at exit cannot fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise Exit(0) from None
        except KeyboardInterrupt as exc:
            _stopped(exc)
        except CurateError as exc:
            fail(str(exc), exc.exit_code)
        except OSError as exc:  # the file system refused: a read-only or full folder, a folder where a file goes
            if os.environ.get(DEBUG_ENV):
                raise
            fail(file_error(exc) if exc.filename2 or exc.filename else no_file_error(exc))
        except Exception as exc:  # the last line of defence against a traceback
            if os.environ.get(DEBUG_ENV):
                raise
            fail(unexpected(exc))


def _usage_json(ctx, exc: TyperException) -> None:
    """Under `--json` (typed anywhere), a usage error's `{"error", "exit_code"}` on stdout too: a script reads why.
    `--json` given to a group (`curate --json status`) is said to go after the command."""
    where = getattr(getattr(exc, "ctx", None), "command", None)
    if getattr(exc, "option_name", None) == "--json" and hasattr(where, "commands"):
        words = ctx.meta.get(_ARGV, [])
        after = [w for w in words[words.index("--json") + 1 :] if not w.startswith("-")][:1]
        command = where.get_command(exc.ctx, after[0]) if after else None
        if command is not None and any("--json" in p.opts for p in command.params):  # `studio start` has none
            exc.message = f"{exc.message}: it goes after the command ({exc.ctx.command_path} {after[0]} --json)"
    if hasattr(exc, "format_message") and "--json" in ctx.meta.get(_ARGV, ()):
        print_json({"error": one_line(exc.format_message()), "exit_code": getattr(exc, "exit_code", 2)})


def file_error(exc: OSError) -> str:
    """A file-system refusal no command anticipated, said as what it is, naming the file (a rename's
    destination, not its temporary name). A name too long is said as that, cut short: a 5,000-character
    `NAME@VERSION` was printed whole, with advice on permissions and free space."""
    name = exc.filename2 or exc.filename
    if exc.errno == errno.ENAMETOOLONG:
        text = str(name)
        shown = text if len(text) <= LONG_NAME else f"{text[: LONG_NAME - 1]}…"
        return f"a name longer than the file system takes ({len(text)} characters): {shown}; use a shorter one"
    return (
        f"cannot write or read {name} ({exc.strerror or type(exc).__name__}): "
        "check that folder's permissions and free space, then re-run"
    )


FULL = (errno.ENOSPC, errno.EDQUOT)
LONG_NAME = 80  # characters of a name too long that an error shows


def no_file_error(exc: OSError) -> str:
    """A refusal without a file name (a full disk found by a library's write: a figure, a checkpoint), said as
    what it is; before, "unexpected OSError: [Errno 28] No space left on device"."""
    if exc.errno in FULL:
        return f"the disk being written to is full ({exc.strerror or 'no space left'}): free space there, then re-run"
    return unexpected(exc)


def unexpected(exc: Exception) -> str:
    if hasattr(exc, "statement") and hasattr(exc, "orig"):  # SQLAlchemy's: its text holds the SQL and its values
        text = str(exc.orig).strip()  # type: ignore[attr-defined]
        said = redact_text(text.splitlines()[0]) if text else type(exc.orig).__name__  # type: ignore[attr-defined]
        # before: the whole INSERT, with a clinic's file path and case id among its values
        return f"unexpected {type(exc).__name__} from the catalogue: {said} (set {DEBUG_ENV}=1 for the traceback)"
    return f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for the traceback)"


class reported:
    """`with reported():` turns a CurateError into one red line and its exit code (1), Ctrl-C into exit 130.
    `stop_ends`: for a command a stop ends as asked (a server): Ctrl-C or SIGTERM says "stopped (…)", and the
    block ends there, exit 0.

    Only `train/cli.py` still uses it (for its own Ctrl-C hint); `curate` relies on SafeGroup alone."""

    def __init__(self, interrupt_hint: str = INTERRUPTED, stop_ends: bool = False):
        self.interrupt_hint = interrupt_hint
        self.stop_ends = stop_ends

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and isinstance(exc, CurateError):
            fail(str(exc), exc.exit_code)
        if exc is not None and isinstance(exc, KeyboardInterrupt):
            if self.stop_ends:
                stop_done()
                err_console.print(
                    f"stopped ({'SIGTERM' if isinstance(exc, Terminated) else 'Ctrl-C'})", highlight=False
                )
                return True
            _stopped(exc, self.interrupt_hint)
        return False


def finite(data: Any) -> Any:
    """`data` with every NaN or infinity as None, dicts and lists walked: Python writes them as bare `NaN`, which
    is not JSON (a browser's or Node's JSON.parse, jq --strict, Go and Java refuse the whole document)."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(v) for v in data]
    return data


def json_text(data: Any, indent: int | None = 2, **kw) -> str:
    """Strict JSON (`finite`): what every `--json` and JSON file of the toolkit is written with."""
    return json.dumps(finite(data), indent=indent, default=str, allow_nan=False, **kw)


def print_json(data: Any) -> None:
    sys.stdout.write(json_text(data, ensure_ascii=False) + "\n")


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """A table for people: the first column left-aligned, the rest right; on a narrow terminal long values
    wrap inside their cell instead of being cut (off a terminal nothing is narrow: see PlainWhenPiped)."""
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right", overflow="fold")
    for r in rows:
        t.add_row(*[("" if v is None else shown(v)) for v in r])
    return t


@contextmanager
def progress_bars(quiet: bool = False, keep: bool = False) -> Iterator[Progress]:
    """rich progress bars on stderr (stdout stays clean for tables and --json), one per `add_task`:
    description, bar, done/total, elapsed and remaining time. `keep` leaves them on screen when done. Passing bars
    only on a terminal: elsewhere (a log, a pipe) rich draws none and ends with a blank line, which came before every
    error line ("\nerror: …")."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=quiet or not (keep or err_console.is_terminal),  # kept bars end a log with their last state
        transient=not keep,
    ) as progress:
        yield progress


@contextmanager
def stage_bars(
    quiet: bool = False, name: Callable[[str], str] = str
) -> Iterator[Callable[[str, int, int | None], None]]:
    """One progress bar per stage (or query), added when it first reports, titled `name(stage)`;
    yields the `on_progress(stage, done, total)` callback of the library's work done in stages."""
    with progress_bars(quiet) as progress:
        ids: dict[str, TaskID] = {}

        def on_progress(stage: str, done: int, total: int | None) -> None:
            if stage not in ids:
                ids[stage] = progress.add_task(name(stage), total=total)
            progress.update(ids[stage], completed=done, total=total)

        yield on_progress


@contextmanager
def progress_bar(label: str, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """One progress bar; yields the `on_progress(done, total)` callback the library's long-running
    functions take."""
    with stage_bars(quiet) as bars:
        bars(label, 0, None)  # on screen from the start
        yield lambda done, total: bars(label, done, total)
