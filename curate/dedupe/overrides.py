"""The steward's decisions: merge two clusters, or split images apart ("not duplicates").

A decision is one `dedupe_overrides` row per image pair (a later decision on
the same pair replaces the earlier one). Runs never write this table, and the
clustering honours it every time, so decisions survive re-running dedupe.
Each call re-clusters at once from the stored pairs (no hashing).
"""

from __future__ import annotations

from sqlmodel import select

from curate.dedupe.run import recluster
from curate.errors import ConfigError
from db.models import DedupeMember, DedupeOverride, Image


def _check_ids(s, ids: list[int]) -> None:
    missing = [i for i in ids if s.get(Image, i) is None]
    if missing:
        raise ConfigError(f"no image with id {', '.join(map(str, missing))} in the catalogue")


def _decide(s, a: int, b: int, action: str, note: str | None) -> None:
    if a == b:
        raise ConfigError("an image cannot be merged with or split from itself")
    a, b = min(a, b), max(a, b)
    row = s.exec(select(DedupeOverride).where(DedupeOverride.image_a == a, DedupeOverride.image_b == b)).first()
    if row is None:
        s.add(DedupeOverride(image_a=a, image_b=b, action=action, note=note))
    else:
        row.action, row.note = action, note
    s.flush()


def merge(ws, a: int, b: int, note: str | None = None, run_id: int | None = None) -> dict:
    """Record that `a` and `b` show the same picture; their clusters become one."""
    with ws.session() as s:
        _check_ids(s, [a, b])
        _decide(s, a, b, "merge", note)
        return recluster(s, run_id)


def split(ws, image: int, others: list[int] | None = None, note: str | None = None, run_id: int | None = None) -> dict:
    """Record that `image` is not a duplicate of `others` (default: every other member of its cluster)."""
    with ws.session() as s:
        _check_ids(s, [image, *(others or [])])
        if not others:
            mine = s.get(DedupeMember, image)
            if mine is None:
                raise ConfigError(f"image {image} is not in a cluster yet (run `curate dedupe` first)")
            others = [
                m.image_id
                for m in s.exec(select(DedupeMember).where(DedupeMember.cluster_key == mine.cluster_key)).all()
                if m.image_id != image
            ]
            if not others:
                raise ConfigError(f"image {image} is alone in its cluster; nothing to split")
        for o in others:
            _decide(s, image, o, "split", note)
        return recluster(s, run_id)


def decisions(ws) -> list[dict]:
    with ws.session() as s:
        return [
            {"image_a": o.image_a, "image_b": o.image_b, "action": o.action, "note": o.note, "at": o.created_at}
            for o in s.exec(select(DedupeOverride).order_by(DedupeOverride.id)).all()
        ]
