"""Per-engine feeders and parsers for `curate scrape`, built on icrawler's own classes.

Each engine subclasses icrawler's Feeder/Parser where the stock one is weak:

* Bing: the stock parser keeps only `.jpg` URLs and drops the result page and
  title, and the feeder does not URL-encode the query. We read the whole `m`
  JSON of every `a.iusc` (murl, purl, t) and encode the query.
* Baidu: the stock parser runs its URL "decryption" on every URL (garbling plain
  ones) and drops the page and title.
* Flickr: the stock parser makes one extra API call per photo; we ask for the
  size URLs as `extras` and fall back to `getSizes` only when they are missing.
* Google: refused. icrawler 0.6.10's parser finds nothing on today's pages
  (they are built by JavaScript), so scraping it would silently return nothing.

Feeders put page URLs with a timeout and stop as soon as the crawl is full or an
engine page came back empty, instead of blocking forever on a full queue.
"""
from __future__ import annotations

import json
import logging
import queue
import re
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from threading import current_thread
from urllib.parse import parse_qs, quote_plus, urlencode, urlsplit

import requests
from bs4 import BeautifulSoup
from icrawler import Feeder, Parser
from icrawler.builtin.baidu import BaiduFeeder, BaiduParser
from icrawler.builtin.bing import BingFeeder, BingParser
from icrawler.builtin.flickr import FlickrFeeder, FlickrParser
from icrawler.builtin.urllist import PseudoParser

from curate.errors import ConfigError
from curate.intake.fetch_guard import DEADLINE_FACTOR, Refused, deadline

# Signals shared by the crawl's threads (besides icrawler's own three).
STOP = "reach_max_num"  # icrawler's name: every stock loop already checks it
EXHAUSTED = "engine_exhausted"  # a result page had no results: no point asking for the next

LICENCES = ("any", "public-domain", "cc", "cc-commercial", "cc-modify", "cc-commercial-modify")

# Flickr licence ids (flickr.photos.licenses.getInfo).
FLICKR_LICENCE_NAMES = {
    "0": "All Rights Reserved",
    "1": "CC BY-NC-SA 2.0",
    "2": "CC BY-NC 2.0",
    "3": "CC BY-NC-ND 2.0",
    "4": "CC BY 2.0",
    "5": "CC BY-SA 2.0",
    "6": "CC BY-ND 2.0",
    "7": "No known copyright restrictions",
    "8": "United States Government Work",
    "9": "CC0 1.0",
    "10": "Public Domain Mark 1.0",
}


class PageError(Exception):
    """A result page that could not be read (bad JSON, API error); the message is the reason."""


def _put(pool, item, feeding: bool = True) -> bool:
    """Put into the pool's out queue without blocking forever; False once the crawl should stop.

    A feeder also stops once the engine ran out of results (`feeding`).

    Bypasses icrawler's CachedQueue.put: it marks an item as seen *before* the put, so
    the retry after `queue.Full` is silently dropped as a "duplicate" (a lost result
    whenever the downloaders fall behind). URLs are deduplicated by the downloader instead.
    """
    while not (pool.signal.get(STOP) or (feeding and pool.signal.get(EXHAUSTED))):
        try:
            queue.Queue.put(pool.out_queue, item, True, 0.05)
            return True
        except queue.Full:
            continue
    return False


def _offset(response, name: str, default: int = 0) -> int:
    try:
        return int(parse_qs(urlsplit(response.url).query).get(name, [default])[0])
    except (TypeError, ValueError):
        return default


def _text(value) -> str | None:
    if not isinstance(value, str):
        return None
    value = re.sub(r"<[^>]*>", "", unescape(value)).strip()
    return value[:2000] or None


class SafeParser(Parser):
    """icrawler's Parser loop, made safe: a bad page or a parser exception is reported,
    never a dead thread; HTTP errors are checked; URLs (which may carry an API key)
    are never logged."""

    def __init__(self, thread_num, signal, session, on_page=None, **kwargs):
        super().__init__(thread_num, signal, session)
        self.on_page = on_page or (lambda url, n, reason: None)
        self.logger = logging.getLogger("curate.scrape.parser")

    def worker_exec(self, queue_timeout=0.05, req_timeout=10, max_retry=3, **kwargs):
        for url in queued(self, "feeder_exited", queue_timeout):
            if not self.signal.get(EXHAUSTED):  # pages queued past the last result are not fetched
                self._page(url, req_timeout, max_retry, kwargs)
        self.logger.debug("thread %s exit", current_thread().name)

    def _page(self, url, req_timeout, max_retry, kwargs) -> None:
        reason = "no attempt"
        for _ in range(max(1, max_retry)):
            limit = DEADLINE_FACTOR * req_timeout
            try:
                base = "{0.scheme}://{0.netloc}".format(urlsplit(url))
                with deadline(limit) as clock:
                    response = self.session.get(url, timeout=req_timeout, headers={"Referer": base})
                if clock.expired:
                    raise requests.Timeout("deadline")
            except Refused as exc:
                reason = f"result page {exc}"
                break
            except requests.RequestException as exc:
                reason = f"result page fetch failed ({type(exc).__name__})"
                if clock.expired:
                    reason = f"result page not read within {limit:g} s ({DEADLINE_FACTOR} x --timeout)"
                    break
                continue
            if response.status_code != 200:
                reason = f"result page HTTP {response.status_code}"
                if response.status_code in (408, 429) or response.status_code >= 500:
                    continue
                break
            n = 0
            try:
                for task in self.parse(response, **kwargs):
                    if not _put(self, task, feeding=False):
                        break  # the crawl is full
                    n += 1
            except PageError as exc:
                reason = str(exc)
                break
            except Exception as exc:  # a parser bug must not silently end the crawl
                reason = f"result page unparseable ({type(exc).__name__}: {exc})"
                break
            self.on_page(url, n, None)
            if n == 0 and not self.signal.get(STOP):
                self.signal.set(**{EXHAUSTED: True})
            return
        # One failed page ends this query's crawl: the engine is blocking us or changed its markup.
        self.on_page(url, 0, reason)
        self.signal.set(**{EXHAUSTED: True})


# --- Bing -----------------------------------------------------------------------------


class CurateBingFeeder(BingFeeder):
    """icrawler's filters (licence codes included), with the query URL-encoded."""

    def feed(self, keyword, base_url, filters=None, page_size=35, max_results=1000):
        filter_str = self.get_filter().apply(filters)
        for first in range(0, max_results, page_size):
            url = f"{base_url}/images/async?q={quote_plus(keyword)}&first={first}&count={page_size}"
            if filter_str:
                url += "&qft=" + filter_str  # as icrawler sends it: "+filterui:license-L1"
            if not _put(self, url):
                break


class CurateBingParser(SafeParser, BingParser):
    """Every image URL (any extension) with its page URL and title, from `a.iusc[m]`."""

    def parse(self, response, **kwargs):
        soup = BeautifulSoup(response.content.decode("utf-8", "ignore"), "lxml")
        first = _offset(response, "first")
        for i, a in enumerate(soup.find_all("a", class_="iusc")):
            try:
                m = json.loads(a.get("m") or "")
            except ValueError:
                continue
            if not isinstance(m, dict) or not isinstance(m.get("murl"), str):
                continue
            yield dict(file_url=m["murl"], page_url=m.get("purl"), title=_text(m.get("t")), rank=first + i + 1)


# --- Baidu ----------------------------------------------------------------------------


class CurateBaiduFeeder(BaiduFeeder):
    def feed(self, keyword, base_url, filters=None, page_size=30, max_results=1000):
        filter_str = self.get_filter().apply(filters, sep="&")
        for pn in range(0, max_results, page_size):
            url = f"{base_url}/search/acjson?tn=resultjson_com&ipn=rj&word={quote_plus(keyword)}&pn={pn}&rn={page_size}"
            if filter_str:
                url += "&" + filter_str
            if not _put(self, url):
                break


class CurateBaiduParser(SafeParser, BaiduParser):
    """Decode only URLs that are actually obfuscated (they start with 'ippr'); keep page and title."""

    def _url(self, value) -> str | None:
        if not isinstance(value, str) or not value:
            return None
        return self._decode_url(value) if value.startswith("ippr") else value

    def parse(self, response, **kwargs):
        text = response.content.decode("utf-8", "ignore").replace("\\'", "'")
        try:
            content = json.loads(text, strict=False)
        except ValueError as exc:
            raise PageError("baidu returned a page that is not JSON") from exc
        if not isinstance(content, dict) or not isinstance(content.get("data"), list):
            raise PageError("baidu JSON has no 'data' list")
        pn = _offset(response, "pn")
        for i, item in enumerate(content["data"]):
            if not isinstance(item, dict) or not item:
                continue  # Baidu ends every page with an empty object
            replace = item.get("replaceUrl") or [{}]
            replace = replace[0] if isinstance(replace, list) and replace and isinstance(replace[0], dict) else {}
            url = self._url(item.get("objURL")) or self._url(replace.get("ObjURL")) or self._url(item.get("hoverURL"))
            if not url:
                continue
            page = self._url(item.get("fromURL")) or self._url(replace.get("FromURL"))
            title = _text(item.get("fromPageTitleEnc")) or _text(item.get("fromPageTitle"))
            yield dict(file_url=url, page_url=page, title=title, rank=pn + i + 1)


# --- Flickr ---------------------------------------------------------------------------

FLICKR_EXTRAS = "url_o,url_l,url_c,url_z,url_m,license,owner_name"
_FLICKR_SIZE_ORDER = ("url_o", "url_l", "url_c", "url_z", "url_m")


class CurateFlickrFeeder(FlickrFeeder):
    def feed(self, keyword, base_url, apikey, licence=None, page_size=100, max_results=4000):
        params = {
            "method": "flickr.photos.search",
            "api_key": apikey,
            "text": keyword,
            "extras": FLICKR_EXTRAS,
            "per_page": page_size,
            "sort": "relevance",
            "content_type": 1,
            "media": "photos",
            "format": "json",
            "nojsoncallback": 1,
        }
        if licence:
            params["license"] = licence
        for page in range(1, max_results // page_size + 1):
            if not _put(self, f"{base_url}/services/rest/?{urlencode(params)}&page={page}"):
                break


class CurateFlickrParser(SafeParser, FlickrParser):
    def parse(self, response, apikey=None, base_url=None, size_preference=None, **kwargs):
        try:
            content = json.loads(response.content.decode("utf-8", "ignore"))
        except ValueError as exc:
            raise PageError("flickr returned a page that is not JSON") from exc
        if content.get("stat") != "ok":
            raise PageError(f"flickr API error {content.get('code')}: {content.get('message', 'unknown')}")
        photos = content.get("photos") or {}
        page, per_page = int(photos.get("page", 1)), int(photos.get("perpage", 100))
        for i, photo in enumerate(photos.get("photo") or []):
            if not isinstance(photo, dict) or "id" not in photo:
                continue
            url = next((photo[k] for k in _FLICKR_SIZE_ORDER if photo.get(k)), None)
            if url is None:
                url = self._sizes(photo["id"], apikey, base_url)
            if not url:
                continue
            owner = photo.get("owner") or "-"
            yield dict(
                file_url=url,
                page_url=f"https://www.flickr.com/photos/{owner}/{photo['id']}",
                title=_text(photo.get("title")),
                rank=(page - 1) * per_page + i + 1,
                licence=FLICKR_LICENCE_NAMES.get(str(photo.get("license"))),
            )

    def _sizes(self, photo_id, apikey, base_url) -> str | None:
        """The stock fallback: one getSizes call, largest size first."""
        params = {"method": "flickr.photos.getSizes", "api_key": apikey, "photo_id": photo_id,
                  "format": "json", "nojsoncallback": 1}
        try:
            with deadline(DEADLINE_FACTOR * 10):
                info = self.session.get(f"{base_url}/services/rest/?{urlencode(params)}", timeout=10).json()
            sizes = {str(s["label"]).lower(): s["source"] for s in info["sizes"]["size"]}
        except Exception:  # a photo whose sizes cannot be read is skipped, not fatal
            return None
        for label in ("original", "large 2048", "large 1600", "large", "medium 800", "medium 640", "medium"):
            if label in sizes:
                return sizes[label]
        return None


# --- URL list -------------------------------------------------------------------------


def read_url_list(path: Path) -> list[dict]:
    """Tasks from a file of `image_url[<TAB>page_url[<TAB>title]]` lines; # comments and blanks skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read URL list ({exc})") from exc
    tasks = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        tasks.append(dict(file_url=fields[0], page_url=(fields[1:2] or [None])[0] or None,
                          title=(fields[2:3] or [None])[0] or None, rank=n))
    return tasks


class UrlListTaskFeeder(Feeder):
    """Feeds ready-made download tasks (the URL list needs no result page)."""

    def feed(self, tasks, **kwargs):
        for task in tasks:
            if not _put(self, task):
                break


class PassThroughParser(PseudoParser):
    """icrawler's PseudoParser, forwarding whole task dicts and honouring the stop signal."""

    def __init__(self, thread_num, signal, session, on_page=None, **kwargs):
        super().__init__(thread_num, signal, session)
        self.logger = logging.getLogger("curate.scrape.parser")

    def worker_exec(self, queue_timeout=0.05, **kwargs):
        for task in queued(self, "feeder_exited", queue_timeout):
            _put(self, task, feeding=False)
        self.logger.debug("thread %s exit", current_thread().name)


def queued(worker, upstream_exited: str, timeout: float):
    """Items of `worker.in_queue` until the crawl stops or the upstream stage has exited and the queue is
    drained — the loop every worker thread runs, in one place."""
    while not worker.signal.get(STOP):
        try:
            yield worker.in_queue.get(timeout=timeout)
        except queue.Empty:
            if worker.signal.get(upstream_exited) and worker.in_queue.empty():
                return


# --- registry -------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineSpec:
    name: str
    feeder_cls: type | None
    parser_cls: type | None
    host: str  # production base URL
    licences: dict[str, str] = field(default_factory=dict)  # our --license value -> engine filter value
    refusal: str | None = None

    def licence_filter(self, licence: str | None) -> str | None:
        if licence in (None, "", "any"):
            return None
        if licence not in LICENCES:
            raise ConfigError(f"--license must be one of {', '.join(LICENCES)}, not {licence!r}")
        if licence not in self.licences:
            can = ", ".join(self.licences) or "none"
            raise ConfigError(f"--engine {self.name} cannot filter by licence {licence!r} (it can express: {can})")
        return self.licences[licence]


ENGINES: dict[str, EngineSpec] = {
    "bing": EngineSpec(
        "bing", CurateBingFeeder, CurateBingParser, "https://www.bing.com",
        # icrawler's BingFeeder licence codes, by the names it uses.
        {"public-domain": "publicdomain", "cc": "creativecommons", "cc-commercial": "commercial",
         "cc-modify": "noncommercial,modify", "cc-commercial-modify": "commercial,modify"},
    ),
    "baidu": EngineSpec("baidu", CurateBaiduFeeder, CurateBaiduParser, "https://image.baidu.com"),
    "flickr": EngineSpec(
        "flickr", CurateFlickrFeeder, CurateFlickrParser, "https://api.flickr.com",
        {"public-domain": "8,9,10", "cc": "1,2,3,4,5,6,9,10", "cc-commercial": "4,5,6,9,10",
         "cc-modify": "1,2,4,5,9,10", "cc-commercial-modify": "4,5,9,10"},
    ),
    "google": EngineSpec(
        "google", None, None, "https://www.google.com",
        refusal=("--engine google is not supported: today's Google result pages are built by JavaScript and "
                 "icrawler 0.6.10's parser finds no images on them; use --engine bing, baidu, flickr or urls"),
    ),
    "urls": EngineSpec("urls", UrlListTaskFeeder, PassThroughParser, ""),
}


def engine_spec(name: str) -> EngineSpec:
    spec = ENGINES.get(name)
    if spec is None:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, not {name!r}")
    if spec.refusal:
        raise ConfigError(spec.refusal)
    return spec
