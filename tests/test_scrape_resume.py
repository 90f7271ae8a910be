"""`curate scrape` is repeatable and resumable: re-runs add nothing, kill -9 leaves a consistent catalogue."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_server import DISTINCT_GOOD, GOOD_PATHS, Item, assert_consistent, jpeg, rows, run
from sqlmodel import select

from curate.status import workspace_status
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


def test_a_rerun_fetches_again_an_original_lost_from_the_store(ws, engine_server):
    """The probe's case: a scraped image's original deleted from objects/, another cut short. Before: the re-run
    skipped their URLs as known ("0 added"), status kept asking for a `curate ingest` of a folder a scraped image
    has not, and dedupe skipped the images for good. Now a re-run fetches each again from its URL, even with the
    query's --max reached, catalogues nothing anew, and a URL serving other bytes now restores nothing and says so."""
    run(ws, engine_server, "bing")  # every result
    first = counts(ws)
    with ws.session() as s:  # three images fetched straight from /img/ (others came through a redirect)
        fetched = [
            (sha, url)
            for sha, url in s.exec(select(Image.sha256, Provenance.locator).join(Provenance)).all()
            if any(url == engine_server.base + p for p in GOOD_PATHS)  # not good_0: copy_of_0 serves it too
        ]
        fetched.sort(key=lambda pair: pair[1])
    (lost, _), (cut, _), (changed, url_of_changed) = fetched[:3]
    for sha in (lost, cut, changed):
        ws.store.path_for(sha).parent.chmod(0o700)
        ws.store.path_for(sha).chmod(0o600)
    ws.store.path_for(lost).unlink()
    ws.store.path_for(cut).write_bytes(ws.store.path_for(cut).read_bytes()[:100])
    ws.store.path_for(changed).unlink()
    path = url_of_changed.split(engine_server.base, 1)[1]
    kept = engine_server.files[path]
    engine_server.files[path] = (200, "image/jpeg", jpeg(4242))  # the host serves a placeholder now
    assert workspace_status(ws)["missing_originals"] == 3
    try:
        report = run(ws, engine_server, "bing", max_num=first[0])  # the query has all it wants: no crawl
    finally:
        engine_server.files[path] = kept
    assert ws.store.read(lost, check=True) and ws.store.read(cut, check=True)
    assert report.restored == 2 and counts(ws) == first and report.queries[0].new_for_query == 0
    [(url, why)] = report.not_restored
    assert url == url_of_changed and "serves other bytes" in why and not ws.store.has(changed)
    assert workspace_status(ws)["missing_originals"] == 1


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

    # status says the command to paste (before: "`curate scrape` (killed …); re-run it", a usage error when pasted)
    [left] = json.loads(
        subprocess.run(
            [*cmd[:3], "status", "--json", "-w", str(sqlite_ws.root)], capture_output=True, text=True, check=True
        ).stdout
    )["unfinished"]
    where = f" -w {sqlite_ws.root}" if Path.cwd().resolve() != sqlite_ws.root.resolve() else ""  # made elsewhere
    assert left["rerun"] == f"curate scrape --engine bing --max {want}{where} -- 'mpox kill test'"
    pasted = subprocess.run(
        [*cmd[:3], "scrape", "--timeout", "10", "--json", "-w", str(sqlite_ws.root), *shlex.split(left["rerun"])[2:]],
        env=env,
        capture_output=True,
        text=True,
    )
    assert pasted.returncode == 0, pasted.stderr
    [q] = json.loads(pasted.stdout)["queries"]
    assert q["images_before"] == killed[0]  # every image of the killed run counts toward --max
    assert q["images_now"] == want
    status = subprocess.run([*cmd[:3], "status", "--json", "-w", str(sqlite_ws.root)], capture_output=True, text=True)
    assert json.loads(status.stdout)["unfinished"] == []  # the pasted command finished it
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


def test_the_rerun_status_shows_keeps_min_side_and_a_query_that_begins_with_a_dash():
    """The review's cases: the pasted command dropped --min-side (the thumbnails it had refused came in), and a
    query "-rash" (typed after `--`) read as an option."""
    from curate.status import rerun

    args = {"engine": "bing", "queries": ["-rash", "mpox"], "max": 50, "licence": None, "source": "web-bing"}
    said = rerun(CommandRun(command="scrape", arguments=json.dumps({**args, "min_side": 224})))
    assert said == "curate scrape --engine bing --max 50 --source web-bing --min-side 224 -- -rash mpox"
    assert rerun(CommandRun(command="ingest", arguments=json.dumps({"source": "clinic"}))) is None
