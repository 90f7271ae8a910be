"""Secrets out of everything the toolkit prints or stores: URLs' user:password@, Authorization headers
echoed back by a server, and token=/password=/api_key= values in text, URLs and JSON."""

from __future__ import annotations

import re

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/\s:@]*):(?P<pw>[^@/\s]*)@")
_AUTH_HEADER = re.compile(
    r"(?P<name>(?:proxy-)?authorization|x-api-key|cookie)(?P<sep>[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<value>(?:(?:bearer|token|basic|digest)\s+)?[^\s\"',}\]]+)",
    re.I,
)
_KEY_VALUE = re.compile(
    r"(?P<name>[A-Za-z_-]*(?:token|password|passwd|secret|api_?key|apikey|credential)[A-Za-z_-]*)"
    r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\s\"'&,;}\]]+)",
    re.I,
)


def redact_text(text: str) -> str:
    """`text` with every secret it visibly carries replaced by ***."""
    if not isinstance(text, str) or not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)
    return _KEY_VALUE.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)


def redact_value(value):
    """Strings redacted, lists and dicts walked; anything else as it is."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value
