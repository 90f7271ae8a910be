"""The threads of one query's crawl: what they share, the downloader, and the crawler's loop.

Downloader threads fetch, fully decode and store by hash, and hand an `Outcome` to the main thread,
which alone writes the catalogue (record.py). Every decision that counts toward `--max` is taken under
one lock (`CrawlJob.claim_image`).
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from icrawler import Crawler, ImageDownloader
from icrawler.storage import BaseStorage

from curate.errors import StoreError
from curate.intake.decode import ImageInfo, Rejected, inspect
from curate.intake.fetch_guard import Refused, end_all
from curate.intake.scrape.engines.base import EXHAUSTED, STOP, queued
from curate.intake.scrape.fetch import Permanent, Transient, clip, fetch, url_problem
from curate.intake.scrape.options import ScrapeOptions
from curate.intake.store import sha256_bytes
from db.models import utcnow

log = logging.getLogger("curate.scrape")
# A rejection under --min-side, and its reason read back: a later run with a lower --min-side fetches it again.
TOO_SMALL = re.compile(r"too small \((\d+)x(\d+) < (\d+) px\)")


def too_small(width: int, height: int, min_side: int) -> str:
    """The reason `TOO_SMALL` reads back."""
    return f"too small ({width}x{height} < {min_side} px)"


STOP_JOIN_S = 2.0  # a stopped crawl waits this long for each download thread, its requests ended (`end_all`)


class Kind(Enum):
    STORED = "stored"  # bytes in the store: record the arrival
    REJECTED = "rejected"  # will never be an image: record the rejection
    FAILED = "failed"  # may work next run: report only
    SKIPPED = "skipped"  # URL recorded earlier or already seen in this run
    OVER = "over"  # fetched while the query filled up
    FATAL = "fatal"  # the store failed: stop the crawl


class Claim(Enum):
    NEW = "new"  # counts toward --max
    DUPLICATE = "duplicate"  # already one of this query's images
    FULL = "full"  # the query has its --max images


@dataclass
class Outcome:
    kind: Kind
    task: dict
    reason: str | None = None
    sha: str | None = None
    size: int = 0
    info: ImageInfo | None = None
    counted: bool = False
    final_url: str | None = None
    content_type: str | None = None
    retrieved_at: datetime | None = None


class CrawlJob:
    """What the threads of one query's crawl share; every decision that counts is under one lock."""

    def __init__(
        self, ws, options: ScrapeOptions, recorded_urls: set[str], query_shas: set[str], remaining: int | None
    ):
        self.ws = ws
        self.options = options
        self.lock = threading.Lock()
        self.results: queue.Queue[Outcome] = queue.Queue()
        self.recorded = recorded_urls
        self.inflight: set[str] = set()
        self.query_shas = query_shas
        self.remaining = remaining
        self.counted = 0
        self.signal = None

    def emit(self, outcome: Outcome) -> None:
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

    def release_url(self, url: str) -> None:
        with self.lock:
            self.inflight.discard(url)

    def claim_image(self, sha: str) -> Claim:
        with self.lock:
            if sha in self.query_shas:
                return Claim.DUPLICATE
            if self.remaining is not None and self.counted >= self.remaining:
                return Claim.FULL
            self.query_shas.add(sha)
            self.counted += 1
            if self.remaining is not None and self.counted >= self.remaining:
                self.stop()
            return Claim.NEW


class NoFiles(BaseStorage):
    """icrawler's storage slot: unused, images go to the content-addressed store."""

    def write(self, id, data):  # pragma: no cover - never called
        raise RuntimeError("scrape writes only to the image store")

    def exists(self, id):
        return False

    def max_file_idx(self):
        return 0


class StoreDownloader(ImageDownloader):
    """Fetch, fully decode, store by hash, and hand the result to the catalogue writer."""

    def __init__(self, thread_num, signal, session, storage, job: CrawlJob):
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
                self.job.emit(Outcome(Kind.FAILED, task, reason=f"internal error ({type(exc).__name__})"))
            finally:
                self.in_queue.task_done()

    def process_meta(self, task):
        """Provenance is written by the main thread; nothing to do per thread."""

    def download(self, task, *args, **kwargs):
        job = self.job
        url = task.get("file_url")
        if not isinstance(url, str) or not url.strip():
            return
        raw = url.strip()
        # The form recorded and compared: control characters escaped, user:password@ and api keys masked.
        url = task["file_url"] = clip(raw)
        if not job.claim_url(url):
            job.emit(Outcome(Kind.SKIPPED, task))
            return
        problem = url_problem(raw)
        if problem:
            job.emit(Outcome(Kind.REJECTED, task, reason=problem))
            return
        job.emit(self._store(task, url, raw))

    def _store(self, task: dict, url: str, raw: str) -> Outcome:
        job, opts = self.job, self.job.options
        retrieved_at = utcnow()
        try:
            got = fetch(self.session, raw, opts.timeout, opts.max_bytes)
            info = inspect(got.body, max_pixels=opts.max_pixels, max_bytes=opts.max_bytes)
        except (Permanent, Rejected) as exc:
            return Outcome(Kind.REJECTED, task, reason=str(exc))
        except (Transient, Refused) as exc:
            return Outcome(Kind.FAILED, task, reason=str(exc))
        if opts.min_side and min(info.width, info.height) < opts.min_side:
            return Outcome(Kind.REJECTED, task, reason=too_small(info.width, info.height, opts.min_side))
        sha = sha256_bytes(got.body)
        claim = job.claim_image(sha)
        if claim is Claim.FULL:
            job.release_url(url)
            return Outcome(Kind.OVER, task)
        try:
            job.ws.store.put(got.body, sha)
        except StoreError as exc:
            job.stop()
            return Outcome(Kind.FATAL, task, reason=str(exc))
        return Outcome(
            Kind.STORED,
            task,
            sha=sha,
            size=len(got.body),
            info=info,
            counted=claim is Claim.NEW,
            final_url=got.final_url,
            content_type=got.content_type,
            retrieved_at=retrieved_at,
        )


class ScrapeCrawler(Crawler):
    """icrawler's Crawler without its side effects, with a loop that feeds the catalogue writer."""

    def set_logger(self, log_level=logging.INFO):
        # The stock method calls logging.basicConfig, reconfiguring the caller's root logger.
        self.logger = log

    def init_signal(self):
        super().init_signal()
        self.signal.set(**{EXHAUSTED: False})

    def run(
        self,
        job: CrawlJob,
        feeder_kwargs: dict,
        parser_kwargs: dict,
        sink: Callable[[list[Outcome]], None],
        poll: float = 0.05,
    ) -> None:
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
                batch = drain(job.results, poll)
                if batch:
                    sink(batch)
                if finished and job.results.empty():
                    break
        except KeyboardInterrupt:
            # Stop every thread, then record what is already in the store.
            self.signal.set(**{STOP: True})
            end_all()  # the downloads in flight end now, not at their deadlines
            for w in self.downloader.workers:
                w.join(timeout=STOP_JOIN_S)
            rest = drain(job.results, 0)
            if rest:
                sink(rest)
            raise
        finally:
            self.signal.set(**{STOP: True})  # lets a feeder blocked on a full queue exit


def drain(q: queue.Queue, timeout: float, limit: int = 256) -> list:
    """Up to `limit` items: the first waited for up to `timeout` seconds (0: not at all), the rest at hand."""
    items = []
    try:
        items.append(q.get(timeout=timeout) if timeout else q.get_nowait())
        while len(items) < limit:
            items.append(q.get_nowait())
    except queue.Empty:
        pass
    return items
