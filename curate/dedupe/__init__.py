"""Dedupe: exact and near-duplicate clusters over the catalogue.

The functions below are the contract later stages use (label push reads
`labelable_image_ids`, export reads `cluster_map` and `undecided_pairs`). Before dedupe has run,
every image is its own cluster `img<id>`; afterwards a cluster's key is
`img<smallest member id>`, so keys stay stable across re-runs. Images added
after the last run are their own cluster and labelable until the next run.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from sqlmodel import Session, select
from sqlmodel.sql.expression import Select

from db.models import DedupeMember, DedupeOverride, DedupePair, Image

UNDECIDED_KINDS = ("pixel", "hash", "cnn", "review")  # evidence of one photo: a copy, or a pair to review
ONE_PHOTO = (*UNDECIDED_KINDS, "merge")  # and the steward's merge: what `undecided` keeps in one split


def cluster_map(session: Session) -> dict[int, str]:
    """image id -> cluster key; images in one cluster must stay in one split."""
    keys = dict(session.exec(select(DedupeMember.image_id, DedupeMember.cluster_key)).all())
    return {i: keys.get(i, f"img{i}") for i in session.exec(select(Image.id)).all()}


def undecided(
    pairs: Iterable[tuple[int, int, str]], cluster_of: Mapping[int, object], splits: Collection[tuple[int, int]]
) -> list[tuple[int, int]]:
    """The one rule for a pair still to decide: the evidence (`UNDECIDED_KINDS`) or the steward's merge says one
    photo, yet it sits in two clusters (an image in none is a cluster of its own, as `cluster_map` says), and the
    steward has not split it (`splits`: `(smaller id, larger id)`, as stored). A merge a split holds apart (`split 1
    3`, `merge 1 4`, `merge 3 4`: 4 is 1's, and 3 may not join 1) counts: by the steward's own word one photo, so
    export keeps both in one split, and the sheet offers the merge of both clusters, which takes that split over, or
    the split that takes the merge back. `curate status`, export (`undecided_pairs`), a decision's count, a run's "to
    review" and the review sheet all ask this: before, status left out the split pairs only and the sheet every
    decided one, so status counted a merge held apart that the sheet never showed."""
    out = set()
    for a, b, kind in pairs:
        if kind not in ONE_PHOTO or (min(a, b), max(a, b)) in splits:
            continue
        ka, kb = cluster_of.get(a), cluster_of.get(b)
        if ka is None or kb is None or ka != kb:
            out.add((a, b))
    return sorted(out)


def undecided_pairs(session: Session, clusters: dict[int, str] | None = None) -> list[tuple[int, int]]:
    """Pairs dedupe found alike, or the steward merged, left in two clusters (to review, not joined to every member,
    or a merge a split holds apart) and not split by the steward (`undecided`): both must stay in one split until
    someone decides, or a copy leaks. `clusters`: the `cluster_map` when the caller has it already."""
    clusters = cluster_map(session) if clusters is None else clusters
    pairs = session.exec(
        select(DedupePair.image_a, DedupePair.image_b, DedupePair.kind).where(DedupePair.kind.in_(UNDECIDED_KINDS))
    ).all()
    decisions = session.exec(
        select(DedupeOverride.image_a, DedupeOverride.image_b, DedupeOverride.action).where(
            DedupeOverride.action.in_(("merge", "split"))
        )
    ).all()
    splits = {(a, b) for a, b, action in decisions if action == "split"}
    return undecided([*pairs, *decisions], clusters, splits)


def compared_ids() -> Select:
    """The ids of the images a dedupe run has compared: those with a `dedupe_members` row, which only a run's last
    transaction gives an image (with its pairs; a decision re-clusters these alone). Not "has hash codes": hashing
    commits its codes batch by batch before anything is compared, so a run stopped between the two left images with
    codes that no run had compared, and the next decision clustered them (`curate status` stopped warning and a merge
    of one was accepted)."""
    return select(DedupeMember.image_id)


def uncompared_image_ids(session: Session, ids: set[int]) -> list[int]:
    """Those of `ids` that no dedupe run has compared yet (`compared_ids`): each is its own cluster, so a copy of it
    elsewhere in the catalogue is neither merged nor kept in its split (export and label push warn)."""
    compared = set(session.exec(compared_ids()).all())
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
