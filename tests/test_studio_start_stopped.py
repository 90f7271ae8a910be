"""`curate studio start` stopped while Label Studio is still starting leaves no server nobody knows of.

Before, the server's pid file was written only once it answered: Ctrl-C or SIGTERM in those ~10 s left a
Label Studio holding the clinician's port (the next start: "port busy"), and `curate studio stop` could not
find it. Runs the real Label Studio (template data as the suite's `studio_server` makes it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest
from studio_server import _require_executable, _template

from curate.net import LOOPBACK, free_port
from curate.studio.fleet import Fleet
from curate.studio.server import port_free

pytestmark = [pytest.mark.studio, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]

_START = """
import sys
from pathlib import Path
from curate.output import Terminated, stop_on_sigterm
from curate.studio.fleet import Fleet
stop_on_sigterm()
fleet = Fleet(Path(sys.argv[1]) / "server", files_root=Path(sys.argv[1]))
fleet.adopt_template(Path(sys.argv[2]))
fleet.add("a@clinic.test", port=int(sys.argv[3]))
try:
    fleet.start_all(timeout=180)
    print("started", flush=True)
except Terminated:
    print("terminated", flush=True)
"""


def _servers_of(folder: Path) -> list[int]:
    """Pids of the processes whose command line names `folder` (Label Studio's --data-dir)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(folder) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                stat = (proc / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _gone(folder: Path, within: float) -> bool:
    deadline = time.monotonic() + within
    while _servers_of(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not _servers_of(folder)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_a_start_stopped_before_the_server_answers(how, tmp_path):
    tpl = _template(_require_executable())
    base, port = tmp_path / "files", free_port()
    base.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    job = subprocess.Popen(
        [sys.executable, "-c", _START, str(base), str(tpl), str(port)], stdout=subprocess.PIPE, text=True, env=env
    )
    data = base / "server"
    try:
        deadline = time.monotonic() + 60
        while not [p for p in _servers_of(data) if p != job.pid] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _servers_of(data), "Label Studio never started"
        time.sleep(1.0)  # started, not answering yet (it takes several seconds)
        job.send_signal(how)
        out, _ = job.communicate(timeout=60)
        if how == signal.SIGTERM:
            assert out.split() == ["terminated"], out  # stopped at once, not once the server answered
            assert _gone(data, within=30), "a Label Studio outlived its stopped start"
            assert port_free(LOOPBACK, port)
        else:  # nothing can end it at once, but the workspace knows it: `curate studio stop` ends it
            assert _servers_of(data)
            assert Fleet(data, files_root=base).stop_all() == ["a@clinic.test"]
            assert _gone(data, within=30)
    finally:
        if job.poll() is None:
            job.kill()
        for pid in _servers_of(data):
            with suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_a_pid_file_naming_another_program_is_neither_waited_for_nor_stopped(tmp_path):
    """After a reboot the recorded pid may belong to another program: `status` forgets it, `stop` leaves it."""
    from curate.studio.server import EmbeddedServer

    other = subprocess.Popen(["sleep", "60"])
    try:
        server = EmbeddedServer(tmp_path / "ws")
        server.dir.mkdir(parents=True)
        server.pid_file.write_text(json.dumps({"pid": other.pid, "host": LOOPBACK, "port": 1, "url": "http://x"}))
        assert server.status() is None and not server.pid_file.exists()
        server.pid_file.write_text(json.dumps({"pid": other.pid, "host": LOOPBACK, "port": 1, "url": "http://x"}))
        assert server.stop() is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_two_starts_at_once_run_one_recorded_server(tmp_path):
    """Before: both found no server and both started one; the later pid file won, its server failed for the
    port the first held, and that start unlinked the pid file: the first server ran unrecorded, beyond
    `curate studio stop`."""
    import threading

    tpl = _template(_require_executable())
    base, port = tmp_path / "files", free_port()
    base.mkdir()
    data = base / "server"
    fleet = Fleet(data, files_root=base)
    fleet.adopt_template(tpl)
    clinician = fleet.add("a@clinic.test", port=port)
    both = threading.Barrier(2)
    started, failed = [], []

    def start():
        server = Fleet(data, files_root=base).server(clinician)  # as two commands would: two objects
        both.wait()
        try:
            started.append(server.start(port=port, timeout=180).pid)
        except Exception as exc:  # the race's loser, reported below
            failed.append(str(exc))

    threads = [threading.Thread(target=start) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        assert not failed and len(started) == 2 and started[0] == started[1], (started, failed)
        assert fleet.server(clinician).status() is not None
        assert fleet.stop_all() == ["a@clinic.test"]
        assert _gone(data, within=30), "a Label Studio ran beyond `studio stop`"
    finally:
        for pid in _servers_of(data):
            with suppress(OSError):
                os.kill(pid, signal.SIGKILL)
