"""`validate` and `scrape`: every query of a scrape, one crawl each (see the package docstring)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from curate.errors import ScrapeError, StoreError
from curate.intake.catalogue import get_or_create_source
from curate.intake.fetch_guard import HostPolicy, Refused, guard
from curate.intake.scrape.crawl import CrawlJob, NoFiles, Outcome, ScrapeCrawler, StoreDownloader
from curate.intake.scrape.engines import Engine, engine_for
from curate.intake.scrape.engines.base import TEXT_LIMIT, QueryPlan
from curate.intake.scrape.fetch import FetchError, fetch
from curate.intake.scrape.options import Licence, ScrapeOptions
from curate.intake.scrape.record import QueryTarget, known, lost, write_batch
from curate.intake.scrape.report import QueryReport, ScrapeReport
from curate.intake.store import sha256_bytes
from curate.output import printable
from curate.redact import redact_text

log = logging.getLogger("curate.scrape")
NO_RESULTS = "no results on the first result page (no matches, or the engine's markup changed)"

OnProgress = Callable[[str, int, "int | None"], None]


@dataclass(frozen=True)
class Validated:
    engine: Engine
    licence_filter: str | None
    base_url: str


def validate(options: ScrapeOptions) -> Validated:
    """Check the options before anything is written: a ConfigError names what is wrong."""
    engine = engine_for(options.engine)
    licence_filter = engine.licence_filter(Licence.parse(options.licence))
    options.check()
    engine.check(options)
    return Validated(engine, licence_filter, engine.base_url(options))


def scrape(
    ws, options: ScrapeOptions, run_id: int | None = None, on_progress: OnProgress | None = None
) -> ScrapeReport:
    """Run every query of `options` against its engine.

    `on_progress(query, images_now, wanted)` is called after each catalogue write.
    """
    started = time.perf_counter()
    checked = validate(options)
    engine = checked.engine
    report = ScrapeReport(str(engine.name), options.source_name, options.licence_requested, options.max_num, run_id)
    with ws.session() as s:
        source_id = get_or_create_source(s, options.source_name, "web").id
    _restore(ws, options, checked.base_url, source_id, report)
    for raw in options.queries:
        raw = raw.strip()
        plan = QueryPlan(raw, engine.query_label(raw), checked.base_url, checked.licence_filter, options)
        target = QueryTarget(str(engine.name), plan.query, source_id, run_id, options.licence_requested)
        report.queries.append(_scrape_query(ws, engine, plan, target, on_progress))
    report.seconds = time.perf_counter() - started
    crawled = [q for q in report.queries if q.pages or q.page_errors]
    if crawled and all(q.page_errors and not q.results for q in crawled):
        raise ScrapeError(f"{engine.name}: no results for any query ({crawled[0].page_errors[0]})")
    return report


def _scrape_query(
    ws, engine: Engine, plan: QueryPlan, target: QueryTarget, on_progress: OnProgress | None
) -> QueryReport:
    options, query = plan.options, plan.query
    qr = QueryReport(query)
    seen = known(ws, target, options.min_side)
    qr.before = len(seen.shas)
    remaining = None if options.max_num == 0 else options.max_num - qr.before
    log.info(
        "scrape engine=%s query=%r: %d images already, %s wanted",
        engine.name,
        query,
        qr.before,
        "all" if remaining is None else max(remaining, 0),
    )
    if remaining is not None and remaining <= 0:
        return qr

    job = CrawlJob(ws, options, seen.urls, seen.shas, remaining)
    pages: list[tuple[str, int, str | None]] = []  # list.append is atomic; read after the crawl
    crawler = _crawler(engine, plan, job, on_page=lambda url, n, reason: pages.append((url, n, reason)))
    fatal: list[str] = []
    wanted = None if remaining is None else qr.before + remaining

    def sink(batch: list[Outcome]) -> None:
        fatal.extend(write_batch(ws, batch, target, qr))
        if on_progress:
            on_progress(query, qr.total, wanted)

    parser_kwargs = {"req_timeout": options.timeout, **engine.parser_kwargs(plan)}
    crawler.run(job, engine.feeder_kwargs(plan), parser_kwargs, sink)
    _count_pages(engine, qr, pages)
    if fatal:
        raise StoreError(fatal[0])
    log.info(
        "scrape engine=%s query=%r: %d new (%d new to the store), %d rejected, %d failed, %d skipped",
        engine.name,
        query,
        qr.new_for_query,
        qr.added,
        len(qr.rejected),
        len(qr.failed),
        qr.skipped,
    )
    return qr


def _restore(ws, options: ScrapeOptions, base_url: str, source_id: int, report: ScrapeReport) -> None:
    """Fetch again, from the URLs it came from, each original of the source missing from the store or cut short,
    and store it only when its bytes are those recorded: nothing is catalogued anew, and --max and the engine's
    results play no part. Before, a re-run skipped such a URL as known for good, while `curate status` kept
    calling the original missing and dedupe skipped the image. A URL that now serves other bytes (a dead host's
    placeholder) restores nothing and is said."""
    missing = lost(ws, source_id)
    session = _guarded(requests.Session(), options, base_url) if missing else None
    for sha, urls in missing.items():
        reasons = []
        for url in urls:
            try:
                got = fetch(session, url, options.timeout, options.max_bytes)
            except (FetchError, Refused) as exc:
                reasons.append(str(exc))
                continue
            if sha256_bytes(got.body) != sha:
                reasons.append("it serves other bytes now")
                continue
            ws.store.put(got.body, sha)
            report.restored += 1
            break
        else:
            report.not_restored.append((urls[0][:TEXT_LIMIT], "; ".join(dict.fromkeys(reasons))))


def _guarded(session: requests.Session, options: ScrapeOptions, base_url: str | None) -> requests.Session:
    """`session` guarded for a scrape (a crawl's, a restore's): five redirects at most, and only the engine's own
    host may be private."""
    session.max_redirects = 5
    host = urlsplit(base_url).hostname if base_url else None
    guard(session, HostPolicy(frozenset({host.lower()}) if host else frozenset(), options.allow_private_hosts))
    return session


def _crawler(engine: Engine, plan: QueryPlan, job: CrawlJob, on_page) -> ScrapeCrawler:
    """icrawler's crawler for one query, its session guarded: only the engine's own host may be private."""
    options = plan.options
    crawler = ScrapeCrawler(
        engine.feeder,
        engine.parser,
        StoreDownloader,
        feeder_threads=1,
        parser_threads=1,
        downloader_threads=options.threads,
        storage=NoFiles(),
        extra_parser_args={"on_page": on_page},
        extra_downloader_args={"job": job},
    )
    crawler.feeder.logger = logging.getLogger("curate.scrape.feeder")
    _guarded(crawler.session, options, plan.base_url)
    job.signal = crawler.signal
    return crawler


def _count_pages(engine: Engine, qr: QueryReport, pages: list[tuple[str, int, str | None]]) -> None:
    for _url, n, reason in pages:
        if reason is None:
            qr.pages += 1
            qr.results += n
        else:
            # a reason may quote the server (Flickr's error message): its escapes, and the API key it echoes,
            # never reach the terminal, the log or the catalogue
            reason = printable(redact_text(reason))[:TEXT_LIMIT]
            qr.page_errors.append(reason)
            log.warning("scrape engine=%s query=%r: %s", engine.name, qr.query, reason)
    if engine.reads_result_pages and qr.pages and not qr.results and not qr.page_errors:
        qr.page_errors.append(NO_RESULTS)
