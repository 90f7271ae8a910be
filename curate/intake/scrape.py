"""`curate scrape`: web search results into the store, each image with its provenance.

Built on icrawler's Crawler/Feeder/Parser/Downloader (engines in
`scrape_engines.py`), hardened where the stock classes are weak:

* the downloader fully decodes every file with `decode.inspect` (the stock check
  reads only the header: truncated JPEGs were saved, a decompression bomb killed
  the thread and silently ended the crawl), and puts the bytes in the
  content-addressed store, so the same bytes at two URLs are stored once;
* `--max` is exact: a thread claims a slot under a lock only for an image that
  is new to the query, and the crawl stops at N;
* one exception never kills a thread; no `logging.basicConfig` on the caller;
* downloader threads never touch the catalogue: they hand results to the main
  thread, which writes short transactions, always after the bytes are stored.

Safe to kill and re-run: `--max N` is the number of images the (engine, query)
should have in total, URLs already recorded (accepted or rejected) are skipped,
and a killed run leaves only stored files, never a row without its file.
Transient failures (timeouts, HTTP 5xx/429, cut connections) are reported but not
recorded, so the next run retries them.

Against a hostile web (see `fetch_guard.py`): each download and each result page must finish
within `DEADLINE_FACTOR` x `--timeout` seconds in all (a server dripping one byte per second is cut
off); connections to loopback, private, link-local, multicast or reserved addresses are refused
unless they go to the engine's own host or `--allow-private-hosts` is given; control characters
in a URL reject it, and no text with control characters reaches the catalogue.
"""
from __future__ import annotations

import logging
import os
import re
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import requests
from icrawler import Crawler, ImageDownloader
from icrawler.storage import BaseStorage
from sqlmodel import select

from curate.errors import ConfigError, ScrapeError, StoreError
from curate.intake.catalogue import get_or_create_source, record_arrival
from curate.intake.decode import MAX_BYTES, MAX_PIXELS, ImageInfo, Rejected, inspect
from curate.intake.fetch_guard import DEADLINE_FACTOR, HostPolicy, Refused, deadline, guard
from curate.intake.scrape_engines import EXHAUSTED, STOP, EngineSpec, engine_spec, queued, read_url_list
from curate.intake.store import sha256_bytes
from curate.redact import redact_text
from db.models import Image, Provenance, Rejection, utcnow

log = logging.getLogger("curate.scrape")

BASE_URL_ENV = "CURATE_SCRAPE_BASE_URL"  # tests point every engine at a local server
FLICKR_KEY_ENV = "FLICKR_API_KEY"
DEFAULT_MAX = 100
MAX_THREADS = 16
_TEXT_LIMIT = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class ScrapeOptions:
    engine: str
    queries: tuple[str, ...]  # search terms; for --engine urls, paths of URL-list files
    max_num: int = DEFAULT_MAX  # images each query should have in total (across runs); 0: no limit
    licence: str | None = None  # one of scrape_engines.LICENCES; recorded as requested, never as verified
    source: str | None = None  # default: web-<engine>
    threads: int = 4
    min_side: int = 0  # reject images whose shorter side is below this (0: off)
    max_bytes: int = MAX_BYTES
    max_pixels: int = MAX_PIXELS
    timeout: float = 10.0
    max_results: int | None = None  # how deep to page into the engine (default: its own limit)
    base_url: str | None = None  # default: $CURATE_SCRAPE_BASE_URL, else the engine's real host
    allow_private_hosts: bool = False  # fetch from loopback/private/link-local addresses too

    @property
    def deadline(self) -> float:
        return DEADLINE_FACTOR * self.timeout

    @property
    def source_name(self) -> str:
        return self.source or f"web-{self.engine}"


@dataclass
class QueryReport:
    query: str
    before: int = 0  # images this query already had
    new_for_query: int = 0  # images this run added to the query (what --max counts)
    added: int = 0  # of those, new to the store
    provenance: int = 0  # known image, new URL (same bytes elsewhere)
    skipped: int = 0  # URL already recorded by an earlier run (or seen earlier in this one)
    over_limit: int = 0  # fetched while the query filled up; left for a later run
    pages: int = 0  # result pages read
    results: int = 0  # results found on them
    page_errors: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (url, reason), recorded
    failed: list[tuple[str, str]] = field(default_factory=list)  # (url, reason), retried next run

    @property
    def total(self) -> int:
        return self.before + self.new_for_query

    def as_dict(self) -> dict:
        return {
            "query": self.query,
            "images_before": self.before,
            "images_now": self.total,
            "new_for_query": self.new_for_query,
            "added": self.added,
            "new_provenance": self.provenance,
            "skipped_known_urls": self.skipped,
            "over_limit": self.over_limit,
            "rejected": len(self.rejected),
            "failed": len(self.failed),
            "result_pages": self.pages,
            "results": self.results,
            "page_errors": self.page_errors,
            "reject_reasons": dict(Counter(r for _, r in self.rejected)),
            "rejects": [{"url": u, "reason": r} for u, r in self.rejected],
            "failures": [{"url": u, "reason": r} for u, r in self.failed],
        }


@dataclass
class ScrapeReport:
    engine: str
    source: str
    licence_requested: str | None
    max_num: int
    run_id: int | None = None
    queries: list[QueryReport] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        q = self.queries
        return {
            "run_id": self.run_id,
            "engine": self.engine,
            "source": self.source,
            "licence_requested": self.licence_requested,
            "max_per_query": self.max_num,
            "added": sum(r.added for r in q),
            "new_provenance": sum(r.provenance for r in q),
            "rejected": sum(len(r.rejected) for r in q),
            "failed": sum(len(r.failed) for r in q),
            "skipped_known_urls": sum(r.skipped for r in q),
            "seconds": round(self.seconds, 2),
            "queries": [r.as_dict() for r in q],
        }


# --- shared state of one query's crawl -------------------------------------------------


@dataclass
class _Outcome:
    kind: str  # stored | rejected | failed | skipped | over | fatal | page
    task: dict
    reason: str | None = None
    sha: str | None = None
    size: int = 0
    info: ImageInfo | None = None
    counted: bool = False
    final_url: str | None = None
    content_type: str | None = None
    retrieved_at: object = None


class _Job:
    """What the threads of one query's crawl share; every decision that counts is under one lock."""

    def __init__(self, ws, options: ScrapeOptions, recorded_urls: set[str], query_shas: set[str], remaining: int | None):
        self.ws = ws
        self.options = options
        self.lock = threading.Lock()
        self.results: queue.Queue[_Outcome] = queue.Queue()
        self.recorded = recorded_urls
        self.inflight: set[str] = set()
        self.query_shas = query_shas
        self.remaining = remaining
        self.counted = 0
        self.signal = None

    def emit(self, outcome: _Outcome) -> None:
        self.results.put(outcome)

    def stop(self) -> None:
        if self.signal is not None:
            self.signal.set(**{STOP: True})

    def claim_url(self, url: str) -> bool:
        with self.lock:
            if url in self.recorded or url in self.inflight:
                return False
            self.inflight.add(url)
            return True

    def claim_image(self, sha: str) -> str:
        """'new' (counts toward --max), 'dup' (already one of this query's images) or 'full'."""
        with self.lock:
            if sha in self.query_shas:
                return "dup"
            if self.remaining is not None and self.counted >= self.remaining:
                return "full"
            self.query_shas.add(sha)
            self.counted += 1
            if self.remaining is not None and self.counted >= self.remaining:
                self.stop()
            return "new"


# --- icrawler components ---------------------------------------------------------------


class _NoFiles(BaseStorage):
    """icrawler's storage slot: unused, images go to the content-addressed store."""

    def write(self, id, data):  # pragma: no cover - never called
        raise RuntimeError("scrape writes only to the image store")

    def exists(self, id):
        return False

    def max_file_idx(self):
        return 0


class _Transient(Exception):
    pass


class _Permanent(Exception):
    pass


def _url_problem(url: str) -> str | None:
    if len(url) > _TEXT_LIMIT:
        return "URL too long"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "malformed URL"
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "not an http(s) URL"
    return None


def printable(text: str) -> str:
    """`text` with control characters percent-encoded: what the catalogue may hold (PostgreSQL refuses NUL)."""
    return _CONTROL.sub(lambda m: "%{:02X}".format(ord(m.group()) & 0xFF), text)


class StoreDownloader(ImageDownloader):
    """Fetch, fully decode, store by hash, and hand the result to the catalogue writer."""

    def __init__(self, thread_num, signal, session, storage, job: _Job):
        super().__init__(thread_num, signal, session, storage)
        self.job = job
        self.logger = logging.getLogger("curate.scrape.downloader")

    def start(self, **kwargs):  # no file index: files are named by their hash
        self.init_workers(**kwargs)
        for worker in self.workers:
            worker.start()

    def worker_exec(self, queue_timeout=0.05, **kwargs):
        for task in queued(self, "parser_exited", queue_timeout):
            try:
                self.download(task)
                self.process_meta(task)
            except Exception as exc:  # one bad URL never ends the crawl
                self.job.emit(_Outcome("failed", task, reason=f"internal error ({type(exc).__name__})"))
            finally:
                self.in_queue.task_done()

    def process_meta(self, task):
        """Provenance is written by the main thread; nothing to do per thread."""

    def download(self, task, *args, **kwargs):
        job, opts = self.job, self.job.options
        url = task.get("file_url")
        if not isinstance(url, str) or not url.strip():
            return
        raw = url.strip()
        # The form recorded and compared: control characters escaped, user:password@ and api keys masked.
        url = task["file_url"] = _clip(raw)
        if not job.claim_url(url):
            job.emit(_Outcome("skipped", task))
            return
        problem = "control characters in URL" if printable(raw) != raw else _url_problem(raw)
        if problem:
            job.emit(_Outcome("rejected", task, reason=problem))
            return
        retrieved_at = utcnow()
        try:
            body, final_url, content_type = self._fetch(raw, opts)
        except _Permanent as exc:
            job.emit(_Outcome("rejected", task, reason=str(exc)))
            return
        except (_Transient, Refused) as exc:
            job.emit(_Outcome("failed", task, reason=str(exc)))
            return
        try:
            info = inspect(body, max_pixels=opts.max_pixels, max_bytes=opts.max_bytes)
        except Rejected as exc:
            job.emit(_Outcome("rejected", task, reason=str(exc)))
            return
        if opts.min_side and min(info.width, info.height) < opts.min_side:
            job.emit(_Outcome("rejected", task, reason=f"too small ({info.width}x{info.height} < {opts.min_side} px)"))
            return
        sha = sha256_bytes(body)
        decision = job.claim_image(sha)
        if decision == "full":
            with job.lock:
                job.inflight.discard(url)
            job.emit(_Outcome("over", task))
            return
        try:
            job.ws.store.put(body, sha)
        except StoreError as exc:
            job.stop()
            job.emit(_Outcome("fatal", task, reason=str(exc)))
            return
        job.emit(_Outcome("stored", task, sha=sha, size=len(body), info=info, counted=decision == "new",
                          final_url=final_url, content_type=content_type, retrieved_at=retrieved_at))

    def _fetch(self, url: str, opts: ScrapeOptions) -> tuple[bytes, str, str | None]:
        """`_get` within the whole-request deadline; a body cut off by the deadline is never kept."""
        late = f"download not finished within {opts.deadline:g} s ({DEADLINE_FACTOR} x --timeout)"
        with deadline(opts.deadline) as clock:
            try:
                result = self._get(url, opts)
            except (_Permanent, _Transient) as exc:
                if clock.expired:
                    raise _Transient(late) from exc
                raise
        if clock.expired:
            raise _Transient(late)
        return result

    def _get(self, url: str, opts: ScrapeOptions) -> tuple[bytes, str, str | None]:
        try:
            with self.session.get(url, timeout=opts.timeout, stream=True) as resp:
                status = resp.status_code
                if status != 200:
                    if status in (408, 429) or status >= 500:
                        raise _Transient(f"HTTP {status}")
                    raise _Permanent(f"HTTP {status}")
                declared = resp.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > opts.max_bytes:
                    raise _Permanent(f"file too large ({int(declared) / 1e6:.0f} MB)")
                chunks, size = [], 0
                for chunk in resp.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > opts.max_bytes:
                        raise _Permanent(f"file too large (over {opts.max_bytes / 1e6:.0f} MB)")
                    chunks.append(chunk)
                ctype = _clip((resp.headers.get("Content-Type") or "").strip()[:100])
                return b"".join(chunks), resp.url, ctype
        except (_Permanent, _Transient, Refused):
            raise
        except requests.TooManyRedirects as exc:
            raise _Permanent("too many redirects") from exc
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                requests.exceptions.MissingSchema, UnicodeError) as exc:
            raise _Permanent(f"invalid URL ({type(exc).__name__})") from exc
        except requests.exceptions.ChunkedEncodingError as exc:
            raise _Transient("connection cut mid-download") from exc
        except requests.RequestException as exc:
            raise _Transient(f"fetch failed ({type(exc).__name__})") from exc


class ScrapeCrawler(Crawler):
    """icrawler's Crawler without its side effects, with a loop that feeds the catalogue writer."""

    def set_logger(self, log_level=logging.INFO):
        # The stock method calls logging.basicConfig, reconfiguring the caller's root logger.
        self.logger = log

    def init_signal(self):
        super().init_signal()
        self.signal.set(**{EXHAUSTED: False})

    def run(self, job: _Job, feeder_kwargs: dict, parser_kwargs: dict, sink: Callable[[list[_Outcome]], None],
            poll: float = 0.05) -> None:
        """Start the threads and write their results as they come, until the downloaders are done."""
        self.signal.reset()
        self.feeder.start(**feeder_kwargs)
        self.parser.start(**parser_kwargs)
        self.downloader.start()
        try:
            while True:
                if not self.feeder.is_alive():
                    self.signal.set(feeder_exited=True)
                if not self.parser.is_alive():
                    self.signal.set(parser_exited=True)
                finished = not self.downloader.is_alive()
                batch = _drain(job.results, poll)
                if batch:
                    sink(batch)
                if finished and job.results.empty():
                    break
        except KeyboardInterrupt:
            # Stop every thread, then record what is already in the store.
            self.signal.set(**{STOP: True})
            for w in self.downloader.workers:
                w.join(timeout=job.options.timeout + 1)
            rest = _drain(job.results, 0)
            if rest:
                sink(rest)
            raise
        except BaseException:
            self.signal.set(**{STOP: True})
            raise
        finally:
            self.signal.set(**{STOP: True})  # lets a feeder blocked on a full queue exit


def _drain(q: queue.Queue, timeout: float, limit: int = 256) -> list:
    items = []
    try:
        items.append(q.get(timeout=timeout) if timeout else q.get_nowait())
        while len(items) < limit:
            items.append(q.get_nowait())
    except queue.Empty:
        pass
    return items


# --- the job ---------------------------------------------------------------------------


def _clip(value) -> str | None:
    """Text as the catalogue may hold it: no control characters, no visible secret, at most _TEXT_LIMIT long."""
    return redact_text(printable(value))[:_TEXT_LIMIT] if isinstance(value, str) and value else None


def _base_url(spec: EngineSpec, options: ScrapeOptions) -> str:
    base = (options.base_url or os.environ.get(BASE_URL_ENV) or spec.host).rstrip("/")
    if spec.name != "urls" and not base.startswith(("http://", "https://")):
        raise ConfigError(f"{BASE_URL_ENV} must be an http(s) URL, not {base!r}")
    return base


def validate(options: ScrapeOptions) -> tuple[EngineSpec, str | None]:
    """Check the options before anything is written; returns the engine and its licence filter."""
    spec = engine_spec(options.engine)
    licence_filter = spec.licence_filter(options.licence)
    if not options.queries or any(not q.strip() for q in options.queries):
        raise ConfigError("give at least one non-empty QUERY")
    if options.max_num < 0:
        raise ConfigError("--max must be 0 (no limit) or more")
    if not options.timeout > 0:
        raise ConfigError("--timeout must be more than 0 seconds")
    if not 1 <= options.threads <= MAX_THREADS:
        raise ConfigError(f"--threads must be between 1 and {MAX_THREADS}")
    if spec.name == "flickr" and not os.environ.get(FLICKR_KEY_ENV):
        raise ConfigError(f"--engine flickr needs an API key in ${FLICKR_KEY_ENV}")
    if spec.name == "urls":
        for q in options.queries:
            if not Path(q).is_file():
                raise ConfigError(f"--engine urls takes files of image URLs; not a file: {q}")
    _base_url(spec, options)
    return spec, licence_filter


def scrape(ws, options: ScrapeOptions, run_id: int | None = None,
           on_progress: Callable[[str, int, int | None], None] | None = None) -> ScrapeReport:
    """Run every query of `options` against its engine; see the module docstring.

    `on_progress(query, images_now, wanted)` is called after each catalogue write.
    """
    started = time.perf_counter()
    spec, licence_filter = validate(options)
    base = _base_url(spec, options)
    report = ScrapeReport(options.engine, options.source_name, options.licence or None, options.max_num, run_id)
    with ws.session() as s:
        source_id = get_or_create_source(s, options.source_name, "web").id
    for raw in options.queries:
        qr = _scrape_query(ws, spec, options, licence_filter, base, source_id, raw.strip(), run_id, on_progress)
        report.queries.append(qr)
    report.seconds = time.perf_counter() - started
    crawled = [q for q in report.queries if q.pages or q.page_errors]
    if crawled and all(q.page_errors and not q.results for q in crawled):
        raise ScrapeError(f"{spec.name}: no results for any query ({crawled[0].page_errors[0]})")
    return report


def _query_label(spec: EngineSpec, raw: str) -> str:
    return Path(raw).name if spec.name == "urls" else " ".join(raw.split())


def _scrape_query(ws, spec, options, licence_filter, base, source_id, raw, run_id, on_progress) -> QueryReport:
    query = _query_label(spec, raw)
    qr = QueryReport(query)
    with ws.session() as s:
        recorded = set(s.exec(select(Provenance.locator).where(Provenance.source_id == source_id)).all())
        recorded |= set(s.exec(select(Rejection.locator).where(Rejection.source_id == source_id)).all())
        shas = set(s.exec(
            select(Image.sha256).join(Provenance, Provenance.image_id == Image.id)
            .where(Provenance.source_id == source_id, Provenance.query == query)
        ).all())
    qr.before = len(shas)
    remaining = None if options.max_num == 0 else options.max_num - qr.before
    log.info("scrape engine=%s query=%r: %d images already, %s wanted", spec.name, query, qr.before,
             "all" if remaining is None else max(remaining, 0))
    if remaining is not None and remaining <= 0:
        return qr

    job = _Job(ws, options, recorded, shas, remaining)
    pages: list[tuple[str, int, str | None]] = []

    def on_page(url: str, n: int, reason: str | None) -> None:
        pages.append((url, n, reason))  # list.append is atomic; read after the crawl

    crawler = ScrapeCrawler(
        spec.feeder_cls, spec.parser_cls, StoreDownloader,
        feeder_threads=1, parser_threads=1, downloader_threads=options.threads,
        storage=_NoFiles(), extra_parser_args={"on_page": on_page}, extra_downloader_args={"job": job},
    )
    crawler.feeder.logger = logging.getLogger("curate.scrape.feeder")
    crawler.session.max_redirects = 5
    engine_host = urlsplit(base).hostname if base else None
    guard(crawler.session, HostPolicy(frozenset({engine_host.lower()}) if engine_host else frozenset(),
                                      options.allow_private_hosts))
    job.signal = crawler.signal

    feeder_kwargs: dict = {}
    parser_kwargs: dict = {"req_timeout": options.timeout}
    max_results = options.max_results
    if spec.name == "urls":
        feeder_kwargs = {"tasks": read_url_list(Path(raw))}
    else:
        feeder_kwargs = {"keyword": query, "base_url": base}
        if max_results:
            feeder_kwargs["max_results"] = max_results
        if spec.name == "bing":
            feeder_kwargs["filters"] = {"license": licence_filter} if licence_filter else None
        elif spec.name == "flickr":
            key = os.environ[FLICKR_KEY_ENV]
            feeder_kwargs.update(apikey=key, licence=licence_filter)
            parser_kwargs.update(apikey=key, base_url=base)

    fatal: list[str] = []

    def sink(batch: list[_Outcome]) -> None:
        _write(ws, batch, qr, spec, options, query, source_id, run_id, fatal)
        if on_progress:
            on_progress(query, qr.total, None if remaining is None else qr.before + remaining)

    crawler.run(job, feeder_kwargs, parser_kwargs, sink)
    for url, n, reason in pages:
        if reason is None:
            qr.pages += 1
            qr.results += n
        else:
            qr.page_errors.append(reason)
            log.warning("scrape engine=%s query=%r: %s", spec.name, query, reason)
    if spec.name != "urls" and qr.pages and not qr.results and not qr.page_errors:
        qr.page_errors.append("no results on the first result page (no matches, or the engine's markup changed)")
    if fatal:
        raise StoreError(fatal[0])
    log.info("scrape engine=%s query=%r: %d new (%d new to the store), %d rejected, %d failed, %d skipped",
             spec.name, query, qr.new_for_query, qr.added, len(qr.rejected), len(qr.failed), qr.skipped)
    return qr


def _write(ws, batch: list[_Outcome], qr: QueryReport, spec, options, query, source_id, run_id, fatal) -> None:
    """One short transaction per batch; every `stored` outcome's bytes are already in the store."""
    with ws.session() as s:
        for o in batch:
            url = o.task.get("file_url") or ""
            if o.kind == "stored":
                outcome = record_arrival(
                    s, sha256=o.sha, size_bytes=o.size, info=o.info, source_id=source_id, locator=url,
                    run_id=run_id, licence=_clip(o.task.get("licence")), engine=spec.name, query=query,
                    licence_requested=options.licence or None, rank=o.task.get("rank"),
                    page_url=_clip(o.task.get("page_url")), image_url=url, final_url=_clip(o.final_url),
                    title=_clip(o.task.get("title")), content_type=o.content_type, retrieved_at=o.retrieved_at,
                )
                if o.counted:
                    qr.new_for_query += 1
                if outcome == "added":
                    qr.added += 1
                elif outcome == "provenance":
                    qr.provenance += 1
                log.info("scrape engine=%s query=%r: %s %s", spec.name, query, outcome, o.sha[:12])
                log.debug("  from %s", url)
            elif o.kind == "rejected":
                locator = url[:_TEXT_LIMIT] or "(empty URL)"
                s.add(Rejection(run_id=run_id, source_id=source_id, locator=locator, reason=o.reason))
                qr.rejected.append((locator, o.reason))
                log.debug("rejected %s: %s", url, o.reason)
            elif o.kind == "failed":
                qr.failed.append((url[:_TEXT_LIMIT], o.reason))
                log.debug("failed %s: %s", url, o.reason)
            elif o.kind == "skipped":
                qr.skipped += 1
            elif o.kind == "over":
                qr.over_limit += 1
            elif o.kind == "fatal":
                fatal.append(o.reason)
