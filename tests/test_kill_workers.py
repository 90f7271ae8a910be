"""A command killed (-9, or SIGTERM) while its worker processes run leaves none behind to hold the workspace.

Before, a pool's workers outlived their killed parent (blocked writing answers nobody read) and kept their
inherited copy of the workspace lock open, so the next command waited for a dead pid forever. Clean-started
workers (the leakage audit's forkserver) outlived both a kill -9 and a SIGTERM, 115-120 MB each, for good.
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

# The CLI, sent SIGNAL as soon as the first answer of its worker pool comes back: the others are still working.
_STOPPED_WITH_WORKERS = """
import os, signal, time
from concurrent.futures import process
real_map = process.ProcessPoolExecutor.map
def map_(self, *args, **kwargs):
    answers = real_map(self, *args, **kwargs)
    def first_then_stop():
        yield next(answers)
        print("workers", " ".join(str(p) for p in self._processes), flush=True)
        global STOPPED_AT
        STOPPED_AT = time.monotonic()
        os.kill(os.getpid(), signal.SIGNAL)
        yield from answers
    return first_then_stop()
process.ProcessPoolExecutor.map = map_
"""
_KILLED_WITH_WORKERS = _STOPPED_WITH_WORKERS.replace("SIGNAL", "SIGKILL") + "from curate.cli import main\nmain()\n"
_TERMINATED_WITH_WORKERS = _STOPPED_WITH_WORKERS.replace("SIGNAL", "SIGTERM") + "from curate.cli import main\nmain()\n"

# Clean-started workers (as the leakage audit's), the first item short, the others ten seconds long, the
# script stopped by SIGNAL once the first is done.
_CLEAN_STARTED = (
    _STOPPED_WITH_WORKERS
    + """
import time
from curate.output import Terminated, stop_on_sigterm
from curate.parallel import run_parallel
if __name__ == "__main__":
    stop_on_sigterm()
    try:
        run_parallel(time.sleep, [0.1] + [10.0] * 9, lambda done: None, workers=2, chunksize=1, start="forkserver")
    except Terminated:
        print("terminated after", time.monotonic() - STOPPED_AT, flush=True)
"""
)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _workers_gone(stdout: str, within: float) -> bool:
    """Whether the two workers the script printed have ended within `within` seconds."""
    workers = [int(p) for p in stdout.split("workers", 1)[1].split()[:2]]
    assert len(workers) == 2, stdout
    deadline = time.monotonic() + within
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(alive(p) for p in workers)


def _ingest_stopped_by(
    script: str, tmp_path: Path, seed: int, size: tuple[int, int] = (300, 400)
) -> tuple[Workspace, list[str], subprocess.CompletedProcess]:
    """40 noise photos, and `curate ingest` of them run by `script` (which stops it); (workspace, the ingest's
    arguments, the stopped run)."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"{i}.jpg", quality=90)
    ws = Workspace.init(tmp_path / "ws")
    args = ["ingest", str(folder), "-s", "clinic", "-w", str(ws.root), "--workers", "2"]
    stopped = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=ENV, timeout=120
    )
    return ws, args, stopped


# SIGTERM to the whole process group (`timeout`, `kill -- -PGID`, a service's stop) halfway through: the command
# and its workers all get it at once.
_GROUP_TERMINATED = """
import os, signal, threading
from concurrent.futures import process
real_map = process.ProcessPoolExecutor.map
def map_(self, *args, **kwargs):
    answers = real_map(self, *args, **kwargs)
    def halfway_then_stop():
        for n, answer in enumerate(answers):
            if n == 4:  # from another thread: the command is waiting for an answer, as `timeout` finds it
                threading.Timer(0.05, os.killpg, (0, signal.SIGTERM)).start()
            yield answer
    return halfway_then_stop()
process.ProcessPoolExecutor.map = map_
os.setpgid(0, 0)
from curate.cli import main
main()
"""


def test_sigterm_to_the_process_group_is_one_line_too(tmp_path):
    """Before: `timeout 1 curate ingest …` printed the pool thread's InvalidStateError traceback above the line."""
    _, _, stopped = _ingest_stopped_by(_GROUP_TERMINATED, tmp_path, 2, size=(1200, 1600))
    assert stopped.returncode == 143, stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1] == "error: terminated (SIGTERM); re-run the same command to continue"
    assert "Traceback" not in stopped.stderr and "InvalidStateError" not in stopped.stderr


def test_a_killed_ingest_leaves_no_worker_and_the_rerun_completes(tmp_path):
    ws, args, killed = _ingest_stopped_by(_KILLED_WITH_WORKERS, tmp_path, 0)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _workers_gone(killed.stdout, within=10), "a worker outlived its killed command"
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


def test_clean_started_workers_end_with_a_killed_command(tmp_path):
    """kill -9: the forkserver's workers, whose parent is not the command, watch the command and end with it."""
    script = tmp_path / "job.py"
    script.write_text(_CLEAN_STARTED.replace("SIGNAL", "SIGKILL"))
    killed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=ENV, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _workers_gone(killed.stdout, within=10), "a clean-started worker outlived its killed command"


def test_sigterm_ends_clean_started_workers_at_once(tmp_path):
    """SIGTERM is taken as Ctrl-C: the run stops, and its workers are ended, not waited for (the items they
    had begun would take ten seconds more)."""
    script = tmp_path / "job.py"
    script.write_text(_CLEAN_STARTED.replace("SIGNAL", "SIGTERM"))
    stopped = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=ENV, timeout=120)
    assert stopped.returncode == 0 and "terminated" in stopped.stdout, stopped.stderr
    assert _workers_gone(stopped.stdout, within=5)
    assert float(stopped.stdout.split("after", 1)[1].split()[0]) < 5  # from the first answer to the end


def test_a_terminated_ingest_says_so_in_one_line_and_the_rerun_completes(tmp_path):
    ws, args, stopped = _ingest_stopped_by(_TERMINATED_WITH_WORKERS, tmp_path, 1)
    assert stopped.returncode == 143, stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1] == "error: terminated (SIGTERM); re-run the same command to continue"
    assert "Traceback" not in stopped.stderr
    assert _workers_gone(stopped.stdout, within=10)
    status = json.loads(
        subprocess.run(
            [sys.executable, "-m", "curate", "status", "-w", str(ws.root), "--json"], capture_output=True, env=ENV
        ).stdout
    )
    assert status["running_now"] is None
    rerun = subprocess.run(
        [sys.executable, "-m", "curate", *args], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert rerun.returncode == 0, rerun.stderr
    with ws.session() as s:
        from sqlmodel import select

        from db.models import CommandRun

        assert [r.status for r in s.exec(select(CommandRun).order_by(CommandRun.id)).all()] == ["interrupted", "ok"]


_WORKER_SIGNALS = """
import os, signal, sys, time
from curate.output import stop_on_sigterm
from curate.parallel import _worker_start
stop_on_sigterm()  # as the CLI does before any pool is made: a forked worker inherits it
child = os.fork()
if child == 0:
    _worker_start(os.getppid(), True, None, ())
    time.sleep(30)
    os._exit(0)
time.sleep(0.5)
os.kill(child, signal.SIGINT)  # a terminal's Ctrl-C reaches every process of the group
time.sleep(0.5)
print("alive after Ctrl-C", os.waitpid(child, os.WNOHANG) == (0, 0), flush=True)
os.kill(child, signal.SIGTERM)  # the command ending its workers
_, status = os.waitpid(child, 0)
print("ended by", os.WTERMSIG(status) if os.WIFSIGNALED(status) else "exit", flush=True)
"""


def test_a_worker_leaves_ctrl_c_to_its_command_and_dies_quietly_on_sigterm():
    """A worker ignores Ctrl-C (the command ends it) and dies on SIGTERM as a process does by default, though it
    inherited the command's SIGTERM handler: before, each idle worker printed a KeyboardInterrupt or
    `Terminated` traceback above the command's one line."""
    run = subprocess.run([sys.executable, "-c", _WORKER_SIGNALS], capture_output=True, text=True, env=ENV, timeout=60)
    assert run.stdout.split("\n")[:2] == ["alive after Ctrl-C True", f"ended by {int(signal.SIGTERM)}"], run
    assert "Traceback" not in run.stderr, run.stderr


_STOPPED_WHILE_SUBMITTING = """
import os, time
from concurrent.futures import process
from curate.parallel import run_parallel
real_map = process.ProcessPoolExecutor.map
workers = []
def map_(self, *args, **kwargs):
    answers = real_map(self, *args, **kwargs)  # every item submitted, the workers started
    workers.extend(self._processes)
    raise KeyboardInterrupt  # Ctrl-C (or SIGTERM) before the first answer is asked for
process.ProcessPoolExecutor.map = map_
def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
if __name__ == "__main__":
    try:
        run_parallel(time.sleep, [10.0] * 12, lambda done: None, workers=2, chunksize=1)
    except KeyboardInterrupt:
        deadline = time.monotonic() + 5  # this process still running: its workers must be ended by run_parallel
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        print("stopped; workers alive:", sum(alive(p) for p in workers), "of", len(workers), flush=True)
    os._exit(0)
"""


def test_a_stop_while_items_are_submitted_ends_the_workers_too(tmp_path):
    """A Ctrl-C or SIGTERM inside `pool.map` (submitting, starting the workers) skipped the clean-up: the
    command then waited at exit for every item, and workers that ignore Ctrl-C no longer died of it."""
    script = tmp_path / "job.py"
    script.write_text(_STOPPED_WHILE_SUBMITTING)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=ENV, timeout=60)
    assert "stopped; workers alive: 0 of 2" in run.stdout, (run.stdout, run.stderr)
