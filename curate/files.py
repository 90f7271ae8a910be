"""Atomic file writes: a killed process leaves the old file or the new one, never half of one.

One way to do it for every writer in the toolkit: `write_atomic` for bytes or text in hand, `atomic_path`
for writers that need a path of their own (tar and zip archives, `torch.save`, a symlink). Both write a
unique temporary file (two concurrent writers never share one), optionally flush it to disk and set its
mode, then rename it onto the destination.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(
    dest: Path | str, *, tmp_dir: Path | str | None = None, mode: int | None = None, fsync: bool = False
) -> Iterator[Path]:
    """Yield a fresh temporary path; when the block ends without an exception it is renamed onto `dest`.

    The temporary file lives in `tmp_dir` (default: `dest`'s folder; it must be on the same filesystem) and
    already exists, owner-only (0600), so a writer that opens it for writing keeps that mode; one that
    needs the name free (a symlink) unlinks it first. `mode` is set before the rename (e.g. 0o400 for a
    read-only original); `fsync` flushes the file to disk first (the image store's originals). On an
    exception the temporary file is removed and `dest` is untouched.
    """
    dest = Path(dest)
    folder = Path(tmp_dir) if tmp_dir is not None else dest.parent
    dest.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=dest.name + ".", suffix=".part")
    os.close(fd)
    tmp = Path(name)
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
