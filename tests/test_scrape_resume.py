"""`curate scrape` is repeatable and resumable: re-runs add nothing, kill -9 leaves a consistent catalogue."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from engine_server import DISTINCT_GOOD, Item, assert_consistent, rows, run
from sqlmodel import select

from curate.intake.scrape.options import ScrapeOptions
from curate.intake.scrape.run import scrape
from db.models import CommandRun, Image, Provenance, Rejection


def counts(ws):
    return len(rows(ws, Image)), len(rows(ws, Provenance)), len(rows(ws, Rejection))


def image_requests(srv, since):
    return [p for p in srv.requests[since:] if p.startswith(("/img/", "/r/"))]


def test_rerun_adds_nothing_and_sends_no_traffic(ws, engine_server):
    run(ws, engine_server, "bing", max_num=6)
    first = counts(ws)
    assert first[0] == 6
    mark = len(engine_server.requests)
    report = run(ws, engine_server, "bing", max_num=6)
    assert counts(ws) == first
    assert report.queries[0].total == 6 and report.queries[0].new_for_query == 0
    assert engine_server.requests[mark:] == []  # the query already has its 6 images


def test_rerun_with_higher_max_fills_up_skipping_known_urls(ws, engine_server):
    run(ws, engine_server, "bing", max_num=5)
    mark = len(engine_server.requests)
    q = run(ws, engine_server, "bing", max_num=12).queries[0]
    assert (q.before, q.new_for_query, q.total) == (5, 7, 12)
    assert q.skipped > 0  # accepted and rejected URLs of run 1 are not fetched again
    fetched = image_requests(engine_server, mark)
    assert len(fetched) == len(set(fetched))
    assert "/img/good_0.jpg" not in fetched and "/img/truncated.jpg" not in fetched
    # No limit: everything the engine has, once.
    q = run(ws, engine_server, "bing", max_num=0).queries[0]
    assert q.total == DISTINCT_GOOD
    before = counts(ws)
    run(ws, engine_server, "bing", max_num=0)
    assert counts(ws) == before
    assert_consistent(ws)


def test_same_bytes_from_another_query_is_provenance_not_a_new_file(sqlite_ws, engine_server):
    run(sqlite_ws, engine_server, "bing", ("mpox",), max_num=3, threads=1)  # one thread: rank order, same 3 images
    q = run(sqlite_ws, engine_server, "baidu", ("mpox",), max_num=3, threads=1).queries[0]
    assert (q.new_for_query, q.added, q.provenance) == (3, 0, 4)  # 4: copy_of_0 is good_0's bytes
    assert len(rows(sqlite_ws, Image)) == 3
    assert_consistent(sqlite_ws)


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_completes(sqlite_ws, engine_server):
    srv, want = engine_server, 12
    cmd = [
        sys.executable,
        "-c",
        "from curate.cli import main; main()",
        "scrape",
        "mpox kill test",
        "--engine",
        "bing",
        "--max",
        str(want),
        "--threads",
        "2",
        "--timeout",
        "5",
        "-w",
        str(sqlite_ws.root),
    ]
    env = {**os.environ, "CURATE_SCRAPE_BASE_URL": srv.base}
    srv.delay = 0.25
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        db = sqlite_ws.root / "catalogue.db"
        deadline = time.monotonic() + 30
        n = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
                    n = con.execute("select count(*) from images").fetchone()[0]
            except sqlite3.OperationalError:
                n = 0
            if n >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        srv.delay = 0.0
        if proc.poll() is None:
            proc.kill()

    # Killed: consistent (rows only for stored, verified files), not finished.
    assert_consistent(sqlite_ws)
    killed = counts(sqlite_ws)
    assert 3 <= killed[0] < want
    assert [r.status for r in rows(sqlite_ws, CommandRun)] == ["running"]  # the killed run stays visible

    q = scrape(
        sqlite_ws, ScrapeOptions("bing", ("mpox kill test",), max_num=want, base_url=srv.base, timeout=10)
    ).queries[0]
    assert q.before == killed[0]  # every image of the killed run counts toward --max
    assert q.total == want
    with sqlite_ws.session() as s:
        ids = s.exec(select(Provenance.image_id).where(Provenance.query == "mpox kill test")).all()
    assert len(set(ids)) == want
    assert_consistent(sqlite_ws)


@pytest.mark.slow
def test_ctrl_c_records_what_is_stored_and_exits_130(sqlite_ws, engine_server):
    srv = engine_server
    cmd = [
        sys.executable,
        "-c",
        "from curate.cli import main; main()",
        "scrape",
        "mpox sigint test",
        "--engine",
        "bing",
        "--max",
        "12",
        "--threads",
        "2",
        "--timeout",
        "5",
        "-w",
        str(sqlite_ws.root),
    ]
    srv.delay = 0.25
    try:
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, "CURATE_SCRAPE_BASE_URL": srv.base},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        db, deadline = sqlite_ws.root / "catalogue.db", time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
                    if con.execute("select count(*) from images").fetchone()[0] >= 2:
                        break
            except sqlite3.OperationalError:
                pass
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=20)[1].decode()
    finally:
        srv.delay = 0.0
    assert proc.returncode == 130, err
    assert "interrupted; re-run the same command to continue" in err
    assert [r.status for r in rows(sqlite_ws, CommandRun)] == ["interrupted"]
    assert_consistent(sqlite_ws)
    assert not list(sqlite_ws.tmp.iterdir())


def test_a_stop_ends_the_downloads_in_flight_at_once(sqlite_ws, engine_server):
    """Before: SIGTERM waited for each download thread's own deadline in turn: four images dripping a byte every
    0.5 s with --timeout 10 kept the command 44 s after the signal, silent."""
    srv = engine_server  # shared by the module's tests: its drip and results are restored after
    paths = [f"/img/good_{i}.jpg" for i in range(4)]
    srv.drip.update(paths)
    srv.results["drip stop"] = [Item(p, "slow") for p in paths]
    before = len(srv.requests)
    cmd = [sys.executable, "-c", "from curate.cli import main; main()", "scrape", "drip stop", "--engine", "bing"]
    cmd += ["--threads", "4", "--timeout", "10", "-w", str(sqlite_ws.root)]
    proc = subprocess.Popen(
        cmd, env={**os.environ, "CURATE_SCRAPE_BASE_URL": srv.base}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while sum(p.startswith("/img/") for p in srv.requests[before:]) < 4:  # every download has begun
            assert time.monotonic() < deadline and proc.poll() is None, "the downloads never began"
            time.sleep(0.05)
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=60)[1].decode()
        assert time.monotonic() - stopped < 10, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        srv.drip.difference_update(paths)
        del srv.results["drip stop"]
    assert proc.returncode == 143 and "terminated (SIGTERM)" in err, err
    assert [r.status for r in rows(sqlite_ws, CommandRun)] == ["interrupted"]
    assert_consistent(sqlite_ws)
