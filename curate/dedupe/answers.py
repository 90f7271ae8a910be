"""The local-feature proposal's answering descriptors, kept in the catalogue between runs.

`curate.dedupe.local` needs every picture's `local.TOP` strongest SIFT descriptors at
`verify.COARSE` px (about 20 ms of CPU a picture), also on a run that adds a few
pictures: the new ones ask everyone. Like the hash codes, they are kept in a table of
the catalogue (`dedupe_local`: one row per image, at most 16 KB of uint8), keyed by image
and by `version` (the code algorithm, whose content box they are taken in, SIFT's size
and settings, `local.TOP`, OpenCV's version); a row of another version is recomputed,
a damaged one too, each with a line in `report.recomputed`.

A table rather than a cache file under the workspace: a run adds rows for its new
pictures only (one file would be rewritten whole, 330 MB for 20,000 pictures, or kept
as shards to merge); the rows are written in one transaction, so a killed run leaves
them all or none; they are as private as the catalogue, on SQLite or PostgreSQL,
without a second store to protect; and they follow their image (foreign key) into every
copy of the catalogue. Loading copies nothing per row: each row's bytes are viewed as
an array (`np.frombuffer`).
"""

from __future__ import annotations

import cv2
import numpy as np
from sqlalchemy import delete
from threadpoolctl import threadpool_limits

from curate.dedupe import local, verify
from db.models import DedupeLocal

DIMS = 128  # bytes of one SIFT descriptor
CHUNK = 500  # rows replaced per statement (bounds the query's parameters)


def version(algo: str) -> str:
    """What the stored descriptors depend on; a row of any other version is recomputed."""
    sift = (
        f"sift/{verify.COARSE}/{local.TOP}/{verify.N_FEATURES}/{verify.CONTRAST:g}/stops"  # stops: `decode.field_stop`
    )
    return f"{algo}|{sift}|opencv {cv2.__version__}"


def blob(value):
    """A binary column's value as bytes (PostgreSQL drivers may give a memoryview), anything else as it is."""
    return bytes(value) if isinstance(value, memoryview | bytearray) else value


def binding_fault(stored: str | None, sha256: str) -> str | None:
    """Why a cached row whose `image_sha256` is `stored` was not computed from the original with checksum
    `sha256`, or None. The one check of the binding, for the hash codes (`curate.dedupe.run.cache_fault`)
    and the local features here."""
    if stored == sha256:
        return None
    if stored is None:
        return "not bound to its original's checksum"
    return "computed from other bytes than its original (copied from another catalogue?)"


def _load(ws, ids: set[int], current: str, sha: dict[int, str], report) -> dict[int, np.ndarray]:
    """The stored descriptors of `ids` that are current, whole and computed from their image's bytes
    (`sha`: image -> its original's checksum; the rest noted in `report.recomputed`). Read raw, so a
    hand-edited value of the wrong type is a reason, not a TypeError."""
    with ws.engine.connect() as c:
        rows = c.exec_driver_sql("SELECT image_id, version, count, descriptors, image_sha256 FROM dedupe_local").all()
    have, stale = {}, 0
    for i, ver, count, raw, bound_to in rows:
        if i not in ids:
            continue
        if ver != current:
            stale += 1
            continue
        if why := binding_fault(bound_to, sha.get(i)):
            report.recomputed.append(f"image {i}: cached local features are {why}; recomputed")
            continue
        raw = blob(raw)
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or not 0 <= count <= local.TOP
            or not isinstance(raw, bytes)
            or len(raw) != count * DIMS
        ):
            size = len(raw) if isinstance(raw, bytes | str) else 0
            report.recomputed.append(
                f"image {i}: cached local features are corrupt ({size} bytes for {str(count)[:20]} "
                "descriptors); recomputed"
            )
        else:
            have[i] = np.frombuffer(raw, np.uint8).reshape(count, DIMS)
    if stale:
        report.recomputed.append(f"{stale} cached local features from an older version; recomputed")
    return have


def _store(ws, fresh: dict[int, np.ndarray], current: str, sha: dict[int, str]) -> None:
    """Replace the rows of `fresh`'s pictures, each bound to its image's checksum (`sha`), in one transaction
    (safe to repeat: `Workspace.transact`)."""
    ids = sorted(fresh)

    def work(s) -> None:
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            s.exec(delete(DedupeLocal).where(DedupeLocal.image_id.in_(chunk)))
            s.add_all(
                DedupeLocal(
                    image_id=i,
                    version=current,
                    image_sha256=sha[i],
                    count=len(fresh[i]),
                    descriptors=fresh[i].tobytes(),
                )
                for i in chunk
            )
            s.flush()

    ws.transact(work)


def answering(verifier, ids: list[int], algo: str, report) -> dict[int, np.ndarray]:
    """image -> its `local.TOP` strongest descriptors at `verify.COARSE` px ((n, 128) uint8, strongest
    first; none for a picture unreadable now): stored ones when current, the rest computed through
    `verifier` (which keeps their features for verification) and stored. Counts in `report.local_cached`
    and `report.local_computed`."""
    current = version(algo)
    have = _load(verifier.ws, set(ids), current, verifier.sha, report)
    todo = [i for i in ids if i not in have]
    fresh = {}
    for start in range(0, len(todo), verifier.room):  # as many as verification keeps the features of
        batch = todo[start : start + verifier.room]
        with threadpool_limits(1, "blas"):
            verifier.prepare(batch, verify.COARSE)
        for i in batch:
            f = verifier.feature((i, verify.COARSE))
            if f is not None:  # unreadable now: tried again by the next run
                fresh[i] = (
                    np.empty((0, DIMS), np.uint8) if f.desc is None else np.ascontiguousarray(f.desc[: local.TOP])
                )
    if fresh:
        _store(verifier.ws, fresh, current, verifier.sha)
    report.local_cached, report.local_computed = len(have), len(todo)
    return {**have, **fresh}
