"""Walking an ingested folder without surprises: which files are read, and how much of each.

FIFOs, devices and sockets are never opened for reading (a FIFO would block forever), a file's size is
checked before it is read (a sparse 3 GB file or /dev/zero would otherwise end in MemoryError), symlinks
leading out of the folder are not followed unless asked, and trash, system and hidden folders are not walked;
everything left out is named with why.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from curate.errors import ConfigError
from curate.intake.decode import IMAGE_EXTENSIONS, looks_like_image, not_an_image
from curate.regular import NotRegular, open_regular, special_kind


def locator_of(path: Path, root: Path) -> str:
    """The path relative to the ingested folder, as text the catalogue can hold
    (undecodable bytes in a file name become backslash escapes)."""
    rel = os.fsencode(path.relative_to(root).as_posix())
    return rel.decode("utf-8", "backslashreplace")


_NOT_FOLLOWED = "not followed; --follow-symlinks to follow it"
# where a system keeps deleted files or its own copies of photos, on the disks and shares clinics copy from:
# Windows' recycle bins, a NAS's (Synology's #recycle and @eaDir thumbnails, QNAP's @Recycle and snapshots)
SYSTEM_FOLDERS = {
    "$recycle.bin",
    "recycler",
    "recycled",
    "system volume information",
    "#recycle",
    "#snapshot",
    "@eadir",
    "@recycle",
    "@recently-snapshot",
    "lost+found",
}


def system_folder(name: str) -> str | None:
    """Why a folder inside an ingested one is not read, or None to read it: a trash or a system's folder (a
    photo the clinic deleted, consent withdrawn perhaps, must not enter the dataset; a thumbnail cache holds
    copies), or any hidden one (`.Trashes`, `.Trash-1000`, `.thumbnails`, `.git`). Before, every one was ingested
    with nothing said; resource-fork files (`._*`) alone were left out."""
    if name.casefold() in SYSTEM_FOLDERS:
        return "a trash or system folder (deleted files, a system's copies; not read)"
    if name.startswith("."):
        return "a hidden folder (a trash, a thumbnail cache, a tool's own; not read)"
    return None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def refuse_own(
    folder: Path, own: Collection[Path], advice: str, whose: Callable[[Path], str | None] = lambda folder: None
) -> None:
    """Refuse a folder in one of the workspace's own folders (`Workspace.own_folders`, resolved), or one that
    `whose` (`Workspace.whose`) says is another workspace or in one's toolkit folders: their photos are copies of
    stored ones, never a source (ingest's FOLDER, the pipeline's --incoming)."""
    resolved = folder.resolve()
    if inside := next((f for f in own if _inside(resolved, f)), None):
        raise ConfigError(
            f"{folder} is in the workspace's own {inside.name}/ folder, which holds copies of stored photos: {advice}"
        )
    if (said := whose(resolved)) is not None:
        raise ConfigError(f"{folder} is {said}: {advice}")


def iter_files(
    root: Path,
    unreadable: list[tuple[str, str]],
    skipped: list[tuple[str, str]] | None = None,
    follow_symlinks: bool = False,
    own: Collection[Path] = (),
    toolkit_folder: Callable[[Path], bool] = lambda folder: False,
) -> Iterator[Path]:
    """Regular files under `root` (resolved), sorted; everything else goes to `skipped` or `unreadable` with why.
    `own`: the workspace's own folders (resolved, `Workspace.own_folders`), never walked: their photos are
    copies of stored ones (ingested again, the store became a second source of every photo). Nor are another
    workspace's inside `root` (`toolkit_folder`, `Workspace.toolkit_folder`): a folder of studies holding one
    put that study's whole store in as photos of this source."""
    skipped = skipped if skipped is not None else []

    def loc(p: Path) -> str:
        try:
            return locator_of(p, root) or "."
        except ValueError:
            return "."

    def onerror(exc: OSError) -> None:
        unreadable.append((loc(Path(exc.filename) if exc.filename else root), f"unreadable folder ({exc.strerror})"))

    seen_dirs: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=follow_symlinks):
        here = Path(dirpath)
        try:
            st = os.stat(here)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen_dirs:  # a symlink loop, or a folder reached twice
            dirnames.clear()
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        if here.resolve() in own:
            skipped.append((loc(here) + "/", "the workspace's own folder (copies of stored photos; not read)"))
            dirnames.clear()
            continue
        keep = []
        for d in sorted(dirnames):
            p = here / d
            if why := system_folder(d):
                skipped.append((loc(p) + "/", why))
                continue
            if toolkit_folder(p) and p.resolve() not in own:  # the own folders: said below, as this workspace's
                skipped.append(
                    (loc(p) + "/", "another workspace's own folder (its stored photos and copies; not read)")
                )
                continue
            if p.is_symlink():
                target = p.resolve()
                if not follow_symlinks:
                    where = "inside" if _inside(target, root) else "outside"
                    skipped.append((loc(p) + "/", f"symlink to a folder {where} the ingested folder ({_NOT_FOLLOWED})"))
                    continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            p = here / name
            try:
                mode = os.lstat(p).st_mode
                if stat.S_ISLNK(mode):
                    target = p.resolve(strict=True)
                    if not follow_symlinks and not _inside(target, root):
                        skipped.append((loc(p), f"symlink to a file outside the ingested folder ({_NOT_FOLLOWED})"))
                        continue
                    mode = os.stat(p).st_mode
            except (OSError, RuntimeError) as exc:
                unreadable.append((loc(p), f"unreadable ({getattr(exc, 'strerror', None) or 'broken symlink'})"))
                continue
            if special := special_kind(mode):  # a named pipe would block the read forever: never opened
                skipped.append((loc(p), f"{special} (special file, not read)"))
            elif name.startswith("._"):
                skipped.append((loc(p), "macOS resource-fork file"))
            elif stat.S_ISREG(mode):
                yield p


def read_bounded(path: str, limit: int) -> bytes | tuple:
    """The file's bytes, or ('rejected'|'skipped', reason): only a regular file is read (`curate.regular`),
    never more than `limit` + 1 bytes of it (a sparse 3 GB file is refused by its size, not read)."""
    try:
        with open_regular(path) as (fh, st):
            if st.st_size > limit:
                head = fh.read(4096)
                if not looks_like_image(head) and Path(path).suffix.lower() not in IMAGE_EXTENSIONS:
                    return ("skipped", not_an_image(head))
                return ("rejected", f"file too large ({st.st_size / 1e6:.0f} MB > {limit / 1e6:.0f} MB)")
            data = fh.read(limit + 1)
    except NotRegular as exc:
        return ("skipped", f"{exc.kind} (special file, not read)")
    if len(data) > limit:
        return ("rejected", f"file too large (over {limit / 1e6:.0f} MB)")
    return data
