"""A hostile web: servers that drip, URLs with NUL bytes, results and redirects aimed at local addresses."""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from engine_server import EngineServer, Item, assert_consistent, rows, run
from sqlmodel import select

from curate.intake.fetch_guard import HostPolicy, Refused, address_problem
from db.models import Image, Provenance, Rejection


@pytest.fixture
def srv():
    with EngineServer() as s:
        yield s


@pytest.fixture
def other_host():
    """A second server on another loopback address: a 'host on the local machine' that is not the engine."""
    with EngineServer(host="127.0.0.2") as s:
        yield s


def paths(urls) -> set[str]:
    return {urlsplit(u).path for u in urls}


def test_a_dripping_image_ends_within_the_deadline_with_a_reason(sqlite_ws, srv):
    srv.drip.add("/img/good_3.jpg")
    srv.results["drip"] = [Item("/img/good_2.jpg", "fine"), Item("/img/good_3.jpg", "1 byte every 0.5 s")]
    started = time.monotonic()
    report = run(sqlite_ws, srv, queries=("drip",), timeout=1)  # deadline: 6 x 1 s
    assert time.monotonic() - started < 15
    q = report.queries[0]
    assert q.new_for_query == 1
    assert [(urlsplit(u).path, r) for u, r in q.failed] == [
        ("/img/good_3.jpg", "download not finished within 6 s (6 x --timeout)")
    ]
    assert not rows(sqlite_ws, Rejection)  # retried next run, not recorded
    assert_consistent(sqlite_ws)


def test_a_dripping_result_page_ends_within_the_deadline(sqlite_ws, srv):
    srv.drip.add("/images/async")
    started = time.monotonic()
    with pytest.raises(Exception) as err:
        run(sqlite_ws, srv, queries=("anything",), timeout=1)
    assert time.monotonic() - started < 15
    assert "result page not read within 6 s" in str(err.value)


def test_a_compressed_result_page_is_read_only_up_to_its_limit(sqlite_ws, srv):
    """Before: requests decompressed a whole page into memory: 1.5 MB of gzip took 6 GB and 22 s, then
    "no results"; a few MB more ended the command for want of memory."""
    with pytest.raises(Exception) as err:
        run(sqlite_ws, srv, queries=("gzip bomb",), timeout=5)
    assert "result page larger than 20 MB (decompressed)" in str(err.value)


def test_nul_and_control_characters_never_reach_the_catalogue_and_the_batch_is_kept(ws, srv):
    srv.results["nul"] = [
        Item("/img/good_2.jpg", "ok"),
        Item("/img/bad\x00name.jpg", "NUL in URL\x00"),
        Item("/img/tab\tname.jpg", "tab"),
        Item("/img/good_4.jpg", "title with \x00 NUL"),
    ]
    for _ in range(2):  # the re-run neither fails nor records the rejection twice
        report = run(ws, srv, queries=("nul",))
    rejected = {r.locator: r.reason for r in rows(ws, Rejection)}
    assert set(rejected.values()) == {"control characters or lone surrogates in URL"} and len(rejected) == 2
    assert all("\x00" not in loc and "\t" not in loc for loc in rejected)
    assert "%00" in "".join(rejected)
    assert paths(p.locator for p in rows(ws, Provenance)) == {"/img/good_2.jpg", "/img/good_4.jpg"}
    assert all("\x00" not in (p.title or "") for p in rows(ws, Provenance))
    assert report.queries[0].skipped == 4


def test_a_result_with_a_huge_title_and_a_key_in_its_url_is_kept_clipped_and_masked(sqlite_ws, srv):
    """Before: a title of "token" 1,000 times held the scrape at 100 % CPU for 4 minutes (the redaction's pattern
    tried every split of the run), 12,000 letters 14 s each; and Google's `?key=` reached the catalogue unmasked."""
    srv.results["long"] = [
        Item("/img/good_2.jpg?key=KEYSECRET111", "token" * 1000),
        Item("/img/good_3.jpg", "page?session=SESSIONSECRET " + "A" * 12000),
    ]
    result = {}
    worker = threading.Thread(target=lambda: result.update(report=run(sqlite_ws, srv, queries=("long",))), daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the scrape still runs after 120 s"
    assert result["report"].queries[0].added == 2
    kept = rows(sqlite_ws, Provenance)
    assert [len(p.title) > 1900 for p in kept] == [True, True] and max(len(p.title) for p in kept) <= 2000
    text = " ".join(f"{p.locator} {p.title}" for p in kept)
    assert "KEYSECRET111" not in text and "key=***" in text and "SESSIONSECRET" not in text, text[-3000:]


def test_a_url_recorded_unmasked_by_an_earlier_version_is_known_to_the_next_run(sqlite_ws, srv):
    """A URL stored before `key=` was a secret's name (`…?key=K`) and the masked URL the crawl now gives must be one
    arrival: before, the re-run fetched it again and recorded a second provenance row for the same image."""
    srv.results["old"] = [Item("/img/good_2.jpg?key=KEYSECRET111", "one")]
    run(sqlite_ws, srv, queries=("old",))
    with sqlite_ws.session() as s:  # as an earlier mpox-curate recorded it
        row = s.exec(select(Provenance)).one()
        row.locator = row.locator.replace("key=***", "key=KEYSECRET111")
        s.add(row)
        s.commit()
    again = run(sqlite_ws, srv, queries=("old",))
    assert again.queries[0].skipped == 1 and again.queries[0].provenance == 0
    assert len(rows(sqlite_ws, Provenance)) == 1


def test_a_scrape_whose_image_another_writer_recorded_first_retries_and_counts_once(ws, srv, monkeypatch):
    """Two scrapes into one catalogue (PostgreSQL, two workspaces) met the same photo: the one that committed
    second stopped on "duplicate key value violates unique constraint images_sha256_key", exit 1. Here the other
    writer records the first photo in the instant between this scrape's look and its insert."""
    import curate.intake.scrape.record as record
    from curate.intake.catalogue import record_arrival

    srv.results["race"] = [Item("/img/good_2.jpg", "one"), Item("/img/good_3.jpg", "two")]
    real, raced = record.record_arrival, []

    def other_writer_first(session, **kw):
        if not raced:  # this scrape looked and found no such image; the other writer then committed it
            raced.append(kw["sha256"])
            with ws.session() as other:  # its own connection and transaction
                record_arrival(other, **{**kw, "locator": "https://elsewhere.example/same.jpg"})
            info = kw["info"]
            session.add(
                Image(
                    sha256=kw["sha256"],
                    size_bytes=kw["size_bytes"],
                    format=info.format,
                    width=1,
                    height=1,
                    mode=info.mode,
                )
            )
            session.flush()  # this scrape's insert, after its look: the catalogue's unique key refuses it
        return real(session, **kw)

    monkeypatch.setattr(record, "record_arrival", other_writer_first)
    report = run(ws, srv, queries=("race",))
    assert raced and report.queries[0].added == 1 and report.queries[0].provenance == 1
    assert len(rows(ws, Image)) == 2 and len(rows(ws, Provenance)) == 3
    assert_consistent(ws)


def test_images_on_other_local_hosts_are_refused_with_a_reason(sqlite_ws, srv, other_host):
    srv.results["ssrf"] = [
        Item("/img/good_2.jpg", "engine host: allowed"),
        Item(other_host.url("/img/good_5.jpg"), "another loopback address"),
        Item(f"http://localhost:{srv.port}/img/good_6.jpg", "a name (not the engine's) resolving to loopback"),
        Item("/to-local", "redirect from the engine host to another local host"),
    ]
    srv.redirects["/to-local"] = other_host.url("/img/good_7.jpg")
    q = run(sqlite_ws, srv, queries=("ssrf",)).queries[0]
    assert paths(p.locator for p in rows(sqlite_ws, Provenance)) == {"/img/good_2.jpg"}
    reasons = dict(q.failed)
    assert len(reasons) == 3 and all(r.startswith("refused: ") and "loopback" in r for r in reasons.values()), reasons
    assert not any(r.startswith("/img/good_5") for r in other_host.requests), "nothing fetched from the refused host"
    assert "/img/good_7.jpg" not in other_host.requests and "/img/good_6.jpg" not in srv.requests

    # A steward who means it: the same results, now fetched.
    q = run(sqlite_ws, srv, queries=("ssrf",), allow_private_hosts=True).queries[0]
    assert q.new_for_query == 3 and not q.failed
    assert_consistent(sqlite_ws)


@pytest.mark.parametrize(
    "ip, kind",
    [
        ("127.0.0.2", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.9", "private"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("::1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "not globally routable"),
    ],
)
def test_address_classes_refused(ip, kind):
    import ipaddress

    assert address_problem(ipaddress.ip_address(ip)) == kind
    assert address_problem(ipaddress.ip_address("93.184.216.34")) is None


def test_policy_checks_what_it_connects_to():
    with pytest.raises(Refused, match="localhost resolves to a loopback address"):
        HostPolicy().addresses("localhost", 80)
    assert HostPolicy(frozenset({"localhost"})).addresses("localhost", 80)
    assert HostPolicy(allow_private=True).addresses("127.0.0.1", 80)


def test_cli_flag_and_refusal_reason(tmp_path, srv, other_host):
    from typer.testing import CliRunner

    from curate.cli import app
    from curate.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws")
    lst = tmp_path / "urls.txt"
    lst.write_text(other_host.url("/img/good_8.jpg") + "\n")
    env = {"CURATE_WORKSPACE": str(ws.root)}
    out = CliRunner().invoke(app, ["scrape", str(lst), "--engine", "urls", "--json"], env=env)
    assert out.exit_code == 0, out.output
    assert "refused: 127.0.0.2 resolves to a loopback address" in out.output
    out = CliRunner().invoke(app, ["scrape", str(lst), "--engine", "urls", "--allow-private-hosts"], env=env)
    assert out.exit_code == 0, out.output
    assert len(rows(ws, Image)) == 1


class _Proxy(BaseHTTPRequestHandler):
    """A plain forwarding HTTP proxy (GET with an absolute URL), as a clinic's outbound proxy would be."""

    seen: list[str]

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.seen.append(self.path)
        parts = urlsplit(self.path)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        try:
            conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def proxy(monkeypatch):
    handler = type("Proxy", (_Proxy,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, url)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield handler.seen
    server.shutdown()
    server.server_close()


def test_a_proxy_does_not_carry_requests_to_refused_hosts(sqlite_ws, srv, other_host, proxy):
    srv.results["via-proxy"] = [
        Item("/img/good_2.jpg", "engine host: allowed"),
        Item(other_host.url("/img/good_5.jpg"), "another loopback address, through the proxy"),
    ]
    q = run(sqlite_ws, srv, queries=("via-proxy",)).queries[0]
    assert any(u.endswith("/img/good_2.jpg") for u in proxy), "the scrape really went through the proxy"
    assert paths(p.locator for p in rows(sqlite_ws, Provenance)) == {"/img/good_2.jpg"}
    (reason,) = dict(q.failed).values()
    assert reason.startswith("refused: 127.0.0.2 resolves to a loopback address"), reason
    assert not any("127.0.0.2" in u for u in proxy), "the refused URL never reached the proxy"
    assert not other_host.requests


def test_a_lone_surrogate_in_a_result_is_escaped_and_the_batch_is_kept(ws, srv):
    """A result page's JSON can hold "\\ud800", which no UTF-8 text can. Before: UnicodeEncodeError stopped the whole
    scrape, every re-run again, and the images already fetched had no catalogue row."""
    srv.results["surrogate"] = [
        Item("/img/good_2.jpg", "title \ud800 here"),
        Item("/img/bad\udc80name.jpg", "ok"),
        Item("/img/good_4.jpg", "fine"),
    ]
    for _ in range(2):
        run(ws, srv, queries=("surrogate",))
    rejected = {r.locator: r.reason for r in rows(ws, Rejection)}
    assert list(rejected.values()) == ["control characters or lone surrogates in URL"]
    assert "%uDC80" in next(iter(rejected))
    assert paths(p.locator for p in rows(ws, Provenance)) == {"/img/good_2.jpg", "/img/good_4.jpg"}
    assert_consistent(ws)


def test_a_query_that_is_not_utf8_is_one_line(sqlite_ws, srv):
    with pytest.raises(Exception, match=r"is not UTF-8 text \(at character 6\): type it in a UTF-8 terminal"):
        run(sqlite_ws, srv, queries=("mpox \udce9ruption",))


def test_a_content_length_that_is_no_number_is_read_as_unknown(sqlite_ws, srv):
    """The header is latin-1 text: a server sending byte 0xB2 says "²", which passed str.isdigit and int()
    refused, so the size check stopped that download with int()'s ValueError. A length that is no number is
    no length: the file is read (up to its limit) and kept."""
    srv.lengths["/img/good_3.jpg"] = "²"
    srv.lengths["/img/good_4.jpg"] = "¹²"  # header bytes B9 B2
    srv.results["odd length"] = [Item(f"/img/good_{i}.jpg", "fine") for i in (2, 3, 4)]
    report = run(sqlite_ws, srv, queries=("odd length",))
    q = report.queries[0]
    assert q.failed == [] and q.new_for_query == 3
    assert_consistent(sqlite_ws)
