"""`--engine urls`: files of image URLs instead of a search, each line `image_url[<TAB>page_url[<TAB>title]]`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from threading import current_thread

from icrawler import Feeder
from icrawler.builtin.urllist import PseudoParser

from curate.errors import ConfigError
from curate.intake.scrape.engines.base import Engine, QueryPlan, printable, put, queued
from curate.intake.scrape.options import BASE_URL_ENV, EngineName, ScrapeOptions


def read_url_list(path: Path) -> list[dict]:
    """Tasks from a file of `image_url[<TAB>page_url[<TAB>title]]` lines; # comments and blanks skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()  # a BOM (Windows' editors) is not a URL
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read URL list ({exc})") from exc
    tasks = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")] + [None, None]
        tasks.append(dict(file_url=fields[0], page_url=fields[1] or None, title=fields[2] or None, rank=n))
    return tasks


class UrlListTaskFeeder(Feeder):
    """Feeds ready-made download tasks (the URL list needs no result page)."""

    def feed(self, tasks, **kwargs):
        for task in tasks:
            if not put(self, task):
                break


class PassThroughParser(PseudoParser):
    """icrawler's PseudoParser, forwarding whole task dicts and honouring the stop signal."""

    def __init__(self, thread_num, signal, session, on_page=None, **kwargs):
        super().__init__(thread_num, signal, session)
        self.logger = logging.getLogger("curate.scrape.parser")

    def worker_exec(self, queue_timeout=0.05, **kwargs):
        for task in queued(self, "feeder_exited", queue_timeout):
            put(self, task, feeding=False)
        self.logger.debug("thread %s exit", current_thread().name)


class UrlList(Engine):
    name = EngineName.URLS
    host = ""
    feeder = UrlListTaskFeeder
    parser = PassThroughParser
    reads_result_pages = False

    def check(self, options: ScrapeOptions) -> None:
        named: dict[str, Path] = {}
        for q in options.queries:
            if not Path(q).is_file():
                raise ConfigError(f"--engine urls takes files of image URLs; not a file: {q}")
            other = named.setdefault(self.query_label(q), Path(q).resolve())
            if other != Path(q).resolve():  # before: both were one query, one --max, one name in provenance
                raise ConfigError(
                    f"two URL lists are named {self.query_label(q)} ({other} and {q}): a list's file name is its "
                    "query in the catalogue; rename one"
                )

    def base_url(self, options: ScrapeOptions) -> str:
        """No engine host to call; a base URL given only names a host whose address is always allowed."""
        return (options.base_url or os.environ.get(BASE_URL_ENV) or "").rstrip("/")

    def query_label(self, raw: str) -> str:
        """The list's file name, as the catalogue holds it (before: an ESC or BEL in the name was stored raw)."""
        return printable(Path(raw).name)

    def feeder_kwargs(self, plan: QueryPlan) -> dict:
        return {"tasks": read_url_list(Path(plan.raw))}
