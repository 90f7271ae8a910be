"""Secrets out of everything the toolkit prints or stores: URLs' user:password@, Authorization headers
echoed back by a server, and token=/password=/api_key=/signature= values in text, URLs and JSON."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

MASK = "***"
# the password runs to the last "@" before the host: one with an unencoded "@" (u:Pw6:Sec@ret@host) showed its tail
# (each pattern starts a name only where a run of its characters starts, and takes the run whole (possessive `*+`): a
# scrape's 12,000-letter title took 14 s and "token" repeated 1,000 times 240 s, the engine trying every start
# and every split of the run; the leftmost match began at the run's start anyway, so nothing else changes)
_USERINFO = re.compile(r"(?<![A-Za-z])(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*+://)(?P<user>[^/\s:@]*+):(?P<pw>[^/\s]*)@")
_AUTH_HEADER = re.compile(
    r"(?P<name>(?:proxy-)?authorization|x-api-key|cookie)(?P<sep>[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<value>(?:(?:bearer|token|basic|digest)\s+)?[^\s\"',}\]]+)",
    re.I,
)
# a vendor's key by its own name (S3's AWSAccessKeyId, Azure's Ocp-Apim-Subscription-Key) anywhere; a bare `key`
# (Google's API key), `auth`, `session` only as a URL's query parameter (`redact_text`) or as a key's whole name
# (`secret_name`: a query's key, a command's argument): "monkey", "author", "keyword" stay whole
_SECRET_WORDS = (
    r"token|password|passwd|secret|api[_-]?key|apikey|credential|access[_-]?key|subscription[_-]?key|"
    r"private[_-]?key|session[_-]?id|jwt"
)
_BARE = r"key|auth|session"
# a pre-signed URL's signature grants access as a token does: a vendor's (S3's X-Amz-Signature, Google's
# X-Goog-Signature) anywhere; a bare `Signature` (CloudFront) or `sig` (Azure) only as a URL's query parameter, so
# that "invalid signature: …" or "signatures: 3 checked" in a message stay whole
_SIGNED = rf"[A-Za-z_-]*[A-Za-z]-signature(?![A-Za-z_-])|(?<=[?&;])(?:signature|sig|{_BARE})(?==)"
_KEY_VALUE = re.compile(
    rf"(?<![A-Za-z_-])(?P<name>(?=[A-Za-z_-]*?(?:{_SECRET_WORDS}))[A-Za-z_-]*+|{_SIGNED})"
    # a value ends at a quote, a separator or a space; a colon right before a space or the end is the text's
    # ("…?password=***: connection failed"), not the secret's
    r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\s\"'&,;}\]]+?)(?=:?(?:\s|$)|[\"'&,;}\]])",
    re.I,
)
_SECRET_NAME = re.compile(rf"{_SECRET_WORDS}|-signature$|^(?:signature|sig|{_BARE})$", re.I)  # a query key, a field


def secret_name(name: str) -> bool:
    """Whether a key (a URL's query parameter, a JSON field) names a secret, as `redact_text` judges it:
    `password`, `sslpassword`, `api_key`, `token` …"""
    return bool(_SECRET_NAME.search(name))


def url_secret(url: str) -> str | None:
    """What secret a URL carries on its face, said for an error ("a password", "a token= value"), or None."""
    try:
        parts = urlsplit(url)
        if parts.password:
            return "a password"
        key = next((k for k, _ in parse_qsl(parts.query, keep_blank_values=True) if secret_name(k)), None)
    except ValueError:  # an unparsable URL: judged by what the redaction would mask
        return "a secret" if redact_text(url) != url else None
    return f"a {key}= value" if key else None


def ambiguous_userinfo(url: str) -> bool:
    """Whether a URL's user:password holds a character it must percent-encode ("@", "/", "?", "#", a second ":"):
    such a URL parses another way than meant, and the driver's error then names part of the password as the host
    ("failed to resolve host '2024!@127.0.0.1'")."""
    rest = url.split("://", 1)[1] if "://" in url else ""
    at = rest.rfind("@")
    userinfo = rest[:at] if at >= 0 else ""
    return any(c in userinfo for c in "@/?#") or userinfo.count(":") > 1


def redact_text(text: str) -> str:
    """`text` with every secret it visibly carries replaced by ***."""
    if not isinstance(text, str) or not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)
    return _KEY_VALUE.sub(_masked, text)


# what begins an error's message after a path: "cannot read …", "No such file …", "Permission denied" (a
# passphrase after a key, "correct horse battery", is still a secret)
_MESSAGE = re.compile(
    r"(?:cannot|can't|could|no|not|is|was|permission|unable|failed|missing|does|has|invalid|unreadable|empty|"
    r"too|must|expected|already|denied|error|not)\b",
    re.I,
)


def _masked(m: re.Match) -> str:
    """A key's value masked, unless the "key" is a path's last part before ": " and what follows is a phrase of
    lowercase words (an error's "…/token: cannot read …"): that shape is a message, where "…/api_key=…" in a URL
    and "config/password: hunter2" are still secrets."""
    path_key = m.start() and m.string[m.start() - 1] in "/\\" and "=" not in m["sep"]
    if path_key and _MESSAGE.match(m.string, m.start("value")):
        return m.group(0)
    return f"{m['name']}{m['sep']}{MASK}"


def redact_value(value):
    """Strings redacted, lists and dicts walked; anything else as it is."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value
