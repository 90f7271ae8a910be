"""Reading a file someone named, without surprises: regular files only.

A named pipe opened for reading blocks until a writer comes (forever, for a hostile one), and a device
reads without end; both are told by their stat, before and after opening (non-blocking), and refused with
what they are in words. `curate ingest` (`curate.intake.walk`) and `train predict` read through this.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegular(OSError):
    """The path is no regular file; `kind` says what it is ("a named pipe")."""

    def __init__(self, path: Path | str, kind: str):
        super().__init__(f"{Path(path).name} is {kind}, not a file")
        self.kind = kind


def special_kind(mode: int) -> str | None:
    """What a file of this `st_mode` is, in words, when it is not a regular file; None for a regular one."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "a special file")


@contextlib.contextmanager
def open_regular(path: Path | str) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """The open file and its stat; `NotRegular` for anything else (checked before opening, and on the open
    file in case it was swapped in between), other OSErrors as they come."""
    kind = special_kind(os.stat(path).st_mode)
    if kind is not None:
        raise NotRegular(path, kind)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if (kind := special_kind(st.st_mode)) is not None:
            raise NotRegular(path, kind)
        yield fh, st
