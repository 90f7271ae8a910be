"""A local HTTP server speaking each search engine's protocol, for offline scrape tests.

* Bing:   GET /images/async?q=&first=&count=   -> HTML fragment, `a.iusc` with the `m` JSON
* Baidu:  GET /search/acjson?word=&pn=&rn=      -> JSON, obfuscated `objURL`/`fromURL`
* Flickr: GET /services/rest/?method=flickr.photos.search|flickr.photos.getSizes -> JSON
* Images: GET /img/<name>, with the bad cases of the issue's fault list: a truncated
  JPEG, HTML served as image/jpeg, a decompression-bomb PNG, a zero-byte file, a 404,
  a 500, a redirect, the same bytes at two URLs, odd Unicode and `../` names.

Everything listens on 127.0.0.1 only (or another loopback address given as `host`), over HTTPS when given
an `ssl.SSLContext` (`tls`). `server.delay` slows every image down (for kill tests); paths in `server.drip`
are sent one byte every half second; `server.redirects` maps a path to any Location; `server.lengths` maps a path to
the Content-Length header sent instead of its body's (the connection then closes after the body).
"""

from __future__ import annotations

import gzip
import html
import io
import json
import ssl
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

from PIL import Image

FLICKR_KEY = "test-flickr-key"

# icrawler's BaiduParser._decode_url table, inverted, to produce obfuscated URLs like Baidu's.
_BAIDU_MAP = {
    "w": "a",
    "k": "b",
    "v": "c",
    "1": "d",
    "j": "e",
    "u": "f",
    "2": "g",
    "i": "h",
    "t": "i",
    "3": "j",
    "h": "k",
    "s": "l",
    "4": "m",
    "g": "n",
    "5": "o",
    "r": "p",
    "q": "q",
    "6": "r",
    "f": "s",
    "p": "t",
    "7": "u",
    "e": "v",
    "o": "w",
    "8": "1",
    "d": "2",
    "n": "3",
    "9": "4",
    "c": "5",
    "m": "6",
    "0": "7",
    "b": "8",
    "l": "9",
    "a": "0",
}
_BAIDU_INV = {v: k for k, v in _BAIDU_MAP.items()}


def baidu_encode(url: str) -> str:
    out = "".join(_BAIDU_INV.get(c, c) for c in url)
    return out.replace(":", "_z2C$q").replace(".", "_z&e3B").replace("/", "AzdH3F")


def jpeg(seed: int, size=(64, 48), noise=False) -> bytes:
    img = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    if noise:
        img = Image.effect_noise(size, 80).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (seed % 256, 200, 100)).save(buf, "PNG")
    return buf.getvalue()


def bomb_png(side: int = 20000) -> bytes:
    """A tiny PNG whose header claims side x side pixels (over Pillow's bomb limit)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (side // 8 + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    data = jpeg(7, size=(256, 256), noise=True)
    return data[: len(data) * 6 // 10]


@dataclass
class Item:
    path: str  # image path on this server (already URL-quoted where needed), or a full URL
    title: str
    page: str = "/page"


N_GOOD = 14
GOOD_PATHS = [f"/img/good_{i}.jpg" for i in range(2, 2 + N_GOOD)]

# The result list every query gets unless a test sets its own; the bad cases come first.
DEFAULT_ITEMS = [
    Item("/img/good_0.jpg", "Mpox lesion, arm"),
    Item("/img/lesion.png", "PNG result (the stock Bing parser drops it)"),
    Item("/img/truncated.jpg", "truncated JPEG"),
    Item("/img/html.jpg", "HTML served as image/jpeg"),
    Item("/img/bomb.png", "decompression bomb"),
    Item("/img/empty.jpg", "zero bytes"),
    Item("/img/missing.jpg", "404"),
    Item("/img/copy_of_0.jpg", "same bytes as good_0"),
    Item("/r/good_1.jpg", "redirected"),
    Item("/img/" + quote("病変 ü\u202e.jpg"), "odd unicode"),
    Item("/img/..%2F..%2Fescape.jpg", "dot-dot name"),
    Item("/img/error500.jpg", "server error"),
    Item("/img/cut.jpg", "connection closed half-way through the body"),
    Item("/img/raw Ωü ../name.jpg", "raw (unquoted) unicode, space and ../ in the URL"),
    *[Item(p, f"Result {p}") for p in GOOD_PATHS],
]
# Accepted from DEFAULT_ITEMS: good_0, lesion.png, copy_of_0 (same bytes: provenance only),
# good_1 via redirect, the two unicode ones, the dot-dot one, and the N_GOOD good_i.
DISTINCT_GOOD = 6 + N_GOOD
TRANSIENT = {"/img/error500.jpg": "HTTP 500", "/img/cut.jpg": "connection cut mid-download"}
BAD_REASONS = {
    "/img/truncated.jpg": "truncated image",
    "/img/html.jpg": "HTML page",
    "/img/bomb.png": "decompression bomb",
    "/img/empty.jpg": "empty file",
    "/img/missing.jpg": "HTTP 404",
}


def _first(qs: dict, key: str, default: str = "") -> str:
    """The first value of a query-string parameter."""
    return qs.get(key, [default])[0]


class EngineServer:
    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None):
        self.files: dict[str, tuple[int, str, bytes]] = {}
        self.drip: set[str] = set()
        self.redirects: dict[str, str] = {}
        self.lengths: dict[str, str] = {}
        self.results: dict[str, list[Item]] = {}
        self.requests: list[str] = []
        self.delay = 0.0
        self.bing_markup_broken = False
        self._lock = threading.Lock()
        self._build_files()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with server._lock:
                    server.requests.append(self.path)
                try:
                    status, ctype, body, headers = server.route(self.path)
                except Exception as exc:  # pragma: no cover - a server bug shows as 599
                    status, ctype, body, headers = 599, "text/plain", repr(exc).encode(), {}
                cut = self.path.startswith("/img/cut.jpg")
                if urlsplit(self.path).path in server.drip:  # headers at once, then one byte every 0.5 s
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    for i in range(len(body)):
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(0.5)
                    return
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                said = server.lengths.get(urlsplit(self.path).path)
                self.send_header("Content-Length", str(len(body)) if said is None else said)
                if said is not None:  # no length the client can use: the body ends where the connection does
                    self.send_header("Connection", "close")
                    self.close_connection = True
                if cut:  # promise the whole body, send half, hang up
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # clients that hang up early are expected
        if tls is not None:  # HTTPS: every accepted connection is a TLS one
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.base = f"{'https' if tls else 'http'}://{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # --- lifecycle ---
    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.base + path

    def _build_files(self) -> None:
        f = self.files
        for i in range(2 + N_GOOD + 20):
            f[f"/img/good_{i}.jpg"] = (200, "image/jpeg", jpeg(i))
        f["/img/copy_of_0.jpg"] = f["/img/good_0.jpg"]
        f["/img/lesion.png"] = (200, "image/png", png(1))
        f["/img/truncated.jpg"] = (200, "image/jpeg", truncated_jpeg())
        f["/img/html.jpg"] = (200, "image/jpeg", b"<!DOCTYPE html><html><body>Access denied</body></html>")
        f["/img/bomb.png"] = (200, "image/png", bomb_png())
        f["/img/empty.jpg"] = (200, "image/jpeg", b"")
        f["/img/error500.jpg"] = (500, "text/plain", b"oops")
        f["/img/病変 ü\u202e.jpg"] = (200, "image/jpeg", jpeg(101))
        f["/img/../../escape.jpg"] = (200, "image/jpeg", jpeg(102))
        f["/img/raw Ωü ../name.jpg"] = (200, "image/jpeg", jpeg(103))
        f["/img/cut.jpg"] = (200, "image/jpeg", jpeg(104, size=(256, 256), noise=True))

    # --- routing ---
    def items_for(self, query: str) -> list[Item]:
        return self.results.get(query, DEFAULT_ITEMS)

    def route(self, raw_path: str):
        parts = urlsplit(raw_path)
        path, qs = unquote(parts.path), parse_qs(parts.query)
        one = partial(_first, qs)
        if path == "/images/async":
            if one("q") == "gzip bomb":  # 40 MB of spaces sent as 40 KB of gzip
                return 200, "text/html; charset=utf-8", gzip.compress(b" " * 40_000_000), {"Content-Encoding": "gzip"}
            return (
                200,
                "text/html; charset=utf-8",
                self.bing(one("q"), int(one("first", "0")), int(one("count", "35"))),
                {},
            )
        if path == "/search/acjson":
            return (
                200,
                "text/plain; charset=utf-8",
                self.baidu(one("word"), int(one("pn", "0")), int(one("rn", "30"))),
                {},
            )
        if path == "/services/rest/":
            return (200, "application/json", self.flickr(qs), {})
        if path in self.redirects:
            return 302, "text/plain", b"", {"Location": self.redirects[path]}
        if path.startswith("/r/"):
            return 302, "text/plain", b"", {"Location": "/img/" + path[3:]}
        if path.startswith("/img/"):
            if self.delay:
                time.sleep(self.delay)
            if path in self.files:
                status, ctype, body = self.files[path]
                return status, ctype, body, {}
        return 404, "text/html", b"<html>not found</html>", {}

    def bing(self, q: str, first: int, count: int) -> bytes:
        items = self.items_for(q)[first : first + count]
        out = ['<ul class="dgControl_list">']
        for i, it in enumerate(items):
            if self.bing_markup_broken:
                out.append(f'<li><div class="newlayout"><img src="{html.escape(self.url(it.path))}"></div></li>')
                continue
            m = {
                "sid": "",
                "cturl": "",
                "cid": f"c{first + i}",
                "purl": self.url(it.page) + f"?r={first + i}",
                "murl": self.url(it.path),
                "turl": f"https://tse2.mm.bing.net/th?id=OIP.{first + i}&pid=15.1",
                "md5": "0" * 32,
                "shkey": "",
                "t": it.title,
                "mid": f"M{first + i}",
                "desc": "",
            }
            m_attr = html.escape(json.dumps(m, separators=(",", ":")), quote=True)
            out.append(
                f'<li data-idx="{first + i + 1}"><div class="iuscp isv"><div class="imgpt">'
                f'<a class="iusc" style="height:180px;width:270px" m="{m_attr}" '
                f'mad="{{&quot;turl&quot;:&quot;x&quot;}}" href="/images/search?view=detailV2&amp;id={first + i}&amp;'
                f'selectedIndex={first + i}"><div class="img_cont hoff"><img class="mimg" height="180" width="270" '
                f'src="https://tse2.mm.bing.net/th?id=OIP.{first + i}" alt="{html.escape(it.title)}"></div></a>'
                f'<div class="img_info hon"><span class="nowrap">64 x 48 · jpeg</span></div></div></div></li>'
            )
        out.append("</ul>")
        # a title's lone surrogate: "\ud800" inside the JSON (escaped), its bytes as a page would send them in alt
        return "".join(out).encode("utf-8", "surrogatepass")

    def baidu(self, word: str, pn: int, rn: int) -> bytes:
        data = []
        for it in self.items_for(word)[pn : pn + rn]:
            data.append(
                {
                    "thumbURL": "https://img0.baidu.com/it/u=1,2&fm=253",
                    "middleURL": "https://img0.baidu.com/it/u=1",
                    "fromPageTitle": f"<strong>{html.escape(it.title)}</strong>",
                    "fromPageTitleEnc": it.title,
                    "objURL": baidu_encode(self.url(it.path)),
                    "fromURL": baidu_encode(self.url(it.page)),
                    "type": "jpg",
                    "width": 64,
                    "height": 48,
                    "replaceUrl": [{"ObjURL": self.url(it.path), "FromURL": self.url(it.page)}],
                }
            )
        data.append({})  # Baidu ends each page with an empty object
        body = {
            "queryEnc": quote(word),
            "queryExt": word,
            "listNum": 1000,
            "displayNum": 1000,
            "bdIsClustered": "1",
            "data": data,
        }
        return json.dumps(body, ensure_ascii=False).encode()

    def flickr(self, qs: dict) -> bytes:
        one = partial(_first, qs)
        if one("api_key") != FLICKR_KEY:
            return json.dumps(
                {"stat": "fail", "code": 100, "message": "Invalid API Key (Key has invalid format)"}
            ).encode()
        if one("text") == "hostile":  # an API error whose message holds terminal escapes, markup and the key
            message = (
                f"\x1b]0;PWNED\x07\x1b[2J[bold red]bad[/] [link=http://evil.example/]x[/link] api_key={FLICKR_KEY}"
            )
            return json.dumps({"stat": "fail", "code": 105, "message": message}).encode()
        if one("method") == "flickr.photos.getSizes":
            pid = int(one("photo_id"))
            it = self.items_for(self._flickr_query)[pid - 5000]
            return json.dumps(
                {
                    "sizes": {
                        "size": [
                            {
                                "label": "Medium",
                                "width": 64,
                                "height": 48,
                                "source": self.url(it.path),
                                "media": "photo",
                            }
                        ]
                    },
                    "stat": "ok",
                }
            ).encode()
        self._flickr_query = one("text")
        page, per_page = int(one("page", "1")), int(one("per_page", "100"))
        items = self.items_for(one("text"))
        photos = []
        for i, it in enumerate(items[(page - 1) * per_page : page * per_page]):
            n = (page - 1) * per_page + i
            photo = {
                "id": str(5000 + n),
                "owner": "12345@N00",
                "secret": "abc",
                "server": "65535",
                "farm": 66,
                "title": it.title,
                "ispublic": 1,
                "isfriend": 0,
                "isfamily": 0,
                "license": "4",
                "ownername": "someone",
            }
            if n % 5 != 4:  # every fifth photo lacks the size extras: the parser must ask getSizes
                photo.update(url_l=self.url(it.path), height_l=48, width_l=64)
            photos.append(photo)
        return json.dumps(
            {
                "photos": {
                    "page": page,
                    "pages": max(1, -(-len(items) // per_page)),
                    "perpage": per_page,
                    "total": len(items),
                    "photo": photos,
                },
                "stat": "ok",
            }
        ).encode()

    _flickr_query = ""


# --- helpers for the scrape tests ------------------------------------------------------


def run(ws, srv, engine="bing", queries=("mpox rash",), **kw):
    """`scrape` against this server; no --max limit and short timeouts unless given."""
    from curate.intake.scrape.options import ScrapeOptions
    from curate.intake.scrape.run import scrape

    kw.setdefault("max_num", 0)
    kw.setdefault("timeout", 10)
    return scrape(ws, ScrapeOptions(engine, tuple(queries), base_url=srv.base, **kw))


def rows(ws, model):
    from sqlmodel import select

    with ws.session() as s:
        return s.exec(select(model)).all()


def params_of(srv, prefix):
    return [parse_qs(urlsplit(p).query) for p in srv.requests if p.startswith(prefix)]


def assert_consistent(ws):
    """Every image row has its verified file; no sha twice; no arrival twice."""
    from db.models import Image as ImageRow
    from db.models import Provenance

    images = rows(ws, ImageRow)
    assert len({i.sha256 for i in images}) == len(images)
    for i in images:
        assert ws.store.verify(i.sha256), i.sha256
    arrivals = [(p.image_id, p.source_id, p.locator) for p in rows(ws, Provenance)]
    assert len(set(arrivals)) == len(arrivals)


# --- pytest fixtures (import them into a test module to use them) ----------------------

try:
    import pytest
except ImportError:  # pragma: no cover - the server also runs outside pytest
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="module")
    def engine_server():
        with EngineServer() as srv:
            yield srv
