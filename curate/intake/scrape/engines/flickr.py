"""Flickr's REST API: the stock parser makes one extra API call per photo; we ask for the size URLs as
`extras` and fall back to `getSizes` only when they are missing. Needs an API key in $FLICKR_API_KEY."""

from __future__ import annotations

import json
import os
from urllib.parse import urlencode

from icrawler.builtin.flickr import FlickrFeeder, FlickrParser

from curate.errors import ConfigError
from curate.intake.fetch_guard import DEADLINE_FACTOR, deadline
from curate.intake.scrape.engines.base import Engine, PageError, QueryPlan, SafeParser, get_page, plain_text, put
from curate.intake.scrape.options import FLICKR_KEY_ENV, EngineName, Licence, ScrapeOptions

# Flickr licence ids (flickr.photos.licenses.getInfo).
FLICKR_LICENCE_NAMES = {
    "0": "All Rights Reserved",
    "1": "CC BY-NC-SA 2.0",
    "2": "CC BY-NC 2.0",
    "3": "CC BY-NC-ND 2.0",
    "4": "CC BY 2.0",
    "5": "CC BY-SA 2.0",
    "6": "CC BY-ND 2.0",
    "7": "No known copyright restrictions",
    "8": "United States Government Work",
    "9": "CC0 1.0",
    "10": "Public Domain Mark 1.0",
}
FLICKR_EXTRAS = "url_o,url_l,url_c,url_z,url_m,license,owner_name"
_SIZE_ORDER = ("url_o", "url_l", "url_c", "url_z", "url_m")
_SIZE_LABELS = ("original", "large 2048", "large 1600", "large", "medium 800", "medium 640", "medium")


class CurateFlickrFeeder(FlickrFeeder):
    def feed(self, keyword, base_url, apikey, licence=None, page_size=100, max_results=4000):
        params = {
            "method": "flickr.photos.search",
            "api_key": apikey,
            "text": keyword,
            "extras": FLICKR_EXTRAS,
            "per_page": page_size,
            "sort": "relevance",
            "content_type": 1,
            "media": "photos",
            "format": "json",
            "nojsoncallback": 1,
        }
        if licence:
            params["license"] = licence
        for page in range(1, max_results // page_size + 1):
            if not put(self, f"{base_url}/services/rest/?{urlencode(params)}&page={page}"):
                break


class CurateFlickrParser(SafeParser, FlickrParser):
    def parse(self, response, apikey=None, base_url=None, size_preference=None, **kwargs):
        try:
            content = json.loads(response.content.decode("utf-8", "ignore"))
        except ValueError as exc:
            raise PageError("flickr returned a page that is not JSON") from exc
        if content.get("stat") != "ok":
            raise PageError(f"flickr API error {content.get('code')}: {content.get('message', 'unknown')}")
        photos = content.get("photos") or {}
        page, per_page = int(photos.get("page", 1)), int(photos.get("perpage", 100))
        for i, photo in enumerate(photos.get("photo") or []):
            if not isinstance(photo, dict) or "id" not in photo:
                continue
            url = next((photo[k] for k in _SIZE_ORDER if photo.get(k)), None)
            if url is None:
                url = self._sizes(photo["id"], apikey, base_url)
            if not url:
                continue
            owner = photo.get("owner") or "-"
            yield dict(
                file_url=url,
                page_url=f"https://www.flickr.com/photos/{owner}/{photo['id']}",
                title=plain_text(photo.get("title")),
                rank=(page - 1) * per_page + i + 1,
                licence=FLICKR_LICENCE_NAMES.get(str(photo.get("license"))),
            )

    def _sizes(self, photo_id, apikey, base_url) -> str | None:
        """The stock fallback: one getSizes call, largest size first."""
        params = {
            "method": "flickr.photos.getSizes",
            "api_key": apikey,
            "photo_id": photo_id,
            "format": "json",
            "nojsoncallback": 1,
        }
        timeout = getattr(self, "req_timeout", 10)  # --timeout (was 10 s whatever it said)
        try:
            with deadline(DEADLINE_FACTOR * timeout):
                info = get_page(self.session, f"{base_url}/services/rest/?{urlencode(params)}", timeout).json()
            sizes = {str(s["label"]).lower(): s["source"] for s in info["sizes"]["size"]}
        except Exception:  # a photo whose sizes cannot be read is skipped, not fatal
            return None
        return next((sizes[label] for label in _SIZE_LABELS if label in sizes), None)


class Flickr(Engine):
    name = EngineName.FLICKR
    host = "https://api.flickr.com"
    feeder = CurateFlickrFeeder
    parser = CurateFlickrParser
    licences = {
        Licence.PUBLIC_DOMAIN: "8,9,10",
        Licence.CC: "1,2,3,4,5,6,9,10",
        Licence.CC_COMMERCIAL: "4,5,6,9,10",
        Licence.CC_MODIFY: "1,2,4,5,9,10",
        Licence.CC_COMMERCIAL_MODIFY: "4,5,9,10",
    }

    def check(self, options: ScrapeOptions) -> None:
        if not os.environ.get(FLICKR_KEY_ENV):
            raise ConfigError(f"--engine flickr needs an API key in ${FLICKR_KEY_ENV}")

    def feeder_kwargs(self, plan: QueryPlan) -> dict:
        return super().feeder_kwargs(plan) | {"apikey": os.environ[FLICKR_KEY_ENV], "licence": plan.licence_filter}

    def parser_kwargs(self, plan: QueryPlan) -> dict:
        return {"apikey": os.environ[FLICKR_KEY_ENV], "base_url": plan.base_url}
