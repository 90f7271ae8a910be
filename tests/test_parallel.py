"""The one parallel map (curate/parallel.py): order, batches, progress, and what a worker failure keeps."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from curate.errors import StoreError
from curate.parallel import WorkerError, run_parallel


def square(x: int) -> int:
    return x * x


def fails_at_seven(x: int) -> int:
    if x == 7:
        raise StoreError("disk full")
    return x


@pytest.mark.parametrize("workers", [1, 3])
def test_results_in_order_in_batches_with_progress(workers):
    batches, progress = [], []
    run_parallel(
        square,
        list(range(20)),
        batches.append,
        batch=6,
        workers=workers,
        on_progress=lambda d, t: progress.append((d, t)),
    )
    assert [len(b) for b in batches] == [6, 6, 6, 2]
    assert [pair for b in batches for pair in b] == [(i, i * i) for i in range(20)]
    assert progress == [(n, 20) for n in range(1, 21)]


@pytest.mark.parametrize("workers", [1, 3])
def test_a_worker_error_is_raised_after_the_finished_items_are_committed(workers):
    committed = []
    with pytest.raises(StoreError, match="disk full"):
        run_parallel(fails_at_seven, list(range(20)), lambda b: committed.extend(b), batch=5, workers=workers)
    if workers == 1:
        assert committed == [(i, i) for i in range(7)]
    else:  # a pool hands results back a chunk at a time: the failing item's chunk is lost with it
        assert committed == [(i, i) for i in range(len(committed))] and 4 <= len(committed) <= 7


def dies_at_seven(x: int) -> int:
    if x == 7:
        os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer does
    return x


@pytest.mark.parametrize("start", [None, "forkserver"])
def test_a_killed_worker_is_one_line_and_what_finished_is_kept(start):
    committed = []
    with pytest.raises(WorkerError, match=r"a worker process stopped at item \d+ of 20 .*--workers 1") as err:
        run_parallel(dies_at_seven, list(range(20)), committed.extend, batch=2, workers=2, chunksize=1, start=start)
    assert "\n" not in str(err.value)
    assert committed == [(i, i) for i in range(len(committed))] and len(committed) <= 7


def test_no_items_commits_nothing():
    calls = []
    run_parallel(square, [], calls.append)
    assert calls == []


def test_a_script_without_a_main_guard_is_told_why_its_workers_stopped(tmp_path):
    """Clean-started workers import the calling script again: unguarded, each stops there, and the one line
    says what to do instead of blaming memory alone."""
    script = tmp_path / "my_audit.py"
    script.write_text(
        "import math\nfrom curate.parallel import run_parallel\n"
        "run_parallel(math.sqrt, list(range(20)), print, workers=2, start='forkserver')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0
    assert (
        'if my_audit.py is a script of your own calling curate, its code needs to be under `if __name__ == "__main__":`'
        in r.stderr
    )
    guarded = tmp_path / "guarded.py"
    guarded.write_text(
        script.read_text().replace("run_parallel(math", "if __name__ == '__main__':\n    run_parallel(math")
    )
    r = subprocess.run([sys.executable, str(guarded)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) >= 1


_BIG_ANSWERS = """
import os, signal, sys, threading, time
import numpy as np
from curate.parallel import run_parallel

def answer(i):
    if i == 5 and sys.argv[1] == "error":
        raise ValueError("item 5 is bad")
    if sys.argv[1] == "ctrl-c":
        time.sleep(0.05)
    return np.ones(300_000)  # 2.4 MB: an answer goes through the pipe in many writes

commits = 0
def commit(pairs):
    global commits
    commits += 1
    if commits == 3 and sys.argv[1] == "stop":
        raise KeyboardInterrupt  # Ctrl-C (or SIGTERM) while the other workers are still answering

if __name__ == "__main__":
    for attempt in range(8):
        if sys.argv[1] == "ctrl-c":  # arrives while this process waits for an answer (inside Executor.map)
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            items = list(range(400 if sys.argv[1] == "ctrl-c" else 40))
            run_parallel(answer, items, commit, batch=1, workers=4, chunksize=1, start=sys.argv[2])
        except (ValueError, KeyboardInterrupt) as exc:
            print(type(exc).__name__, flush=True)
        commits = 0
"""


@pytest.mark.parametrize("start", ["fork", "forkserver"])
@pytest.mark.parametrize("how", ["error", "stop", "ctrl-c"])
def test_a_run_stopped_while_workers_send_big_answers_returns(how, start, tmp_path):
    """A worker's error, or Ctrl-C, while the other workers are sending answers of megabytes: `run_parallel`
    raises at once, with no other output (Python 3.11's pool thread printed InvalidStateError for the futures
    Ctrl-C cancelled). Before, it ended those workers mid-answer and the pool's thread waited for the rest of a
    half-sent message for good: the leakage audit of a version with an unreadable image hung CI for 90 minutes."""
    script = tmp_path / "job.py"
    script.write_text(_BIG_ANSWERS)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    try:
        r = subprocess.run(
            [sys.executable, str(script), how, start], capture_output=True, text=True, env=env, timeout=90
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"run_parallel hung after a {how} while its workers were answering")
    expected = "ValueError" if how == "error" else "KeyboardInterrupt"
    assert r.stdout.split() == [expected] * 8, (r.stdout, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
