"""Atomic file writes: a killed process leaves the old file or the new one, never half of one.

One way to do it for every writer in the toolkit: `write_atomic` for bytes or text in hand, `atomic_path`
for writers that need a path of their own (tar and zip archives, `torch.save`, a symlink), `atomic_dir` for a
whole folder. Each writes a unique temporary `*.part` (two concurrent writers never share one), optionally
flushes it to disk and sets its mode, then renames it onto the destination.

A kill leaves the `*.part` behind. Its writer holds an flock on it until the rename, and the kernel drops
that lock when the writer dies, so `remove_stale_parts` tells a dead writer's leftover from a live writer's
file by the lock alone, whatever its age and whether or not its writer holds the workspace lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PART = ".part"
MARK = ".curate-"  # in every part's name: `<name>.curate-<tempfile's 8 random characters>.part` (`OURS`)
OURS = re.compile(r".*" + re.escape(MARK) + r"[a-z0-9_]{8}" + re.escape(PART), re.DOTALL)
LINK_AGE = 600  # seconds: a `*.part` symlink cannot be locked; one older than this has no live writer


@contextlib.contextmanager
def atomic_path(
    dest: Path | str, *, tmp_dir: Path | str | None = None, mode: int | None = None, fsync: bool = False
) -> Iterator[Path]:
    """Yield a fresh temporary path; when the block ends without an exception it is renamed onto `dest`.

    The temporary file lives in `tmp_dir` (default, or when `_parts_folder` says it cannot: `dest`'s folder) and
    already exists, owner-only (0600), so a writer that opens it for writing keeps that mode; one that
    needs the name free (a symlink) unlinks it first. `mode` is set before the rename (e.g. 0o400 for a
    read-only original); `fsync` flushes the file to disk first (the image store's originals). On an
    exception the temporary file is removed and `dest` is untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    folder = _parts_folder(Path(tmp_dir) if tmp_dir is not None else dest.parent, dest.parent)
    try:
        fd, tmp = _locked_part(lambda: tempfile.mkstemp(dir=folder, prefix=dest.name + MARK, suffix=PART))
    except OSError as exc:  # named as the file being written, not its temporary name (`/proc/x.onnx.….part`)
        raise OSError(exc.errno, exc.strerror, str(dest)) from exc
    try:
        yield tmp
        if fsync and not tmp.is_symlink():
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        if mode is not None and not tmp.is_symlink():
            os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)  # releases the lock: the file is in place (or gone)


def _parts_folder(folder: Path, beside: Path) -> Path:
    """Where a `*.part` for a file in `beside` is made: `folder`, unless a rename from it cannot reach `beside`
    (another file system: "Invalid cross-device link" for a report written to another disk) or this user cannot
    write it (a workspace mounted read-only, its page written elsewhere with --html); then `beside` itself."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.stat(folder).st_dev == os.stat(beside).st_dev and os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    return beside


@contextlib.contextmanager
def atomic_dir(dest: Path | str, *, tmp_dir: Path | str | None = None) -> Iterator[Path]:
    """Yield a fresh, empty temporary folder; when the block ends without an exception it is renamed onto
    `dest`, which must not exist yet (or be an empty folder). A kill leaves `dest` absent, never half full.

    The folder lives in `tmp_dir` (default: `dest`'s folder; same filesystem), owner-only (0700), locked
    like `atomic_path`'s file; on an exception it is removed."""
    dest = Path(dest)
    folder = Path(tmp_dir) if tmp_dir is not None else dest.parent
    dest.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)

    def make() -> tuple[int, str]:
        name = tempfile.mkdtemp(dir=folder, prefix=dest.name + MARK, suffix=PART)
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), name

    fd, tmp = _locked_part(make)
    try:
        yield tmp
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(fd)


def _locked_part(make) -> tuple[int, Path]:
    """`make()`'s new `*.part` (an open fd and its name), locked for as long as the fd stays open. A sweep
    (`remove_stale_parts`) may take a part between its creation and the lock: then it is gone, and a new one
    is made."""
    while True:
        fd, name = make()
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            return fd, Path(name)
        os.close(fd)


def remove_stale_parts(folder: Path | str) -> int:
    """Remove the `*.part` files and folders under `folder` that no live writer holds; return how many.

    Safe beside live writers, with or without the workspace lock (`curate status`'s readers, report pages,
    `curate pipeline --demo` write into tmp/ without it): a part whose flock is held is left alone. A
    `*.part` symlink (a link written through `atomic_path`) is removed once older than `LINK_AGE`.
    Other folders (an export's resumable build) are searched, not removed. In a `folder` that is a symbolic link
    (a workspace's tmp/ linked to a scratch folder, as an export on another disk is told to) only parts named
    as `atomic_path` names them (`OURS`): every other program's `*.part` there went, a browser's download or
    another tool's backup. In a folder of its own, any `*.part` (those of versions before `MARK` too)."""
    removed = 0
    ours = OURS.fullmatch if os.path.islink(folder) else (lambda name: name.endswith(PART))
    for top, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            if ours(name) and _remove_if_dead(Path(top) / name):
                removed += 1
        dirs[:] = [d for d in dirs if not d.endswith(PART)]
    return removed


def remove_stale_parts_of(dest: Path | str) -> int:
    """The parts a killed writer of `dest` left beside it (`<name>.curate-<8 random characters>.part`, as
    `atomic_path` names them, or `<name>.<8 …>.part` before `MARK`) that no live writer holds; how many went. For a
    file in a folder that is not the toolkit's to search (`train export-model --out ~/triage.onnx`): another
    program's `*.part` there is never touched."""
    dest = Path(dest)
    name = glob.escape(dest.name)
    found = {*dest.parent.glob(name + MARK + "?" * 8 + PART), *dest.parent.glob(name + "." + "?" * 8 + PART)}
    return sum(_remove_if_dead(p) for p in found)


def _remove_if_dead(path: Path) -> bool:
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            if time.time() - st.st_mtime < LINK_AGE:
                return False
            os.unlink(path)
            return True
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            return False
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: a live writer's part
        if os.lstat(path).st_ino != os.fstat(fd).st_ino:  # renamed into place meanwhile
            return False
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def write_atomic(
    dest: Path | str,
    data: bytes | str,
    tmp_dir: Path | str | None = None,
    *,
    mode: int | None = None,
    fsync: bool = False,
) -> Path:
    """Write `data` (text as UTF-8) to `dest` through `atomic_path`; return `dest`."""
    dest = Path(dest)
    with atomic_path(dest, tmp_dir=tmp_dir, mode=mode, fsync=fsync) as tmp, open(tmp, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    return dest
