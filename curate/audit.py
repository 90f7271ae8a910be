"""Audit log: every command that changes the catalogue leaves a `CommandRun` row.

`audited` also holds the workspace's writer lock for the whole command (see `curate.lock`), marks
the runs of a previous holder that was killed as "killed", so nothing stays "running" forever, and removes
the partial files killed writers left in tmp/ (`curate.files.remove_stale_parts`: only parts no live writer
holds, since report pages and `pipeline --demo` write there without the workspace lock).
"""

from __future__ import annotations

import errno
import hashlib
import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import select

from curate import __version__
from curate.errors import CurateError
from curate.files import remove_stale_parts
from curate.lock import (
    keep_previous,
    note_outcome,
    note_run,
    recorded_previous,
    stale_runs,
    unrecorded_outcomes,
    workspace_lock,
)
from curate.output import err_console, still_terminated
from curate.privacy import open_roots, tighten
from curate.redact import redact_value, secret_name
from db.models import CommandRun, utcnow


def _dim(message: str) -> None:
    err_console.print(message, style="dim", highlight=False, markup=False)


# What a writer is told when it cleared a killed run's partial files (stderr, one dim line; never their names).
on_note: Callable[[str], None] = _dim


def redact(args: dict[str, Any]) -> dict[str, Any]:
    """Drop values whose names look like secrets (`secret_name`), and secrets inside the others (user:password@
    in a URL); they must never reach the catalogue."""
    return {k: ("<redacted>" if secret_name(k) else redact_value(v)) for k, v in args.items()}


@dataclass
class Run:
    """The open audit record: its id (for provenance rows) and the summary to store."""

    id: int
    summary: dict[str, Any] = field(default_factory=dict)


def clear_partial_files(ws) -> int:
    """Remove the partial files and folders killed writers left in the workspace's temporary folders."""
    folders = {ws.tmp, ws.store.tmp}
    removed = sum(remove_stale_parts(f) for f in folders if f.is_dir())
    if removed:
        on_note(f"removed {removed} partial file(s) left by a killed run")
    return removed


def make_private(ws) -> int:
    """A workspace an older version (or another umask) left open to other local users is closed before this
    command writes into it: before, only `curate init` did so and only `curate status` warned, while ingest,
    dedupe and export wrote photos and the catalogue into a folder others could read."""
    roots = ws.private_paths()
    if not open_roots(roots):
        return 0
    changed = tighten(roots)
    if changed:
        on_note(f"made this workspace private: group and other access removed from {changed} file(s) and folder(s)")
    return changed


def mark_killed(ws, run_ids: list[int], outcomes: dict[int, str] | None = None) -> int:
    """Runs left "running" by a process that died are recorded as "killed"; one whose command could not record
    its outcome (the catalogue's server went away before the end) gets the outcome it left in the lock file."""
    if not run_ids:
        return 0
    with ws.session() as s:
        rows = s.exec(select(CommandRun).where(CommandRun.id.in_(run_ids), CommandRun.status == "running")).all()
        for row in rows:
            row.status = (outcomes or {}).get(row.id, "killed")
            row.finished_at = utcnow()
        return len(rows)


def _refused(exc: Exception) -> bool:
    """Whether a command's error refuses its input ("failed": `curate status` does not ask for a re-run that cannot
    succeed) rather than a fault met mid-work ("aborted"). A name too long for the file system is the input's."""
    if isinstance(exc, OSError):
        return exc.errno == errno.ENAMETOOLONG
    return isinstance(exc, CurateError) and not exc.midway


WRITER_KEY = "writer_folder"  # in a run's arguments: which folder's command it is (`writer_folder`)


def writer_folder(ws) -> str:
    """A digest of this host and workspace folder, recorded on each run: on a catalogue several folders share
    (PostgreSQL), a run "running" that this folder's lock does not hold is another folder's, not killed. Before,
    `curate status` in one folder called the other's dedupe at work "killed", and asked for it to be run again.
    A digest: the folder's path may hold a name."""
    where = f"{socket.gethostname()}\0{Path(ws.root).resolve()}"
    return hashlib.sha256(where.encode("utf-8", "surrogateescape")).hexdigest()[:16]


@contextmanager
def audited(ws, command: str, args: dict[str, Any] | None = None) -> Iterator[Run]:
    """Hold the workspace lock; record the run at start (so a killed run is visible) and its outcome at the end.
    A run is not begun once a SIGTERM came (`still_terminated`: the pipeline's next stage, after one swallowed)."""
    still_terminated()
    with workspace_lock(ws.root, command) as held:
        try:
            mark_killed(ws, stale_runs(held), unrecorded_outcomes(held))
        except BaseException:  # the catalogue still unreachable: the next holder records them, not nobody
            keep_previous(held)
            raise
        if held.depth == 1:
            recorded_previous(held)
        if held.depth == 1:  # once a command: a nested take in this process has swept already
            clear_partial_files(ws)
            make_private(ws)
        recorded = {**redact(args or {}), WRITER_KEY: writer_folder(ws)}
        row = CommandRun(command=command, arguments=json.dumps(recorded, default=str), tool_version=__version__)
        with ws.session() as s:
            s.add(row)
            s.flush()
            run = Run(id=row.id)
        note_run(held, run.id)
        status = "failed"
        try:
            yield run
            status = "ok"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except Exception as exc:  # a refusal of the input is "failed"; a fault met mid-work leaves it half done
            status = "failed" if _refused(exc) else "aborted"
            raise
        finally:
            try:
                with ws.session() as s:
                    row = s.get(CommandRun, run.id)
                    if row is not None:
                        row.status = status
                        row.summary = json.dumps(redact_value(run.summary), default=str)
                        row.finished_at = utcnow()
            except BaseException as exc:  # the audit row must never mask the command's own error
                note_outcome(held, run.id, status)  # before: "running" for good; the next holder records it
                if not isinstance(exc, Exception):  # a second Ctrl-C or SIGTERM while the catalogue hung: stop now
                    raise
