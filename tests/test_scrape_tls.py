"""Scraping over HTTPS: a real TLS server on loopback with a certificate from a test CA (trustme).

The deadline shuts a blocked TLS read down as it does a plain one, the address guard holds for HTTPS
redirects, and a certificate the machine does not trust is a one-line failure, never a download.
"""

from __future__ import annotations

import ssl
import time
from urllib.parse import urlsplit

import pytest
import trustme
from engine_server import EngineServer, Item, assert_consistent, rows, run

from db.models import Provenance


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


def tls_server(ca, host: str = "127.0.0.1") -> EngineServer:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(ctx)
    return EngineServer(host=host, tls=ctx)


@pytest.fixture
def trusted(ca, tmp_path, monkeypatch):
    """The test CA is what requests trusts (REQUESTS_CA_BUNDLE, as a clinic with its own CA would set it)."""
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_https_results_are_fetched_and_a_dripping_image_ends_within_the_deadline(sqlite_ws, ca, trusted):
    with tls_server(ca) as srv:
        assert srv.base.startswith("https://")
        srv.drip.add("/img/good_3.jpg")
        srv.results["tls"] = [
            Item("/img/good_2.jpg", "fine"),
            Item("/img/lesion.png", "fine too"),
            Item("/img/good_3.jpg", "1 byte every 0.5 s"),
        ]
        started = time.monotonic()
        q = run(sqlite_ws, srv, queries=("tls",), timeout=1).queries[0]  # deadline: 6 x 1 s
        assert time.monotonic() - started < 20
    assert q.new_for_query == 2
    assert {urlsplit(p.locator).scheme for p in rows(sqlite_ws, Provenance)} == {"https"}
    [(url, reason)] = q.failed
    assert url.endswith("/img/good_3.jpg") and reason == "download not finished within 6 s (6 x --timeout)"
    assert_consistent(sqlite_ws)


def test_https_redirect_to_another_local_host_is_refused(sqlite_ws, ca, trusted):
    with tls_server(ca) as srv, tls_server(ca, "127.0.0.2") as other:
        srv.redirects["/to-local"] = other.url("/img/good_7.jpg")
        srv.results["tls-ssrf"] = [Item("/img/good_2.jpg", "engine host"), Item("/to-local", "redirect")]
        q = run(sqlite_ws, srv, queries=("tls-ssrf",)).queries[0]
        assert not other.requests
    assert q.new_for_query == 1
    [(_, reason)] = q.failed
    assert reason.startswith("refused: 127.0.0.2 resolves to a loopback address"), reason


def test_an_untrusted_certificate_is_a_one_line_failure(sqlite_ws, ca, trusted):
    stranger = trustme.CA()  # a certificate from a CA nobody here trusts
    with EngineServer() as engine, tls_server(stranger) as untrusted:
        engine.results["mitm"] = [Item("/img/good_2.jpg", "plain http"), Item(untrusted.url("/img/good_4.jpg"), "")]
        q = run(sqlite_ws, engine, queries=("mitm",)).queries[0]
    assert q.new_for_query == 1
    [(url, reason)] = q.failed
    assert url.startswith("https://") and reason == "fetch failed (SSLError)" and "\n" not in reason
    assert [urlsplit(p.locator).path for p in rows(sqlite_ws, Provenance)] == ["/img/good_2.jpg"]
