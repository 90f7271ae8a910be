"""`curate scrape` per engine, against the local engine server (tests/engine_server.py)."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import pytest
from engine_server import (
    BAD_REASONS,
    DISTINCT_GOOD,
    FLICKR_KEY,
    TRANSIENT,
    Item,
    assert_consistent,
    params_of,
    rows,
    run,
)
from sqlmodel import select

from curate.errors import ConfigError, ScrapeError
from curate.intake.scrape import crawl
from db.models import Image, Provenance, Rejection


def test_bing_keeps_every_image_with_its_provenance(ws, engine_server):
    srv = engine_server
    report = run(ws, srv, "bing")
    q = report.queries[0]
    assert (q.added, q.provenance, q.new_for_query) == (DISTINCT_GOOD, 1, DISTINCT_GOOD)
    assert len(rows(ws, Image)) == DISTINCT_GOOD
    assert_consistent(ws)

    # Every bad case is rejected with its reason and recorded; the 500 is only reported (retried next run).
    rejected = {urlsplit(r.locator).path: r.reason for r in rows(ws, Rejection)}
    assert set(rejected) == set(BAD_REASONS)
    for path, reason in BAD_REASONS.items():
        assert reason in rejected[path]
    assert {urlsplit(u).path: r for u, r in q.failed} == TRANSIENT

    prov = {urlsplit(p.locator).path: p for p in rows(ws, Provenance)}
    png = prov["/img/lesion.png"]  # the stock parser keeps only .jpg
    assert png.content_type == "image/png"
    first = prov["/img/good_0.jpg"]
    assert first.engine == "bing" and first.query == "mpox rash" and first.rank == 1
    assert first.title == "Mpox lesion, arm" and first.page_url == srv.url("/page?r=0")
    assert first.image_url == first.locator == srv.url("/img/good_0.jpg") == first.final_url
    assert first.content_type == "image/jpeg" and first.retrieved_at is not None
    assert first.licence_requested is None and first.run_id is None
    redirected = prov["/r/good_1.jpg"]
    assert redirected.final_url == srv.url("/img/good_1.jpg") and redirected.rank == 9
    # The same bytes at two URLs: one image, two arrivals.
    assert prov["/img/copy_of_0.jpg"].image_id == first.image_id
    # Odd names only ever reach the catalogue as text: nothing is written outside objects/.
    assert "/img/..%2F..%2Fescape.jpg" in prov
    assert prov["/img/raw Ωü ../name.jpg"].final_url == srv.url("/img/raw%20%CE%A9%C3%BC%20../name.jpg")
    files = {p.relative_to(ws.root).parts[0] for p in ws.root.rglob("*") if p.is_file()}
    assert files <= {"objects", "curate.toml", "catalogue.db", "catalogue.db-wal", "catalogue.db-shm"}
    assert not any(ws.tmp.iterdir())


def test_fixture_markup_is_what_the_stock_bing_parser_reads(engine_server):
    """Guard for the fixture: icrawler's own BingParser finds results in it (only the .jpg ones)."""
    import requests
    from icrawler.builtin.bing import BingParser

    resp = requests.get(engine_server.url("/images/async?q=x&first=0&count=35"), timeout=5)
    stock = [t["file_url"] for t in BingParser.parse(None, resp)]
    assert stock and all(u.endswith(".jpg") for u in stock)
    assert engine_server.url("/img/lesion.png") not in stock


def test_query_is_url_encoded_and_licence_filter_sent(ws, engine_server):
    srv = engine_server
    srv.results["C++ & Rust"] = [Item("/img/good_20.jpg", "t1"), Item("/img/good_21.jpg", "t2")]
    report = run(ws, srv, "bing", ("C++ & Rust",), licence="public-domain")
    assert report.queries[0].new_for_query == 2
    sent = [p for p in params_of(srv, "/images/async") if p["q"] == ["C++ & Rust"]]
    assert sent and sent[0]["qft"] == [" filterui:license-L1"]  # icrawler's code, sent as icrawler sends it
    assert {p.query for p in rows(ws, Provenance)} == {"C++ & Rust"}
    assert {p.licence_requested for p in rows(ws, Provenance)} == {"public-domain"}


@pytest.mark.parametrize("threads", [1, 8])
def test_max_is_exact(ws, engine_server, threads):
    report = run(ws, engine_server, "bing", max_num=7, threads=threads)
    q = report.queries[0]
    assert q.new_for_query == 7 and q.total == 7
    with ws.session() as s:
        n = len(set(s.exec(select(Provenance.image_id).where(Provenance.query == "mpox rash")).all()))
    assert n == 7
    assert_consistent(ws)


def test_baidu_json_obfuscated_urls(ws, engine_server):
    report = run(ws, engine_server, "baidu", ("猴痘",))
    q = report.queries[0]
    assert q.new_for_query == DISTINCT_GOOD and len(q.rejected) == len(BAD_REASONS)
    sent = params_of(engine_server, "/search/acjson")
    assert any(p["word"] == ["猴痘"] for p in sent)
    prov = {urlsplit(p.locator).path: p for p in rows(ws, Provenance)}
    p = prov["/img/good_0.jpg"]
    assert (p.engine, p.query, p.rank, p.title) == ("baidu", "猴痘", 1, "Mpox lesion, arm")  # <strong> stripped
    assert p.page_url == engine_server.url("/page")
    assert_consistent(ws)


def test_flickr_rest_api_licence_ids_and_getsizes(sqlite_ws, engine_server, monkeypatch):
    monkeypatch.setenv("FLICKR_API_KEY", FLICKR_KEY)
    report = run(sqlite_ws, engine_server, "flickr", ("mpox",), licence="cc-commercial")
    q = report.queries[0]
    assert q.new_for_query == DISTINCT_GOOD
    search = [p for p in params_of(engine_server, "/services/rest/") if p["method"] == ["flickr.photos.search"]]
    assert search[0]["license"] == ["4,5,6,9,10"] and search[0]["text"] == ["mpox"]
    assert any(p["method"] == ["flickr.photos.getSizes"] for p in params_of(engine_server, "/services/rest/"))
    prov = rows(sqlite_ws, Provenance)
    assert {p.licence for p in prov} == {"CC BY 2.0"}  # what Flickr reports, unverified
    assert {p.licence_requested for p in prov} == {"cc-commercial"}
    p = next(p for p in prov if p.locator.endswith("/img/good_0.jpg"))
    assert p.page_url == "https://www.flickr.com/photos/12345@N00/5000" and p.rank == 1


def test_flickr_bad_key_fails_loudly(sqlite_ws, engine_server, monkeypatch):
    monkeypatch.setenv("FLICKR_API_KEY", "wrong")
    with pytest.raises(ScrapeError, match="flickr API error 100"):
        run(sqlite_ws, engine_server, "flickr", ("mpox",))


def test_flickr_needs_key_from_env(sqlite_ws, engine_server, monkeypatch):
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="FLICKR_API_KEY"):
        run(sqlite_ws, engine_server, "flickr", ("mpox",))


def test_url_list(sqlite_ws, engine_server, tmp_path):
    srv = engine_server
    lst = tmp_path / "curated.txt"
    lst.write_text(
        "# curated by hand\n"
        f"{srv.url('/img/good_22.jpg')}\t{srv.url('/case-report')}\tCase report figure 2\n"
        "\n"
        f"{srv.url('/img/truncated.jpg')}\n"
        "ftp://example.org/x.jpg\n"
        f"  {srv.url('/img/good_23.jpg')}  \n",
        encoding="utf-8-sig",  # as Notepad saves it: a byte-order mark before the first line (a comment here)
    )
    report = run(sqlite_ws, srv, "urls", (str(lst),))
    q = report.queries[0]
    assert (q.query, q.new_for_query, len(q.rejected)) == ("curated.txt", 2, 2)
    p = next(p for p in rows(sqlite_ws, Provenance) if p.locator.endswith("good_22.jpg"))
    assert (p.engine, p.rank, p.page_url, p.title) == ("urls", 2, srv.url("/case-report"), "Case report figure 2")
    assert {r.reason for r in rows(sqlite_ws, Rejection)} == {"truncated image", "not an http(s) URL"}


@pytest.mark.parametrize(
    "engine,licence,message",
    [
        ("google", None, "--engine google is not supported"),
        ("baidu", "cc", "cannot filter by licence 'cc'"),
        ("urls", "public-domain", "cannot filter by licence"),
        ("bing", "cc-by-magic", "--license must be one of"),
        ("yandex", None, "--engine must be one of"),
    ],
)
def test_refused_combinations(sqlite_ws, engine_server, engine, licence, message):
    before = len(engine_server.requests)
    with pytest.raises(ConfigError, match=message):
        run(sqlite_ws, engine_server, engine, ("mpox",), licence=licence)
    assert len(engine_server.requests) == before


def test_changed_markup_is_reported_not_silent(sqlite_ws, engine_server):
    engine_server.bing_markup_broken = True
    try:
        with pytest.raises(ScrapeError, match="markup changed"):
            run(sqlite_ws, engine_server, "bing", ("mpox",))
    finally:
        engine_server.bing_markup_broken = False


def test_one_failing_download_does_not_end_the_crawl(sqlite_ws, engine_server, monkeypatch):
    real = crawl.inspect

    def flaky(data, **kw):
        if data == engine_server.files["/img/good_3.jpg"][2]:
            raise RuntimeError("decoder bug")
        return real(data, **kw)

    monkeypatch.setattr(crawl, "inspect", flaky)
    q = run(sqlite_ws, engine_server, "bing").queries[0]
    assert q.new_for_query == DISTINCT_GOOD - 1
    assert "internal error (RuntimeError)" in {r for _, r in q.failed}


def test_no_root_logger_changes_and_nothing_private_at_info(sqlite_ws, engine_server, caplog, monkeypatch):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    monkeypatch.setenv("FLICKR_API_KEY", FLICKR_KEY)
    with caplog.at_level(logging.INFO):
        run(sqlite_ws, engine_server, "bing", ("mpox rash",), max_num=4)
        run(sqlite_ws, engine_server, "flickr", ("mpox",), max_num=4)
    assert root.handlers == handlers and root.level == level
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert info
    for msg in info:
        assert "127.0.0.1" not in msg and FLICKR_KEY not in msg and "http" not in msg, msg


def test_crawler_never_calls_basicconfig_and_leaves_no_threads(sqlite_ws, engine_server, monkeypatch):
    import threading
    import time

    calls = []
    monkeypatch.setattr(logging, "basicConfig", lambda *a, **k: calls.append(k))
    before = set(threading.enumerate())
    run(sqlite_ws, engine_server, "bing", max_num=3, threads=4)  # stops early: feeder and parser must exit too
    assert calls == []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        left = [t for t in set(threading.enumerate()) - before if t.name.startswith(("feeder", "parser", "downloader"))]
        if not left:
            break
        time.sleep(0.05)
    assert left == []


def test_size_limit(sqlite_ws, engine_server):
    q = run(sqlite_ws, engine_server, "bing", max_bytes=300).queries[0]
    assert all(i.size_bytes <= 300 for i in rows(sqlite_ws, Image))
    too_large = {urlsplit(u).path for u, r in q.rejected if r.startswith("file too large")}
    assert {"/img/good_0.jpg", "/img/truncated.jpg"} <= too_large


def test_min_side(sqlite_ws, engine_server):
    q = run(sqlite_ws, engine_server, "bing", min_side=45).queries[0]
    assert "too small (40x30 < 45 px)" in {r for _, r in q.rejected}  # the PNG
    assert q.new_for_query == DISTINCT_GOOD - 1


def test_a_lower_min_side_fetches_what_a_higher_one_rejected(sqlite_ws, engine_server):
    """Before: a picture rejected as too small was skipped by every later run, even one asking for smaller."""
    run(sqlite_ws, engine_server, "bing", min_side=45)
    again = run(sqlite_ws, engine_server, "bing", min_side=45).queries[0]
    assert again.rejected == [] and again.added == 0  # still too small: skipped, not fetched again
    lower = run(sqlite_ws, engine_server, "bing", min_side=30).queries[0]
    assert (lower.added, lower.rejected) == (1, [])
    assert any(i.width == 40 and i.height == 30 for i in rows(sqlite_ws, Image))


def test_two_url_lists_of_one_name_are_refused(sqlite_ws, engine_server, tmp_path):
    """Before: a/list.txt and b/list.txt were one query: one --max between them, one name in provenance."""
    lists = []
    for folder, n in (("a", 22), ("b", 23)):
        (tmp_path / folder).mkdir()
        lists.append(tmp_path / folder / "list.txt")
        lists[-1].write_text(engine_server.url(f"/img/good_{n}.jpg") + "\n")
    with pytest.raises(ConfigError, match=r"two URL lists are named list.txt .*rename one"):
        run(sqlite_ws, engine_server, "urls", tuple(map(str, lists)))
    assert rows(sqlite_ws, Image) == []
    assert run(sqlite_ws, engine_server, "urls", (str(lists[0]), str(lists[0]))).queries[0].added == 1


def test_no_result_is_lost_when_downloads_fall_behind(sqlite_ws, engine_server):
    """icrawler's CachedQueue drops a task retried after queue.Full as a 'duplicate'; we must not."""
    from engine_server import DEFAULT_ITEMS

    engine_server.delay = 0.02  # one slow downloader: the parser's output queue (5) fills up
    try:
        q = run(sqlite_ws, engine_server, "bing", threads=1).queries[0]
    finally:
        engine_server.delay = 0.0
    assert q.results == len(DEFAULT_ITEMS)
    assert (q.new_for_query, len(q.rejected), len(q.failed)) == (DISTINCT_GOOD, len(BAD_REASONS), len(TRANSIENT))
    # Every result is accounted for; + 1: copy_of_0, a second arrival of good_0's bytes.
    assert q.new_for_query + 1 + len(q.rejected) + len(q.failed) == len(DEFAULT_ITEMS)
