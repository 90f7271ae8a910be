"""One parallel map for every stage that decodes many images: process pool, results in input order,
batched commits, progress.

`run_parallel(fn, items, commit=...)` runs `fn` on every item in worker processes (in this process when
there are few items or one worker), hands the `(item, result)` pairs to `commit` in input order, `batch`
at a time, and reports `on_progress(done, total)` after each item. A worker's exception stops the run:
the pairs handed back before it (with a pool, up to the failing item's chunk) are committed first, so a
re-run does not redo them, then it is raised here once the other workers have finished the chunks they hold;
Ctrl-C or SIGTERM ends the workers at once (`_stop_workers`). The pool is always shut down. `fn` and `items` must
pickle (a module-level function).

`start="forkserver"` starts the workers from a clean process instead of forking this one: for work that
uses OpenCV's or OpenMP's threads when this process has used them already (the leakage audit, whose
second run in one process hung its forked workers inside OpenCV). They import what they need, about a
second each, so stages that only decode keep the faster fork; and, as with any such start, a script that
calls them needs the usual `if __name__ == "__main__":` guard (the CLI and notebooks do not): without it the
pool breaks, and the error says so.

A worker that dies (killed, out of memory) is `WorkerError`, one line naming the item, after what
finished before it is committed. Workers die with the process that started them (`_worker_start`): a
killed command leaves none behind holding its workspace's lock or its memory.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import InvalidStateError, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from pathlib import Path
from typing import TypeVar

from curate.errors import CurateError

T = TypeVar("T")
R = TypeVar("R")


class WorkerError(CurateError):
    """A worker process died without an answer (a signal, the kernel's out-of-memory killer)."""


def stage_of(
    on_progress: Callable[[str, int, int | None], None] | None, stage: str
) -> Callable[[int, int], None] | None:
    """A `(done, total)` callback reporting to `on_progress(stage, done, total)` (None stays None): one stage
    of work done in stages, for a loop that counts only its own items (`run_parallel`'s `on_progress`)."""
    return None if on_progress is None else lambda done, total: on_progress(stage, done, total)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _worker_start(owner: int, forked: bool, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    """Each worker first makes sure it dies with `owner`, the command's process; then runs the stage's own
    initializer. A pool's workers otherwise outlive a kill -9 of the command, blocked on a pipe nobody reads
    (and `curate.lock` closes a forked child's copy of the workspace lock). A forked worker asks the kernel to
    kill it when its parent, the command, dies (Linux). A clean-started one's parent is the forkserver, which
    stays up while any worker holds the pipe the command gave it: it watches the command itself (`_watch`).
    Ctrl-C and SIGTERM are the command's to handle: it ends its workers (`_stop_workers`), so a worker ignores
    Ctrl-C (a terminal sends it to every process of the group: an idle worker printed a traceback each) and
    dies on SIGTERM as a process does by default (a forked one inherits the command's `stop_on_sigterm`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if forked and os.getppid() != owner:  # the parent died before the request: nobody reads our answers
            os._exit(1)
    if not forked:
        _watch(owner)
    if initializer is not None:
        initializer(*initargs)


WATCH_S = 1.0  # how often a worker without a pidfd checks that the command still runs


def _watch(owner: int) -> None:
    """End this process once `owner` has ended, from a daemon thread: on Linux by waiting on a pidfd (readable
    when the process ends; never confused with a later process given the same pid), elsewhere by asking every
    `WATCH_S` whether the pid still exists."""
    try:
        handle = os.pidfd_open(owner)
    except (AttributeError, OSError):  # not Linux 5.3+, or gone already (ProcessLookupError is an OSError)
        handle = None
        if not alive(owner):
            os._exit(1)

    def wait() -> None:
        if handle is not None:
            select.select([handle], [], [])
        else:
            while alive(owner):
                time.sleep(WATCH_S)
        os._exit(1)

    threading.Thread(target=wait, name="curate-owner-watch", daemon=True).start()


def alive(pid: int) -> bool:
    """Whether process `pid` still exists (another user's counts: it is not ours to judge)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


ENTRY_POINTS = ("curate", "train")  # the console scripts pip writes (pyproject.toml), guarded


def _script_hint(start: str | None) -> str:
    """The other cause of a broken pool of clean-started workers: a script of the user's own, run as a file,
    whose top level calls this (each worker imports that file again and stops there). The CLI's own script and
    `python -m` have a guard."""
    main = sys.modules.get("__main__")
    if start in (None, "fork") or getattr(main, "__spec__", None) is not None or not getattr(main, "__file__", None):
        return ""
    if Path(main.__file__).name in ENTRY_POINTS:
        return ""
    return (
        f"; or, if {Path(main.__file__).name} is a script of your own calling curate, its code needs to be under "
        '`if __name__ == "__main__":` (each worker imports it again)'
    )


def run_parallel(
    fn: Callable[[T], R],
    items: Sequence[T],
    commit: Callable[[list[tuple[T, R]]], None],
    *,
    batch: int = 64,
    workers: int = 0,
    serial_below: int = 9,
    chunksize: int = 4,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    on_progress: Callable[[int, int], None] | None = None,
    start: str | None = None,
) -> None:
    """Map `fn` over `items` (see the module docstring). `workers` 0 means one per core; fewer than
    `serial_below` items run in this process, where a pool would cost more than it saves."""
    total = len(items)
    workers = min(workers or os.cpu_count() or 1, max(total, 1))  # never more processes than items
    if workers > 1 and total >= serial_below:
        context = multiprocessing.get_context(start)  # None: the platform's default
        forked = context.get_start_method() == "fork"
        # before the pool, not at the stop: SIGTERM to the whole process group (`timeout`, a service's stop) ends
        # the workers first, and the pool's thread fails on the cancelled futures before this process stops
        _quiet_broken_pool_thread()
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_worker_start,
            initargs=(os.getpid(), forked, initializer, initargs),  # forked: this process is the parent
        )
    else:
        pool = None
        if initializer is not None:
            initializer(*initargs)
    pending: list[tuple[T, R]] = []
    try:
        results = map(fn, items) if pool is None else pool.map(fn, items, chunksize=chunksize)  # a stop here too
        for n, item in enumerate(items, 1):
            try:
                result = next(results)
            except BaseException as exc:
                if pending:
                    commit(pending)  # what finished before the failure is kept
                if isinstance(exc, BrokenProcessPool):  # killed, out of memory: a line, not a traceback
                    raise WorkerError(
                        f"a worker process stopped at item {n} of {total} (killed, or out of memory); what finished "
                        f"is kept: run the command again, with --workers 1 to use less memory{_script_hint(start)}"
                    ) from None
                raise
            pending.append((item, result))
            if len(pending) >= batch:
                commit(pending)
                pending = []
            if on_progress:
                on_progress(n, total)
        if pending:
            commit(pending)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (`Terminated`): a worker's own error lets the others finish
        if pool is not None:
            _stop_workers(pool)
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


STOP_S = 5.0  # how long a worker asked to end (SIGTERM) has before it is killed


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """End a pool's workers now, not once their chunks are done: the command is stopping (Ctrl-C, SIGTERM), and a
    clean-started worker gets no signal of its own when only this process is told to stop.

    Neither the executor nor Python 3.14's `terminate_workers` can do this safely: a worker ended while it sends
    an answer leaves half a message in the answers' pipe, and the pool's thread, reading it, waits for the rest
    for good (this process holds the pipe's other end open), and with it `shutdown` and the interpreter's exit.
    So, through the executor's own attributes (`_processes`, `_result_queue`, `_call_queue`): each worker is
    sent SIGTERM (SIGKILL after `STOP_S`), and this process closes its end of the answers' pipe, whatever
    happens meanwhile: once the workers are gone the reader sees the pipe's end, an error the pool's thread
    reports as a broken pool. The thread feeding work to the workers may be blocked on a full pipe nobody
    reads any more: the interpreter's exit does not wait for it."""
    _quiet_broken_pool_thread()
    processes = list((getattr(pool, "_processes", None) or {}).values())
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
    with suppress(AttributeError):
        pool._call_queue.cancel_join_thread()  # type: ignore[attr-defined]
    try:
        for process in processes:
            with suppress(OSError, ValueError):  # gone already, or closed
                process.terminate()
        with suppress(ValueError):  # a process object closed already
            waiting = {process.sentinel: process for process in processes}
            deadline = time.monotonic() + STOP_S
            while waiting and time.monotonic() < deadline:
                for ended in multiprocessing.connection.wait(list(waiting), max(0.0, deadline - time.monotonic())):
                    waiting.pop(ended)
            for process in waiting.values():
                with suppress(OSError, ValueError):
                    process.kill()
    finally:
        if writer is not None:
            with suppress(OSError):
                writer.close()


def _quiet_broken_pool_thread() -> None:
    """Python 3.11's pool thread, ending a pool whose workers were stopped, sets an exception on every future
    still listed, those `Executor.map` cancelled on Ctrl-C too, and dies printing `InvalidStateError` (3.12
    skips cancelled ones): the stop is the command's own, and its one line must stay the only one. Only that
    error of that thread is silenced; the hook is installed once."""
    if sys.version_info >= (3, 12) or getattr(threading.excepthook, "_curate_quiet", False):
        return
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if issubclass(args.exc_type, InvalidStateError) and type(args.thread).__name__ == "_ExecutorManagerThread":
            return
        previous(args)

    hook._curate_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = hook
