"""Audit log: every command that changes the catalogue leaves a `CommandRun` row."""
from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from curate import __version__
from db.models import CommandRun, utcnow

_SECRET = re.compile(r"token|password|passwd|secret|api_?key|credential", re.I)


def redact(args: dict[str, Any]) -> dict[str, Any]:
    """Drop values whose names look like secrets; they must never reach the catalogue."""
    return {k: ("<redacted>" if _SECRET.search(k) else v) for k, v in args.items()}


@dataclass
class Run:
    """The open audit record: its id (for provenance rows) and the summary to store."""

    id: int
    summary: dict[str, Any] = field(default_factory=dict)


@contextmanager
def audited(ws, command: str, args: dict[str, Any] | None = None) -> Iterator[Run]:
    """Record the run at start (so a killed run is visible) and its outcome at the end."""
    row = CommandRun(command=command, arguments=json.dumps(redact(args or {}), default=str), tool_version=__version__)
    with ws.session() as s:
        s.add(row)
        s.flush()
        run = Run(id=row.id)
    status = "failed"
    try:
        yield run
        status = "ok"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        try:
            with ws.session() as s:
                row = s.get(CommandRun, run.id)
                if row is not None:
                    row.status = status
                    row.summary = json.dumps(run.summary, default=str)
                    row.finished_at = utcnow()
        except Exception:  # the audit row must never mask the command's own error
            pass
