"""A SIGTERM whose exception Python swallowed still stops the command, at its next stage or at its end.

A probe sent `curate pipeline` SIGTERM as dedupe began: 3 times in 14 the signal's exception was raised inside
SQLAlchemy's weakref callback, where Python prints "Exception ignored in …" and goes on, and every stage ran to
the end, exit 0. Here a finalizer sends the signal to its own process, so the handler runs inside it, as there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import images as I

from curate.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "300"}
ENV.pop("CURATE_DB_URL", None)

# `curate ARGS` whose first ingest drops an object whose finalizer sends SIGTERM: the handler's exception is
# raised inside the finalizer, and Python ignores it
_SWALLOWED = """
import os, signal, sys
import curate.intake.ingest as ingest
real = ingest.ingest_folder
class Sigterm:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))  # the handler runs here, in the finalizer
def ingest_folder(*args, **kwargs):
    Sigterm()
    return real(*args, **kwargs)
ingest.ingest_folder = ingest_folder
from curate.cli import main
sys.argv = ["curate", *sys.argv[1:]]
main()
"""


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _SWALLOWED, *args], cwd=cwd, capture_output=True, text=True, env=ENV, timeout=300
    )


def _commands(root: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(root / "catalogue.db") as db:
        return [c for (c,) in db.execute("select command from command_runs order by id")]


def test_the_pipeline_stops_before_its_next_stage(tmp_path):
    for source in ("a", "b"):
        (tmp_path / "incoming" / source).mkdir(parents=True)
        (tmp_path / "incoming" / source / "p.jpg").write_bytes(I.jpeg(ord(source)))
    done = _run(tmp_path, "pipeline")
    assert "Exception ignored" in done.stderr  # the swallowed one, as the probe saw it
    assert done.returncode == 143 and done.stderr.strip().endswith(
        "error: terminated (SIGTERM); re-run the same command to continue"
    ), done.stderr[-1500:]
    assert _commands(tmp_path) == ["ingest"]  # before: ingest, ingest, dedupe: the stages after the signal ran too
    again = subprocess.run(
        [sys.executable, "-m", "curate", "status", "--json"], cwd=tmp_path, capture_output=True, text=True, env=ENV
    )
    assert json.loads(again.stdout)["images"] == 1


def test_a_command_of_one_stage_ends_as_terminated(tmp_path):
    Workspace.init(tmp_path / "ws")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "p.jpg").write_bytes(I.jpeg(1))
    done = _run(tmp_path, "ingest", "in", "-s", "clinic", "-w", "ws")
    assert done.returncode == 143 and "terminated (SIGTERM)" in done.stderr, done.stderr[-1500:]  # before: exit 0
