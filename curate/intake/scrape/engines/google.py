"""Google: refused. icrawler 0.6.10's parser finds nothing on today's pages (they are built by JavaScript),
so scraping it would silently return nothing."""

from __future__ import annotations

from curate.intake.scrape.engines.base import Engine
from curate.intake.scrape.options import EngineName

REFUSAL = (
    "--engine google is not supported: today's Google result pages are built by JavaScript and "
    "icrawler 0.6.10's parser finds no images on them; use --engine bing, baidu, flickr or urls"
)


class Google(Engine):
    name = EngineName.GOOGLE
    host = "https://www.google.com"
    feeder = None
    parser = None
    refusal = REFUSAL
