"""Baidu: the stock parser runs its URL "decryption" on every URL (garbling plain ones) and drops the page
and title; ours decodes only URLs that are obfuscated and keeps both."""

from __future__ import annotations

import json
from urllib.parse import quote_plus

from icrawler.builtin.baidu import BaiduFeeder, BaiduParser

from curate.intake.scrape.engines.base import Engine, PageError, SafeParser, offset, plain_text, put
from curate.intake.scrape.options import EngineName


class CurateBaiduFeeder(BaiduFeeder):
    def feed(self, keyword, base_url, filters=None, page_size=30, max_results=1000):
        filter_str = self.get_filter().apply(filters, sep="&")
        for pn in range(0, max_results, page_size):
            url = f"{base_url}/search/acjson?tn=resultjson_com&ipn=rj&word={quote_plus(keyword)}&pn={pn}&rn={page_size}"
            if filter_str:
                url += "&" + filter_str
            if not put(self, url):
                break


class CurateBaiduParser(SafeParser, BaiduParser):
    """Decode only URLs that are actually obfuscated (they start with 'ippr'); keep page and title."""

    def _url(self, value) -> str | None:
        if not isinstance(value, str) or not value:
            return None
        return self._decode_url(value) if value.startswith("ippr") else value

    def parse(self, response, **kwargs):
        text = response.content.decode("utf-8", "ignore").replace("\\'", "'")
        try:
            content = json.loads(text, strict=False)
        except ValueError as exc:
            raise PageError("baidu returned a page that is not JSON") from exc
        if not isinstance(content, dict) or not isinstance(content.get("data"), list):
            raise PageError("baidu JSON has no 'data' list")
        pn = offset(response, "pn")
        for i, item in enumerate(content["data"]):
            if not isinstance(item, dict) or not item:
                continue  # Baidu ends every page with an empty object
            replace = item.get("replaceUrl") or [{}]
            replace = replace[0] if isinstance(replace, list) and replace and isinstance(replace[0], dict) else {}
            url = self._url(item.get("objURL")) or self._url(replace.get("ObjURL")) or self._url(item.get("hoverURL"))
            if not url:
                continue
            page = self._url(item.get("fromURL")) or self._url(replace.get("FromURL"))
            title = plain_text(item.get("fromPageTitleEnc")) or plain_text(item.get("fromPageTitle"))
            yield dict(file_url=url, page_url=page, title=title, rank=pn + i + 1)


class Baidu(Engine):
    name = EngineName.BAIDU
    host = "https://image.baidu.com"
    feeder = CurateBaiduFeeder
    parser = CurateBaiduParser
