"""File modes: everything the toolkit writes in a workspace is the owner's alone.

Genital lesion photos and the clinic paths in the catalogue must not be readable by other local
users. The CLI starts with umask 0o077 (`PRIVATE_UMASK`), so new files are 0600 and new folders 0700;
`tighten` brings files and folders that already exist into line (`curate init` runs it, and every writing command
when the workspace itself is open: `open_roots`), and `exposure`
counts what is still open to the group or others by top-level entry (`curate status` warns, naming
no deeper path).

A top-level entry of a root folder that is this user's symlink to a folder elsewhere, one of the workspace's own
(`LINKABLE`: objects/ moved to a bigger disk and linked back: `linked_folders`), is checked and closed as the folder
it stands for; no deeper link is followed, nor any other top-level link: a tmp/ or incoming/ linked to a shared
folder (`SHARED_LINKS`), a folder of the steward's own that is not the workspace's.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

PRIVATE_UMASK = 0o077
_OPEN_BITS = stat.S_IRWXG | stat.S_IRWXO
# top-level links never followed: a workspace's tmp/ linked to a scratch folder others (other workspaces' builds,
# other programs) share; only curate's own parts there are its business (`curate.files.remove_stale_parts`); an
# incoming/ linked to the clinic's drop folder, which other staff write into (closing it would lock them out)
SHARED_LINKS = frozenset({"tmp", "incoming"})
# the top-level folders a link may stand for: the workspace's own (`Workspace.OWN`, tmp/ aside), which a steward
# moves to a bigger disk; any other link (a published-datasets folder, `etc -> /etc`) is none of curate's business
LINKABLE = frozenset({"objects", "exports", "reports", "studio", "cache", "runs"})


def make_private_by_default() -> None:
    """New files 0600, new folders 0700, for this process and the servers it starts."""
    os.umask(PRIVATE_UMASK)


def linked_folders(root: Path) -> dict[str, Path]:
    """The top-level entries of the folder `root` that are this user's symlinks to a folder outside it, by name,
    with the folder each leads to (resolved): what a steward moved to another disk and linked back. Left out:
    `SHARED_LINKS`, a dangling link or a loop, one to `root` itself, into it or to a folder around it (the walk
    would take the workspace again, or the whole disk), and one into a folder another entry leads to."""
    try:
        if not stat.S_ISDIR(os.lstat(root).st_mode):
            return {}
        entries = sorted(os.scandir(root), key=lambda e: e.name)
        home = Path(os.path.realpath(root))
    except OSError:
        return {}
    uid = os.geteuid()
    found: dict[str, Path] = {}
    for entry in entries:
        if entry.name in SHARED_LINKS or entry.name not in LINKABLE:
            continue
        try:
            if not entry.is_symlink() or entry.stat(follow_symlinks=False).st_uid != uid or not entry.is_dir():
                continue
            target = Path(os.path.realpath(entry.path, strict=True))
        except (OSError, RuntimeError):  # gone since, dangling, or a loop
            continue
        if target == home or home in target.parents or target in home.parents:
            continue
        found[entry.name] = target
    return {
        name: target
        for name, target in found.items()
        if not any(other in target.parents or (other == target and n < name) for n, other in found.items())
    }


def _walk(roots: Iterable[Path]) -> Iterator[tuple[Path, os.stat_result]]:
    """Every path under `roots` (the roots included), never following a symlink but a root folder's own
    `linked_folders`: those are walked as the folders they stand for (their paths through the link, the
    folder linked to stat-ed as the link's own entry)."""
    for root in roots:
        root = Path(root)
        try:
            yield root, os.lstat(root)
        except OSError:
            continue
        if not root.is_dir() or root.is_symlink():
            continue
        yield from _below(root)
        for name in linked_folders(root):
            link = root / name
            try:
                yield link, os.stat(link)
            except OSError:
                continue
            yield from _below(link)


def _below(folder: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every path inside `folder` (not itself), never following a symlink below it."""
    for dirpath, dirnames, filenames in os.walk(folder):
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
    """Those of `roots` (a workspace, a catalogue kept outside it) and of their `linked_folders` (the link's path)
    the group or other users may read or enter: a folder closed to them closes everything inside it, so only
    their own modes are read (no walk). Before, objects/ linked to another disk and opened there (`chmod -R`, a
    permissive umask) was never closed, the workspace folder itself being private."""
    found = []
    for root in roots:
        try:
            st = os.lstat(root)
        except OSError:
            continue
        if not stat.S_ISLNK(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & _OPEN_BITS:
            found.append(Path(root))
        for name in linked_folders(Path(root)):
            try:
                st = os.stat(Path(root) / name)
            except OSError:
                continue
            if st.st_uid == os.geteuid() and st.st_mode & _OPEN_BITS:
                found.append(Path(root) / name)
    return found


def exposure(roots: Iterable[Path], base: Path | None = None, deeper: Iterable[str] = ()) -> dict[str, dict[str, int]]:
    """What under `roots` the group or other users may read, write or enter, counted by top-level entry:
    {"reports/": {"files": 3, "folders": 1}, "catalogue.db": {"files": 1, "folders": 0}}. Entries are relative
    to `base` and never deeper than the first folder inside one of `deeper` (`incoming/msh-clinic/`): the
    names below can be a patient's, and this ends up in terminal and CI logs. A path outside `base` (a
    SQLite catalogue kept elsewhere) is named whole, as given. An entry of one of `base`'s `linked_folders` says
    where it leads: "objects/ → /nas/objects"."""
    deeper = set(deeper)
    linked = linked_folders(base) if base else {}
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
        if parts and parts[0] in linked:
            entry = f"{entry} → {linked[parts[0]].joinpath(*entry.rstrip('/').split('/')[1:])}"
        counts = found.setdefault(entry, {"files": 0, "folders": 0})
        counts["folders" if is_dir else "files"] += 1
    return dict(sorted(found.items()))
