"""A command killed with -9 while its worker processes run leaves none behind to hold the workspace.

Before, a pool's workers outlived their killed parent (blocked writing answers nobody read) and kept their
inherited copy of the workspace lock open, so the next command waited for a dead pid forever.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from curate.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "300"}
ENV.pop("CURATE_DB_URL", None)

# The CLI, killed (-9) as soon as the first answer of its worker pool comes back: the others are still working.
_KILLED_WITH_WORKERS = """
import os, signal
from concurrent.futures import process
real_map = process.ProcessPoolExecutor.map
def map_(self, *args, **kwargs):
    answers = real_map(self, *args, **kwargs)
    def first_then_die():
        yield next(answers)
        print("workers", " ".join(str(p) for p in self._processes), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return first_then_die()
process.ProcessPoolExecutor.map = map_
from curate.cli import main
main()
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_killed_ingest_leaves_no_worker_and_the_rerun_completes(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(folder / f"{i}.jpg", quality=90)
    ws = Workspace.init(tmp_path / "ws")
    args = ["ingest", str(folder), "-s", "clinic", "-w", str(ws.root), "--workers", "2"]
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_WITH_WORKERS, *args], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    workers = [int(p) for p in killed.stdout.split("workers", 1)[1].split()]
    assert len(workers) == 2
    deadline = time.monotonic() + 10
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in workers), "a worker outlived its killed command"
    status = subprocess.run(
        [sys.executable, "-m", "curate", "status", "-w", str(ws.root), "--json"], capture_output=True, env=ENV
    )
    assert json.loads(status.stdout)["running_now"] is None
    rerun = subprocess.run(
        [sys.executable, "-m", "curate", *args], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert rerun.returncode == 0, rerun.stderr
    status = subprocess.run(
        [sys.executable, "-m", "curate", "status", "-w", str(ws.root), "--json"], capture_output=True, env=ENV
    )
    assert json.loads(status.stdout)["images"] == 40
