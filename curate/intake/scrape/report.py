"""What a scrape did, per query and in all: rendered by the CLI as tables or `--json`, kept in the audit log."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


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
    restored: int = 0  # originals missing from the store, fetched again from their URL (`run._restore`)
    not_restored: list[tuple[str, str]] = field(default_factory=list)  # (a URL of the image, why not)

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
            "restored": self.restored,
            "not_restored": [{"url": u, "reason": r} for u, r in self.not_restored],
        }
