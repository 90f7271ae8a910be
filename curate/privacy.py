"""File modes: everything the toolkit writes in a workspace is the owner's alone.

Genital lesion photos and the clinic paths in the catalogue must not be readable by other local
users. The CLI starts with umask 0o077 (`PRIVATE_UMASK`), so new files are 0600 and new folders 0700;
`tighten` brings files and folders that already exist into line (`curate init` runs it, and every writing command
when the workspace itself is open: `open_roots`), and `exposure`
counts what is still open to the group or others by top-level entry (`curate status` warns, naming
no deeper path).
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


def open_roots(roots: Iterable[Path]) -> list[Path]:
    """Those of `roots` (a workspace, a catalogue kept outside it) the group or other users may read or enter:
    a folder closed to them closes everything inside it, so only the roots' own modes are read (no walk)."""
    found = []
    for root in roots:
        try:
            st = os.lstat(root)
        except OSError:
            continue
        if not stat.S_ISLNK(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & _OPEN_BITS:
            found.append(Path(root))
    return found


def exposure(roots: Iterable[Path], base: Path | None = None, deeper: Iterable[str] = ()) -> dict[str, dict[str, int]]:
    """What under `roots` the group or other users may read, write or enter, counted by top-level entry:
    {"reports/": {"files": 3, "folders": 1}, "catalogue.db": {"files": 1, "folders": 0}}. Entries are relative
    to `base` and never deeper than the first folder inside one of `deeper` (`incoming/msh-clinic/`): the
    names below can be a patient's, and this ends up in terminal and CI logs. A path outside `base` (a
    SQLite catalogue kept elsewhere) is named whole, as given."""
    deeper = set(deeper)
    found: dict[str, dict[str, int]] = {}
    for path, st in _walk(roots):
        if stat.S_ISLNK(st.st_mode) or not st.st_mode & _OPEN_BITS:
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        try:
            parts = path.relative_to(base).parts if base else None
        except ValueError:
            parts = None
        if parts is None:
            entry = str(path) + ("/" if is_dir else "")
        elif not parts:
            entry = "./"
        elif len(parts) == 1:
            entry = parts[0] + ("/" if is_dir else "")
        elif parts[0] in deeper and (len(parts) > 2 or is_dir):
            entry = f"{parts[0]}/{parts[1]}/"
        else:
            entry = f"{parts[0]}/"
        counts = found.setdefault(entry, {"files": 0, "folders": 0})
        counts["folders" if is_dir else "files"] += 1
    return dict(sorted(found.items()))
