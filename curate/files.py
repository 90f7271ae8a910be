"""Atomic file writes: a killed process leaves the old file or the new one, never half of one."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(dest: Path | str, data: bytes | str, tmp_dir: Path | str | None = None) -> Path:
    """Write `data` to a unique temporary file (in `tmp_dir`, default `dest`'s folder; it must be on the
    same filesystem) and rename it onto `dest`. Two concurrent writers never share a temporary file."""
    dest = Path(dest)
    folder = Path(tmp_dir) if tmp_dir is not None else dest.parent
    dest.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return dest
