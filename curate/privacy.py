"""File modes: everything the toolkit writes in a workspace is the owner's alone.

Genital lesion photos and the clinic paths in the catalogue must not be readable by other local
users. The CLI starts with umask 0o077 (`PRIVATE_UMASK`), so new files are 0600 and new folders 0700;
`tighten` brings files and folders that already exist into line (`curate init` runs it), and `exposed`
finds what is still open to the group or others (`curate status` warns).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

PRIVATE_UMASK = 0o077
_OPEN_BITS = stat.S_IRWXG | stat.S_IRWXO


def make_private_by_default() -> None:
    """New files 0600, new folders 0700, for this process and the servers it starts."""
    os.umask(PRIVATE_UMASK)


def _walk(roots: Iterable[Path]) -> Iterator[tuple[Path, os.stat_result]]:
    """Every path under `roots` (the roots included), never following a symlink."""
    for root in roots:
        root = Path(root)
        try:
            yield root, os.lstat(root)
        except OSError:
            continue
        if not root.is_dir() or root.is_symlink():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [*dirnames, *filenames]:
                p = Path(dirpath) / name
                try:
                    yield p, os.lstat(p)
                except OSError:
                    continue


def tighten(roots: Iterable[Path]) -> int:
    """Remove group and other permissions from every file and folder under `roots`; returns how many changed.
    Owner bits are kept (read-only originals stay 0400); paths owned by someone else are left alone."""
    changed = 0
    uid = os.geteuid()
    for path, st in _walk(roots):
        if stat.S_ISLNK(st.st_mode) or st.st_uid != uid or not st.st_mode & _OPEN_BITS:
            continue
        mode = stat.S_IMODE(st.st_mode) & ~_OPEN_BITS
        if stat.S_ISDIR(st.st_mode):
            mode |= stat.S_IRWXU
        try:
            os.chmod(path, mode)
            changed += 1
        except OSError:
            continue
    return changed


def exposed(roots: Iterable[Path], base: Path | None = None, limit: int = 20) -> list[str]:
    """Up to `limit` paths under `roots` that the group or other users may read, write or enter."""
    found: list[str] = []
    for path, st in _walk(roots):
        if stat.S_ISLNK(st.st_mode) or not st.st_mode & _OPEN_BITS:
            continue
        try:
            shown = path.relative_to(base).as_posix() if base else str(path)
        except ValueError:
            shown = str(path)
        found.append((shown or ".") + ("/" if stat.S_ISDIR(st.st_mode) else ""))
        if len(found) >= limit:
            break
    return found
