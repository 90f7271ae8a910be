"""Dedupe: exact and near-duplicate clusters over the catalogue.

The functions below are the contract later stages use (label push reads
`labelable_image_ids`, export reads `cluster_map` and `undecided_pairs`). Before dedupe has run,
every image is its own cluster `img<id>`; afterwards a cluster's key is
`img<smallest member id>`, so keys stay stable across re-runs. Images added
after the last run are their own cluster and labelable until the next run.
"""

from __future__ import annotations

from sqlmodel import Session, select

from db.models import DedupeMember, DedupeOverride, DedupePair, Image

UNDECIDED_KINDS = ("pixel", "hash", "cnn", "review")  # evidence of one photo: a copy, or a pair to review


def cluster_map(session: Session) -> dict[int, str]:
    """image id -> cluster key; images in one cluster must stay in one split."""
    keys = dict(session.exec(select(DedupeMember.image_id, DedupeMember.cluster_key)).all())
    return {i: keys.get(i, f"img{i}") for i in session.exec(select(Image.id)).all()}


def undecided_pairs(session: Session, clusters: dict[int, str] | None = None) -> list[tuple[int, int]]:
    """Pairs dedupe found alike but left in two clusters (to review, or not joined to every member) and the
    steward has not split: both must stay in one split until someone decides, or a copy leaks. `clusters`: the
    `cluster_map` when the caller has it already."""
    clusters = cluster_map(session) if clusters is None else clusters
    split = set(
        session.exec(
            select(DedupeOverride.image_a, DedupeOverride.image_b).where(DedupeOverride.action == "split")
        ).all()
    )
    pairs = session.exec(
        select(DedupePair.image_a, DedupePair.image_b).where(DedupePair.kind.in_(UNDECIDED_KINDS))
    ).all()
    return sorted(
        {(a, b) for a, b in pairs if clusters.get(a) != clusters.get(b) and (a, b) not in split and (b, a) not in split}
    )


def uncompared_image_ids(session: Session, ids: set[int]) -> list[int]:
    """Those of `ids` that no dedupe run has compared yet: each is its own cluster, so a copy of it elsewhere
    in the catalogue is neither merged nor kept in its split (export and label push warn)."""
    compared = set(session.exec(select(DedupeMember.image_id)).all())
    return sorted(i for i in ids if i not in compared)


def labelable_image_ids(session: Session) -> list[int]:
    """Images to label: one representative per cluster, not excluded (low-res), in id order.

    A cluster with an image already in labelling has that image as representative, so this
    never returns a copy of a labelled image (once dedupe has run since the copy arrived)."""
    members = {m.image_id: m for m in session.exec(select(DedupeMember)).all()}
    out = []
    for i in session.exec(select(Image.id)).all():
        m = members.get(i)
        if m is None or (m.representative and not m.low_res):
            out.append(i)
    return sorted(out)
