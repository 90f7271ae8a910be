"""One image download, and the checks on what a web page may put in the catalogue.

The download runs through the session that `fetch_guard.guard` hardened (which hosts, how long); here the
answer is sorted into permanent failures (recorded as rejections, never retried) and transient ones
(reported only, so the next run retries them).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from curate.intake.fetch_guard import DEADLINE_FACTOR, Refused, deadline
from curate.intake.scrape.engines.base import TEXT_LIMIT, printable
from curate.numbers import whole_number
from curate.redact import redact_text

_CHUNK = 64 * 1024


class FetchError(Exception):
    """A download that gave no image; the message is the one-line reason."""


class Permanent(FetchError):
    """Will fail again (HTTP 404, too large, bad URL): recorded as a rejection, never retried."""


class Transient(FetchError):
    """May work next time (timeout, HTTP 5xx/408/429, cut connection): reported, retried next run."""


@dataclass(frozen=True)
class Fetched:
    body: bytes
    final_url: str  # after redirects
    content_type: str | None


def clip(value) -> str | None:
    """Text as the catalogue may hold it: no control characters, no visible secret, at most TEXT_LIMIT long. A result
    page's title can be megabytes: only twice the limit is read, and it is redacted before it is cut (cut first, a
    cut inside `user:password@` left the password's start)."""
    if not isinstance(value, str) or not value:
        return None
    return redact_text(printable(value[: 2 * TEXT_LIMIT]))[:TEXT_LIMIT]


def url_problem(url: str) -> str | None:
    """Why `url` is not worth fetching, or None."""
    if printable(url) != url:
        return "control characters or lone surrogates in URL"
    if len(url) > TEXT_LIMIT:
        return "URL too long"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "malformed URL"
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "not an http(s) URL"
    return None


def fetch(session: requests.Session, url: str, timeout: float, max_bytes: int) -> Fetched:
    """GET `url` within DEADLINE_FACTOR x `timeout` in all; a body cut off by the deadline is never kept.

    Raises Permanent, Transient, or fetch_guard.Refused (a host the policy does not allow).
    """
    limit = DEADLINE_FACTOR * timeout
    late = f"download not finished within {limit:g} s ({DEADLINE_FACTOR} x --timeout)"
    with deadline(limit) as clock:
        try:
            result = _get(session, url, timeout, max_bytes)
        except FetchError as exc:
            if clock.expired:
                raise Transient(late) from exc
            raise
    if clock.expired:
        raise Transient(late)
    return result


def _get(session: requests.Session, url: str, timeout: float, max_bytes: int) -> Fetched:
    try:
        with session.get(url, timeout=timeout, stream=True) as resp:
            _check_status(resp.status_code)
            declared = whole_number(resp.headers.get("Content-Length", ""))
            if declared is not None and declared > max_bytes:
                raise Permanent(f"file too large ({declared / 1e6:.0f} MB)")
            chunks, size = [], 0
            for chunk in resp.iter_content(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise Permanent(f"file too large (over {max_bytes / 1e6:.0f} MB)")
                chunks.append(chunk)
            ctype = clip((resp.headers.get("Content-Type") or "").strip()[:100])
            return Fetched(b"".join(chunks), resp.url, ctype)
    except (FetchError, Refused):
        raise
    except requests.TooManyRedirects as exc:
        raise Permanent("too many redirects") from exc
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.InvalidSchema,
        requests.exceptions.MissingSchema,
        UnicodeError,
    ) as exc:
        raise Permanent(f"invalid URL ({type(exc).__name__})") from exc
    except requests.exceptions.ChunkedEncodingError as exc:
        raise Transient("connection cut mid-download") from exc
    except requests.RequestException as exc:
        raise Transient(f"fetch failed ({type(exc).__name__})") from exc


def _check_status(status: int) -> None:
    if status == 200:
        return
    if status in (408, 429) or status >= 500:
        raise Transient(f"HTTP {status}")
    raise Permanent(f"HTTP {status}")
