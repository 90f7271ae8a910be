"""Whole numbers read from text that came from outside: a CSV cell, a folder name, an HTTP header, an
environment variable, a lock file.

`str.isdigit()` is true of "²", which `int()` refuses with a ValueError (a traceback, or a message that
names no field), and `str.isdecimal()` of "٣", which `int()` reads as 3: a hand-edited fold or a header
from a hostile server must be refused, not taken. Only ASCII 0-9 make a number here."""

from __future__ import annotations

MOST_DIGITS = 4000  # int() refuses over 4,300 digits (Python's own limit) with a ValueError: a traceback


def whole_number(text: object) -> int | None:
    """`text` as a whole number when it is ASCII digits only ("0", "042"), else None ("", "-1", "²", "٣", "1.0",
    and 5,000 digits: a hand-edited fold or image id, or $COLUMNS, so long gave int()'s ValueError)."""
    if not isinstance(text, str) or not (text.isascii() and text.isdecimal()) or len(text) > MOST_DIGITS:
        return None
    return int(text)
