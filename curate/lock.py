"""One writer per workspace: an advisory `fcntl.flock` on the workspace folder and on `<workspace>/.curate.lock`.

Every command that changes the catalogue, the store or the exports holds it for its whole run (taken
by `curate.audit.audited`); a second writer waits for it and says so once (`on_wait`). Readers
(`curate status`, `export list`) never hold it: `holder` only probes it, for an instant, to say who is
running now. The kernel drops the lock when its holder dies, even from kill -9, so a killed command never
blocks the next one; the lock file names the audit runs of its holder, which lets the next writer mark a
killed run "killed" instead of leaving it "running". The folder's lock is what excludes: a lock file deleted
while its holder runs (a clean-up script, `rm .curate.*`) is made anew by the next writer, whose lock on the new
file no one holds, so two writers ran at once; the folder cannot be deleted from under a running command.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from curate.errors import WorkspaceError
from curate.numbers import whole_number

LOCK_NAME = ".curate.lock"
_NO_LINK = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)  # the lock file is opened, never a link's target

# What a waiting writer is told; the CLI points this at its stderr console.
on_wait: Callable[[str], None] = lambda message: None  # noqa: E731
# A probe (`holder`) holds the lock for microseconds: a writer retries this long before it says it waits.
PROBE_GRACE = 0.2


@dataclass
class Held:
    fd: int
    path: Path
    folder: int  # the workspace folder, flock-ed: the lock file can be deleted, the folder not (module docstring)
    depth: int = 1
    info: dict = field(default_factory=dict)
    previous: dict = field(default_factory=dict)  # what the last holder wrote (its runs, if it was killed)
    keep: bool = False  # leave the lock file's runs for the next holder (an outcome the catalogue did not take)


_held: dict[Path, Held] = {}
_guard = threading.Lock()


def _drop_inherited() -> None:
    """In a forked child (a worker pool's): close its copies of the parent's lock files. An flock lasts while
    any copy of the file is open, so a worker outliving its killed parent kept the workspace locked for every
    later command. Closing (never unlocking, which would free the parent's lock) leaves the lock the parent's."""
    for held in _held.values():
        for fd in (held.fd, held.folder):
            with suppress(OSError):
                os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_drop_inherited)


def _read(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 65536) or b"{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(held: Held) -> None:
    """The holder's record into the lock file; an OSError names the file (a full disk stopped `curate dedupe` with
    "the disk being written to is full" and no word of where)."""
    data = json.dumps(held.info).encode()
    try:
        os.lseek(held.fd, 0, os.SEEK_SET)
        os.ftruncate(held.fd, 0)
        os.write(held.fd, data)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(held.path)) from exc


def _take_soon(fd: int) -> bool:
    """Take the lock if it is free now or within `PROBE_GRACE` (a reader's probe passing); never blocks longer."""
    deadline = time.monotonic() + PROBE_GRACE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def _lockable(folder: int) -> bool:
    """Whether the kernel locks a folder here; where it refuses (a file system without folder locks), the lock
    file alone is the lock, as before. On NFS a folder's flock holds on this machine only, while the lock file's
    holds across machines: both are taken, and `holder` asks both."""
    try:
        fcntl.flock(folder, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    fcntl.flock(folder, fcntl.LOCK_UN)
    return True


def holder(root: Path) -> dict | None:
    """Who holds the workspace's writer lock now: what it wrote in the lock file (pid, command, since, runs;
    empty in the instant after it took the lock, or when its lock file was deleted), or None when no writer is
    running. Takes a shared lock for an instant and never waits."""
    try:
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        fcntl.flock(folder, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _lock_file(root, probe=False) or {}
    except OSError:  # a folder the kernel does not lock (`_lockable`)
        pass
    finally:
        os.close(folder)  # releases the probe's shared lock
    # the folder free here: the lock file's own flock says (a writer on another machine over NFS holds only that)
    return _lock_file(root, probe=True)


def _lock_file(root: Path, probe: bool) -> dict | None:
    """What the lock file says (None without one); with `probe`, None too when no one holds its flock."""
    try:
        fd = os.open(Path(root) / LOCK_NAME, os.O_RDONLY | _NO_LINK)
    except OSError:
        return None
    try:
        if probe:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        return _read(fd)
    except BlockingIOError:
        return _read(fd)
    finally:
        os.close(fd)


def holding(root: Path) -> bool:
    """Whether this process holds `root`'s writer lock: a writer opens its catalogue to write, even on a nearly full
    disk, where a reader's is opened read-only (`curate.workspace.Workspace`), and meets the disk's own error."""
    with _guard:
        return Path(root).resolve() in _held


def describe(info: dict) -> str:
    """A lock holder as the lock file names it: "`curate ingest` (pid 123, since 10:02:03)"."""
    what = f"`curate {info['command']}`" if info.get("command") else "another curate command"
    pid = (
        f" (pid {info['pid']}" + (f", since {info['since']}" if info.get("since") else "") + ")"
        if info.get("pid")
        else ""
    )
    return what + pid


@contextmanager
def workspace_lock(root: Path, command: str) -> Iterator[Held]:
    """Hold the workspace's writer lock (re-entrant within one process), waiting for another holder."""
    root = Path(root).resolve()
    with _guard:
        held = _held.get(root)
        if held is not None:
            held.depth += 1
    if held is None:
        path = root / LOCK_NAME
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        fd = -1
        try:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | _NO_LINK, 0o600)
            except OSError as exc:  # a link is never our lock file: before, its target was written, then emptied
                if exc.errno == errno.ELOOP:
                    raise WorkspaceError(
                        f"{path} is a symbolic link, not the workspace's lock file: remove the link (curate makes "
                        "the file itself), then run again"
                    ) from None
                raise
            for lock in (folder, fd):  # the folder first: it excludes even when the file was deleted and made anew
                if lock == folder and not _lockable(folder):
                    continue
                if not _take_soon(lock):
                    on_wait(f"waiting for {describe(_read(fd))} to finish with this workspace (Ctrl-C to stop) …")
                    fcntl.flock(lock, fcntl.LOCK_EX)
        except BaseException:
            for opened in (fd, folder):
                with suppress(OSError):
                    os.close(opened)
            raise
        previous = _read(fd)
        held = Held(
            fd=fd,
            path=path,
            folder=folder,
            previous=previous,
            info={"pid": os.getpid(), "command": command, "since": time.strftime("%H:%M:%S"), "runs": []},
        )
        # the previous holder's runs stay in the file until they are recorded (`recorded_previous`): killed in
        # between, this holder had lost them, and a killed run was "running" in the audit table for good
        held.info["runs"] = stale_runs(held)
        if left := _outcomes(previous):  # only what a holder can have written: a damaged file is read past
            held.info["outcomes"] = {str(k): v for k, v in left.items()}
        _write(held)
        with _guard:
            _held[root] = held
    try:
        yield held
    finally:
        with _guard:
            held.depth -= 1
            last = held.depth == 0
            if last:
                _held.pop(root, None)
        if last:
            try:
                if not held.keep:
                    os.ftruncate(held.fd, 0)  # a clean exit leaves no runs for the next holder to mark
            finally:
                os.close(held.fd)  # releases the flocks
                os.close(held.folder)


def note_run(held: Held, run_id: int) -> None:
    """Record an audit run in the lock file, so the next holder can tell it was killed."""
    held.info.setdefault("runs", []).append(run_id)
    _write(held)


def note_outcome(held: Held, run_id: int, status: str) -> None:
    """Leave a run's outcome in the lock file for the next holder to record: the catalogue did not take it."""
    held.info.setdefault("outcomes", {})[str(run_id)] = status
    held.keep = True
    with suppress(OSError):
        _write(held)


def keep_previous(held: Held) -> None:
    """Keep the previous holder's unrecorded runs and outcomes in this holder's lock file after it ends: this command
    could not record them either (its catalogue still unreachable). The file holds them since the lock was taken."""
    held.keep = True
    with suppress(OSError):
        _write(held)


def recorded_previous(held: Held) -> None:
    """The previous holder's runs and outcomes are in the catalogue now: this holder's lock file drops them."""
    stale, left = set(stale_runs(held)), {str(k) for k in unrecorded_outcomes(held)}
    held.info["runs"] = [r for r in held.info.get("runs", []) if r not in stale]
    outcomes = {k: v for k, v in held.info.get("outcomes", {}).items() if k not in left}
    if outcomes:
        held.info["outcomes"] = outcomes
    else:
        held.info.pop("outcomes", None)
    with suppress(OSError):
        _write(held)


def unrecorded_outcomes(held: Held) -> dict[int, str]:
    """The outcomes the previous holder could not record (`note_outcome`), by run id."""
    return _outcomes(held.previous)


def outcomes_left(root: Path) -> dict[int, str]:
    """The outcomes a writer left in the lock file for the next to record (`note_outcome`), by run id, read without
    taking the lock: `curate status` tells them meanwhile (before: an export that ended "ok" but could not record
    it, the disk full, was "killed" until another writer ran)."""
    return _outcomes(_lock_record(root))


def runs_left(root: Path) -> set[int]:
    """The runs this folder's lock file names (a holder's at work, or a killed one's not yet recorded), read without
    taking the lock: they are this folder's whatever host or path their run recorded (`audit.writer_folder`)."""
    runs = _lock_record(root).get("runs")
    return {r for r in runs if isinstance(r, int) and not isinstance(r, bool)} if isinstance(runs, list) else set()


def _lock_record(root: Path) -> dict:
    try:
        fd = os.open(Path(root) / LOCK_NAME, os.O_RDONLY | _NO_LINK)
    except OSError:
        return {}
    try:
        return _read(fd)
    finally:
        os.close(fd)


def _outcomes(info: dict) -> dict[int, str]:
    outcomes = info.get("outcomes")
    if not isinstance(outcomes, dict):
        return {}
    return {
        k: v
        for key, v in outcomes.items()
        if (k := whole_number(key)) is not None and v in ("ok", "failed", "aborted", "interrupted")
    }


def stale_runs(held: Held) -> list[int]:
    """Audit runs the previous holder left in the lock file: it died without finishing them."""
    runs = held.previous.get("runs") or []
    return [r for r in runs if isinstance(r, int)]
