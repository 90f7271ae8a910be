"""Local features kept on disk between runs, so that a steward's next `curate dedupe` takes SIFT only of what is new.

A run after an ingest verifies the new pictures against old ones, and took each old partner's features again:
on `bench/dedupe_next_run.py` (20 new files beside 1,152 pictures) 282 pictures' SIFT at 160 or 320 px, 243
of them old pictures' (15-50 ms each). The same picture's features are the same every time (SIFT, its settings
and the box it is cut to), so they are kept in `<workspace>/cache/dedupe-features` (diskcache: entries in its
SQLite file, least recently used let go beyond `LIMIT_MB`, safe across threads and a killed run) and read back,
in about 1 ms: that run took 7.0 s instead of 10.1 s, and one that verifies every pair again 18.0 s instead of
40.6 s. The key holds the original's SHA-256, the content box, the size and whether the contrast was evened,
and `VERSION`: the feature settings and OpenCV's version, with the codes' version beside it, so a change of any
of them reads nothing stale. A cache that cannot be opened is made anew once (it holds nothing that cannot be
taken again), else left aside, each with one line in the run's notes; a damaged entry is taken again.

The entries are derived from patients' photos (keypoints, descriptors, a 64 px grey picture), as the
catalogue's thumbnails are: the folder is the owner's alone (0700), as the whole workspace is. They are bytes in
NumPy's format, read back without pickle; an entry diskcache would unpickle is refused as damaged (`_raw_disk`).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from functools import cache
from pathlib import Path
from threading import Lock

import cv2
import numpy as np

from curate.dedupe import verify
from curate.numbers import whole_number

LIMIT_MB = 2048  # on disk, at most; a picture's features at one size take about 40 KB (up to 70)
MOST_MB = 10**9  # the largest limit taken (a petabyte)
LIMIT_ENV = "CURATE_DEDUPE_CACHE_MB"  # another limit; 0: no cache
FOLDER = Path("cache") / "dedupe-features"
VERSION = "|".join(
    str(x)
    for x in (
        "sift-1",
        verify.N_FEATURES,
        verify.CONTRAST,
        verify.STOP_MARGIN,
        verify.TONE_CLIP,
        verify.TONE_TILES,
        verify.PLACED_PX,
        cv2.__version__,
    )
)


def limit_mb() -> int:
    """The cache's size limit in MB: `$CURATE_DEDUPE_CACHE_MB`, else `LIMIT_MB`; ValueError naming the variable."""
    text = os.environ.get(LIMIT_ENV, "").strip()
    if not text:
        return LIMIT_MB
    if (mb := whole_number(text)) is None:
        raise ValueError(f"${LIMIT_ENV} is {text!r}, not a whole number of MB (0: no cache)")
    if mb > MOST_MB:  # diskcache keeps the limit in bytes in SQLite, whose integers stop at 2**63
        raise ValueError(f"${LIMIT_ENV} is {text!r}, more MB than a disk holds (at most {MOST_MB})")
    return mb


@cache
def _raw_disk():
    """diskcache's storage, refusing to unpickle: an entry is bytes we wrote, never an object to rebuild."""
    import diskcache
    from diskcache.core import MODE_PICKLE

    class RawDisk(diskcache.Disk):
        def fetch(self, mode, filename, value, read):
            if mode == MODE_PICKLE:
                raise ValueError("a pickled entry (this cache holds only bytes)")
            return super().fetch(mode, filename, value, read)

    return RawDisk


class StoredFeatures:
    """The features cache of one workspace (module docstring); `get` and `put` never raise: a fault leaves
    the cache aside (`fault` says why) and the run goes on taking features itself."""

    def __init__(self, root: Path, algo: str, limit: int | None = None):
        import diskcache

        self.algo = algo
        self.fault: str | None = None  # why the cache was left aside
        self.remade: str | None = None  # why the cache was found damaged and made anew
        self.read = self.dropped = 0  # dropped: damaged entries, taken again
        self._counting = Lock()  # the verification threads share one cache
        self._cache = None
        try:
            limit = limit_mb() if limit is None else limit
        except ValueError as exc:
            self.fault = f"{exc}: no verification-features cache this run"
            return
        if limit <= 0:
            return
        folder = Path(root) / FOLDER
        damaged = None
        for _ in range(2):
            try:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(folder, 0o700)
                self._cache = diskcache.Cache(  # entries in SQLite, no sync: a put 0.9 ms instead of 3-3.8 (a
                    # file each, synced), against 15-50 ms to take the features; a power cut's damage is made anew
                    str(folder),
                    size_limit=limit * 2**20,
                    eviction_policy="least-recently-used",
                    statistics=False,
                    sqlite_synchronous=0,
                    disk_min_file_size=2**20,
                    disk=_raw_disk(),
                )
                self.remade = damaged
                return
            except Exception as exc:  # damaged: made anew once (it is only derived data), else left aside
                if damaged is not None:
                    self._fail(exc)
                    return
                damaged = _first_line(exc)
                shutil.rmtree(folder, ignore_errors=True)

    def _fail(self, exc: BaseException) -> None:
        if self.fault is None:
            self.fault = f"the verification-features cache was left aside ({_first_line(exc)})"
        self.close()

    def notes(self) -> list[str]:
        """What a run's summary says of the cache: nothing when all went well."""
        out = [f"the verification-features cache was damaged and made anew ({self.remade})"] if self.remade else []
        if self.dropped:
            entries = "entry" if self.dropped == 1 else "entries"
            out.append(f"{self.dropped} damaged {entries} of the verification-features cache taken again")
        return out + ([self.fault] if self.fault else [])

    def key(self, sha: str, box: tuple[float, float, float, float], side: int, even: bool) -> str:
        return "|".join((VERSION, self.algo, sha, ",".join(f"{x:.6f}" for x in box), str(side), "even" * even))

    def get(self, key: str) -> verify.Features | None:
        if self._cache is None:
            return None
        try:
            data = self._cache.get(key)
        except ValueError:  # a pickled entry (`_raw_disk`): as damaged
            data = b""
        except Exception as exc:  # the index cannot be read any more: no cache for the rest of the run
            self._fail(exc)
            return None
        if data is None:
            return None
        try:
            f = _loads(data)
        except Exception:  # one damaged entry: taken again (and stored again)
            self._count("dropped")
            return None
        self._count("read")
        return f

    def _count(self, what: str) -> None:
        with self._counting:
            setattr(self, what, getattr(self, what) + 1)

    def put(self, key: str, f: verify.Features) -> None:
        if self._cache is None:
            return
        try:
            self._cache.set(key, _dumps(f))
        except Exception as exc:
            self._fail(exc)

    def close(self) -> None:
        cache, self._cache = self._cache, None
        if cache is not None:
            with contextlib.suppress(Exception):  # closing a damaged cache: nothing more to do
                cache.close()


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"


def _dumps(f: verify.Features) -> bytes:
    """A picture's features as bytes (NumPy's own format, read back without pickle: `_loads`, `_raw_disk`)."""
    buf = io.BytesIO()
    arrays = {"points": f.points, "size": np.array([f.width, f.height], np.int64)}
    if f.desc is not None:
        arrays["desc"] = f.desc
    if f.small is not None:
        arrays["small"] = f.small
    np.savez(buf, **arrays)
    return buf.getvalue()


def _loads(data: bytes) -> verify.Features:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        width, height = (int(x) for x in z["size"])
        desc, small = z.get("desc"), z.get("small")
        points = z["points"]
    if points.ndim != 2 or points.shape[1] != 2 or (desc is not None and desc.shape != (len(points), 128)):
        raise ValueError("an entry of the wrong shape")
    return verify.Features(
        points.astype(np.float32), None if desc is None else desc.astype(np.uint8), width, height, small=small
    )
