"""What every engine shares: the `Engine` base class, the safe parser loop and the queue helpers.

Feeders put page URLs with a timeout and stop as soon as the crawl is full or an engine page came back
empty, instead of blocking forever on a full queue.
"""

from __future__ import annotations

import logging
import os
import queue
import re
from dataclasses import dataclass
from html import unescape
from threading import current_thread
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import requests
from icrawler import Parser

from curate.errors import ConfigError
from curate.intake.fetch_guard import DEADLINE_FACTOR, Refused, deadline
from curate.intake.scrape.options import BASE_URL_ENV, EngineName, Licence, ScrapeOptions

# Signals shared by the crawl's threads (besides icrawler's own three).
STOP = "reach_max_num"  # icrawler's name: every stock loop already checks it
EXHAUSTED = "engine_exhausted"  # a result page had no results: no point asking for the next
TEXT_LIMIT = 2000  # longest text (URL, title) the catalogue keeps
# control characters, and lone surrogates (a search result's JSON can hold "\ud800", which no UTF-8 text can: before,
# one such title stopped the whole scrape, every re-run again)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` with control characters and lone surrogates escaped (%XX, %uXXXX): what the catalogue may hold
    (PostgreSQL refuses NUL, UTF-8 a surrogate)."""
    return _CONTROL.sub(lambda m: f"%{o:02X}" if (o := ord(m.group())) < 256 else f"%u{o:04X}", text)


PAGE_MAX = 20 * 1024 * 1024  # bytes of a result page (decompressed) read at most: real ones are under 2 MB


class PageError(Exception):
    """A result page that could not be read (bad JSON, API error); the message is the reason."""


def get_page(session: requests.Session, url: str, timeout: float, **kwargs) -> requests.Response:
    """GET a result page (or an API answer) whose body, decompressed, is read into memory up to `PAGE_MAX`.
    requests reads a whole body and decompresses it as it goes: a 1.5 MB gzip page of spaces took 6 GB and
    22 s before its parser found nothing; more would have ended the command for want of memory."""
    response = session.get(url, timeout=timeout, stream=True, **kwargs)
    with response:
        body = bytearray()
        for chunk in response.iter_content(64 * 1024):
            body += chunk
            if len(body) > PAGE_MAX:
                raise PageError(f"result page larger than {PAGE_MAX // 2**20} MB (decompressed)")
    response._content = bytes(body)  # what `.content`, `.text` and `.json()` read (requests' own attribute)
    return response


@dataclass(frozen=True)
class QueryPlan:
    """One query's crawl, as its engine needs it."""

    raw: str  # as given: a search term, or for --engine urls a URL-list file
    query: str  # as recorded in the catalogue (`Engine.query_label`)
    base_url: str
    licence_filter: str | None
    options: ScrapeOptions


class Engine:
    """One engine: its icrawler feeder and parser, and everything else that differs per engine."""

    name: ClassVar[EngineName]
    host: ClassVar[str]  # production base URL
    feeder: ClassVar[type | None]
    parser: ClassVar[type | None]
    licences: ClassVar[dict[Licence, str]] = {}  # our --license value -> the engine's filter value
    reads_result_pages: ClassVar[bool] = True
    refusal: ClassVar[str | None] = None  # why this engine is not offered, for an engine that is not

    def check(self, options: ScrapeOptions) -> None:
        """Refuse, before anything is written, what this engine cannot do with `options`."""

    def licence_filter(self, licence: Licence | None) -> str | None:
        if licence is None:
            return None
        if licence not in self.licences:
            can = ", ".join(self.licences) or "none"
            raise ConfigError(f"--engine {self.name} cannot filter by licence {str(licence)!r} (it can express: {can})")
        return self.licences[licence]

    def base_url(self, options: ScrapeOptions) -> str:
        base = (options.base_url or os.environ.get(BASE_URL_ENV) or self.host).rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ConfigError(f"{BASE_URL_ENV} must be an http(s) URL, not {base!r}")
        return base

    def query_label(self, raw: str) -> str:
        return " ".join(raw.split())

    def feeder_kwargs(self, plan: QueryPlan) -> dict:
        kwargs: dict = {"keyword": plan.query, "base_url": plan.base_url}
        if plan.options.max_results:
            kwargs["max_results"] = plan.options.max_results
        return kwargs

    def parser_kwargs(self, plan: QueryPlan) -> dict:
        return {}


def put(pool, item, feeding: bool = True) -> bool:
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


def queued(worker, upstream_exited: str, timeout: float):
    """Items of `worker.in_queue` until the crawl stops or the upstream stage has exited and the queue is
    drained — the loop every worker thread runs, in one place."""
    while not worker.signal.get(STOP):
        try:
            yield worker.in_queue.get(timeout=timeout)
        except queue.Empty:
            if worker.signal.get(upstream_exited) and worker.in_queue.empty():
                return


def offset(response, name: str, default: int = 0) -> int:
    """The paging offset a result page was asked for (`first=`, `pn=`): ranks continue across pages."""
    try:
        return int(parse_qs(urlsplit(response.url).query).get(name, [default])[0])
    except (TypeError, ValueError):
        return default


def plain_text(value) -> str | None:
    """A title as text: entities decoded, tags dropped, at most TEXT_LIMIT long."""
    if not isinstance(value, str):
        return None
    value = re.sub(r"<[^>]*>", "", unescape(value)).strip()
    return value[:TEXT_LIMIT] or None


class SafeParser(Parser):
    """icrawler's Parser loop, made safe: a bad page or a parser exception is reported,
    never a dead thread; HTTP errors are checked; URLs (which may carry an API key)
    are never logged."""

    def __init__(self, thread_num, signal, session, on_page=None, **kwargs):
        super().__init__(thread_num, signal, session)
        self.on_page = on_page or (lambda url, n, reason: None)
        self.logger = logging.getLogger("curate.scrape.parser")

    def worker_exec(self, queue_timeout=0.05, req_timeout=10, max_retry=3, **kwargs):
        self.req_timeout = req_timeout  # --timeout, for an engine's own calls while parsing (Flickr's sizes)
        for url in queued(self, "feeder_exited", queue_timeout):
            if not self.signal.get(EXHAUSTED):  # pages queued past the last result are not fetched
                self._page(url, req_timeout, max_retry, kwargs)
        self.logger.debug("thread %s exit", current_thread().name)

    def _page(self, url, req_timeout, max_retry, kwargs) -> None:
        reason = "no attempt"
        limit = DEADLINE_FACTOR * req_timeout
        for _ in range(max(1, max_retry)):
            response, reason, retry = self._get(url, req_timeout, limit)
            if response is None:
                if retry:
                    continue
                break
            n = 0
            try:
                for task in self.parse(response, **kwargs):
                    if not put(self, task, feeding=False):
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

    def _get(self, url, req_timeout, limit) -> tuple[requests.Response | None, str, bool]:
        """(response, "", False) for a page to parse, else (None, reason, worth retrying)."""
        base = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        try:
            with deadline(limit) as clock:
                response = get_page(self.session, url, req_timeout, headers={"Referer": base})
            if clock.expired:
                raise requests.Timeout("deadline")
        except Refused as exc:
            return None, f"result page {exc}", False
        except PageError as exc:
            return None, str(exc), False
        except requests.RequestException as exc:
            if clock.expired:
                return None, f"result page not read within {limit:g} s ({DEADLINE_FACTOR} x --timeout)", False
            return None, f"result page fetch failed ({type(exc).__name__})", True
        status = response.status_code
        if status != 200:
            return None, f"result page HTTP {status}", status in (408, 429) or status >= 500
        return response, "", False
