"""Bing: the stock parser keeps only `.jpg` URLs and drops the result page and title, and the stock feeder
does not URL-encode the query. We read the whole `m` JSON of every `a.iusc` (murl, purl, t) and encode it."""

from __future__ import annotations

import json
from urllib.parse import quote_plus

from bs4 import BeautifulSoup
from icrawler.builtin.bing import BingFeeder, BingParser

from curate.intake.scrape.engines.base import Engine, QueryPlan, SafeParser, offset, plain_text, put
from curate.intake.scrape.options import EngineName, Licence


class CurateBingFeeder(BingFeeder):
    """icrawler's filters (licence codes included), with the query URL-encoded."""

    def feed(self, keyword, base_url, filters=None, page_size=35, max_results=1000):
        filter_str = self.get_filter().apply(filters)
        for first in range(0, max_results, page_size):
            url = f"{base_url}/images/async?q={quote_plus(keyword)}&first={first}&count={page_size}"
            if filter_str:
                url += "&qft=" + filter_str  # as icrawler sends it: "+filterui:license-L1"
            if not put(self, url):
                break


class CurateBingParser(SafeParser, BingParser):
    """Every image URL (any extension) with its page URL and title, from `a.iusc[m]`."""

    def parse(self, response, **kwargs):
        soup = BeautifulSoup(response.content.decode("utf-8", "ignore"), "lxml")
        first = offset(response, "first")
        for i, a in enumerate(soup.find_all("a", class_="iusc")):
            try:
                m = json.loads(a.get("m") or "")
            except ValueError:
                continue
            if not isinstance(m, dict) or not isinstance(m.get("murl"), str):
                continue
            yield dict(file_url=m["murl"], page_url=m.get("purl"), title=plain_text(m.get("t")), rank=first + i + 1)


class Bing(Engine):
    name = EngineName.BING
    host = "https://www.bing.com"
    feeder = CurateBingFeeder
    parser = CurateBingParser
    # icrawler's BingFeeder licence codes, by the names it uses.
    licences = {
        Licence.PUBLIC_DOMAIN: "publicdomain",
        Licence.CC: "creativecommons",
        Licence.CC_COMMERCIAL: "commercial",
        Licence.CC_MODIFY: "noncommercial,modify",
        Licence.CC_COMMERCIAL_MODIFY: "commercial,modify",
    }

    def feeder_kwargs(self, plan: QueryPlan) -> dict:
        filters = {"license": plan.licence_filter} if plan.licence_filter else None
        return super().feeder_kwargs(plan) | {"filters": filters}
