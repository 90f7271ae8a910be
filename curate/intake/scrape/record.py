"""The catalogue side of one query's crawl: what is already known, and each batch of outcomes written.

Only the main thread calls these; each batch is one short transaction, and every stored outcome's bytes
are already in the store when its row is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlmodel import select

from curate.intake.catalogue import record_arrival
from curate.intake.scrape.crawl import TOO_SMALL, Kind, Outcome
from curate.intake.scrape.engines.base import TEXT_LIMIT
from curate.intake.scrape.fetch import clip
from curate.intake.scrape.report import QueryReport
from db.models import Image, Provenance, Rejection

log = logging.getLogger("curate.scrape")


@dataclass(frozen=True)
class QueryTarget:
    """Where one query's outcomes go in the catalogue."""

    engine: str
    query: str
    source_id: int
    run_id: int | None
    licence_requested: str | None


@dataclass
class Known:
    urls: set[str]  # every URL of the source already recorded, accepted or rejected
    shas: set[str]  # the images this query already has


def known(ws, target: QueryTarget, min_side: int = 0) -> Known:
    """What the source already has. A URL rejected as too small is known only while it is still under this
    run's `min_side` (before: every such rejection was for good, so a lower --min-side never fetched it)."""
    with ws.session() as s:
        urls = set(s.exec(select(Provenance.locator).where(Provenance.source_id == target.source_id)).all())
        rejected = s.exec(select(Rejection.locator, Rejection.reason).where(Rejection.source_id == target.source_id))
        urls |= {locator for locator, reason in rejected if not _small_enough_now(reason, min_side)}
        shas = set(
            s.exec(
                select(Image.sha256)
                .join(Provenance, Provenance.image_id == Image.id)
                .where(Provenance.source_id == target.source_id, Provenance.query == target.query)
            ).all()
        )
    # each as this version records it (`clip`) too: a URL stored before a secret's name was masked (`?key=…`)
    # matches the masked URL the crawl now gives, so it is not fetched and recorded again
    return Known(urls | {clip(u) for u in urls}, shas)


def lost(ws, source_id: int) -> dict[str, list[str]]:
    """The source's images whose original is missing from the store or cut short (`ImageStore.intact`), each with
    the URLs it was fetched from: what `scrape` fetches again to restore."""
    urls: dict[str, list[str]] = {}
    with ws.session() as s:
        for sha, size, locator in s.exec(
            select(Image.sha256, Image.size_bytes, Provenance.locator)
            .join(Provenance, Provenance.image_id == Image.id)
            .where(Provenance.source_id == source_id)
            .order_by(Provenance.id)
        ).all():
            if sha in urls or not ws.store.intact(sha, size):
                urls.setdefault(sha, []).append(locator)
    return urls


def _small_enough_now(reason: str, min_side: int) -> bool:
    """Was this rejection for size only, and would the picture pass `min_side` now?"""
    m = TOO_SMALL.fullmatch(reason or "")
    return m is not None and min(int(m[1]), int(m[2])) >= min_side


def write_batch(ws, batch: list[Outcome], target: QueryTarget, qr: QueryReport) -> list[str]:
    """Record `batch` and count it into `qr`; returns the reasons of fatal outcomes (the store failed). The rows go
    in one transaction, run again when another writer took a key first (`Workspace.transact`): before, two scrapes
    into one PostgreSQL catalogue stopped one of them on "duplicate key … images_sha256_key". So `qr` is counted
    only once the rows are in."""

    def work(s) -> list[str]:
        outcomes = []
        for o in batch:
            if o.kind is Kind.STORED:
                outcomes.append(_arrival(s, o, o.task.get("file_url") or "", target))
            elif o.kind is Kind.REJECTED:
                locator = (o.task.get("file_url") or "")[:TEXT_LIMIT] or "(empty URL)"
                s.add(Rejection(run_id=target.run_id, source_id=target.source_id, locator=locator, reason=o.reason))
        return outcomes

    arrivals = iter(ws.transact(work))
    fatal = []
    for o in batch:
        url = o.task.get("file_url") or ""
        if o.kind is Kind.STORED:
            _count(o, next(arrivals), url, target, qr)
        elif o.kind is Kind.REJECTED:
            qr.rejected.append((url[:TEXT_LIMIT] or "(empty URL)", o.reason))
            log.debug("rejected %s: %s", url, o.reason)
        elif o.kind is Kind.FAILED:
            qr.failed.append((url[:TEXT_LIMIT], o.reason))
            log.debug("failed %s: %s", url, o.reason)
        elif o.kind is Kind.SKIPPED:
            qr.skipped += 1
        elif o.kind is Kind.OVER:
            qr.over_limit += 1
        elif o.kind is Kind.FATAL:
            fatal.append(o.reason)
    return fatal


def _arrival(s, o: Outcome, url: str, target: QueryTarget) -> str:
    """One stored image's rows; what `record_arrival` made of it ("added", "provenance" …)."""
    return record_arrival(
        s,
        sha256=o.sha,
        size_bytes=o.size,
        info=o.info,
        source_id=target.source_id,
        locator=url,
        run_id=target.run_id,
        licence=clip(o.task.get("licence")),
        engine=target.engine,
        query=target.query,
        licence_requested=target.licence_requested,
        rank=o.task.get("rank"),
        page_url=clip(o.task.get("page_url")),
        image_url=url,
        final_url=clip(o.final_url),
        title=clip(o.task.get("title")),
        content_type=o.content_type,
        retrieved_at=o.retrieved_at,
    )


def _count(o: Outcome, outcome: str, url: str, target: QueryTarget, qr: QueryReport) -> None:
    if o.counted:
        qr.new_for_query += 1
    if outcome == "added":
        qr.added += 1
    elif outcome == "provenance":
        qr.provenance += 1
    log.info("scrape engine=%s query=%r: %s %s", target.engine, target.query, outcome, o.sha[:12])
    log.debug("  from %s", url)
