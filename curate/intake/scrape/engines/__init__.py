"""The engines `curate scrape` can use, one module each, built on icrawler's own feeders and parsers."""

from __future__ import annotations

from curate.errors import ConfigError
from curate.intake.scrape.engines.baidu import Baidu
from curate.intake.scrape.engines.base import Engine
from curate.intake.scrape.engines.bing import Bing
from curate.intake.scrape.engines.flickr import Flickr
from curate.intake.scrape.engines.google import Google
from curate.intake.scrape.engines.urls import UrlList
from curate.intake.scrape.options import EngineName

ENGINES: dict[EngineName, Engine] = {e.name: e for e in (Bing(), Baidu(), Flickr(), Google(), UrlList())}


def engine_for(name: EngineName | str) -> Engine:
    """The engine called `name`; a ConfigError naming the choices for an unknown one, or why it is refused."""
    engine = ENGINES[EngineName.parse(name)]
    if engine.refusal:
        raise ConfigError(engine.refusal)
    return engine
