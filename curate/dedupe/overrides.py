"""The steward's decisions: merge images into one picture's cluster, split images apart ("not duplicates"), or
keep one image as the representative of whatever cluster holds it (the picture labelled and exported in its copies'
place).

A decision is one `dedupe_overrides` row per image pair (unique); a keep is the row of the image with itself. A
later, different decision on the same pair takes the row over: its time becomes the new decision's, and its note
says which decision it replaced and when (`replaces the split of …`), so no earlier decision vanishes without a
trace and no migration is needed. The same decision again changes nothing (its time stays the first one's). Runs
never write this table, and the clustering honours it every time, so decisions survive re-running dedupe. Each call
re-clusters at once from the stored pairs (no hashing).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import or_, select

from curate.dedupe import compared_ids, undecided_pairs
from curate.dedupe.cluster import KEEP
from curate.dedupe.run import ALGO, recluster
from curate.errors import ConfigError
from db.models import DedupeCode, DedupeMember, DedupeOverride, DedupePair, Image, utcnow

NOTE_MAX = 500  # dedupe_overrides.note's width
OLD_NOTE_MAX = 200  # how much of a replaced decision's note its successor quotes
ITSELF = "an image cannot be merged with or split from itself"
NOT_YET = "not in a cluster yet (run `curate dedupe` first)"
STALE = "the dedupe codes are from an older version: run `curate dedupe` first"


# Every decision reclusters the compared images only (`recluster(compared_only=True)`: those a run's last transaction
# gave a cluster). Before, an image ingested since the last run got a cluster of its own from any decision, so export
# and `label push` took it for compared and no longer warned that a copy of it may sit in another split; and one
# hashed by a run stopped before it compared (its codes are committed batch by batch) was clustered with the rest.


def _refuse_before_any_change(s, note: str | None) -> None:
    """What every decision refuses before it records anything (a refusal: its run is `failed`, which `curate status`
    does not list). Codes of an older version (the tool upgraded, `curate dedupe` not yet run, or stopped while it
    hashed): a re-clustering reads only current codes, so a decision emptied every cluster, and a keep then failed
    on its image's missing cluster, its run `aborted` for good. A note that is no UTF-8 text (a byte no character,
    from the shell): the catalogue cannot store it, and the decision failed midway, `aborted` for good."""
    if note is not None:
        try:
            note.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError("--note is not UTF-8 text (a byte in it is no character): type it again") from None
    current = select(DedupeCode.image_id).where(DedupeCode.algo == ALGO)
    stale = select(DedupeMember.image_id).where(DedupeMember.image_id.not_in(current)).limit(1)
    if s.exec(stale).first() is not None:
        raise ConfigError(STALE)


def _not_compared(s, ids: list[int]) -> list[int]:
    """Those of `ids` that no dedupe run has compared (`curate.dedupe.compared_ids`): a decision leaves them out of
    every cluster, so one naming them is refused."""
    compared = set(s.exec(compared_ids().where(DedupeMember.image_id.in_(ids))).all())
    return [i for i in ids if i not in compared]


def _check_ids(s, ids: list[int]) -> None:
    missing = [i for i in ids if s.get(Image, i) is None]
    if missing:
        raise ConfigError(f"no image with id {', '.join(map(str, missing))} in the catalogue")


def when(at: datetime) -> str:
    """A decision's time as people read it (stored in UTC; SQLite gives it back without a zone)."""
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _cut(text: str, room: int) -> str:
    return text if len(text) <= room else text[: max(room - 1, 0)] + "…"


def _replacing(note: str | None, old: DedupeOverride) -> str:
    """The new decision's note: the steward's words, then what it replaced (kept whole within the width)."""
    said = f"replaces the {old.action} of {when(old.created_at)}"
    if old.note:
        said += f' (noted "{_cut(old.note, OLD_NOTE_MAX)}")'
    return f"{_cut(note, NOTE_MAX - len(said) - 2)}; {said}" if note else said


def _decide(s, a: int, b: int, action: str, note: str | None) -> dict | None:
    """Record one decision; returns the different decision it replaced (None if new or the same again)."""
    if a == b:
        raise ConfigError(ITSELF)
    a, b = min(a, b), max(a, b)
    row = s.exec(select(DedupeOverride).where(DedupeOverride.image_a == a, DedupeOverride.image_b == b)).first()
    replaced = None
    if row is None:
        s.add(DedupeOverride(image_a=a, image_b=b, action=action, note=_cut(note, NOTE_MAX) if note else note))
    elif row.action == action:  # re-run: the decision stands as first made; a new note replaces the old one
        if note is not None:
            row.note = _cut(note, NOTE_MAX)
    else:
        replaced = {"image_a": a, "image_b": b, "action": row.action, "note": row.note, "at": when(row.created_at)}
        row.note = _replacing(note, row)
        row.action, row.created_at = action, utcnow()
    s.flush()
    return replaced


def merge(
    ws, a: int, b: int, note: str | None = None, run_id: int | None = None, more: list[int] | None = None
) -> dict:
    """Record that `a`, `b` and `more` show the same picture: one decision for each of them with `a`, so they are
    one unit, in one cluster on every run whatever their pairs say (`curate.dedupe.cluster`). An earlier split
    between any two of them is taken over (in `replaced`): kept, it would hold them apart against this decision.
    The rest of their clusters joins only where it matches every member, as any join: so the review sheet's merge
    of two clusters names every picture of both (`curate.dedupe.review`). The summary's `merged` lists the ids
    once each, `apart` any that did not end in `a`'s cluster (none but for an earlier split with a picture exactly
    like one of them, or merged with one; a pixel twin of a picture split from another named one is such a picture,
    and stays with its twin) and `undecided` the pairs found alike still undecided (`curate.dedupe.undecided_pairs`:
    a merge held apart so is one, and the review sheet shows it)."""
    ids = list(dict.fromkeys([a, b, *(more or [])]))
    if len(ids) < 2:
        raise ConfigError(ITSELF)
    with ws.session() as s:
        _check_ids(s, ids)
        _refuse_before_any_change(s, note)
        if unclustered := _not_compared(s, ids):  # recluster leaves them out
            raise ConfigError(f"{_ids(unclustered)} {NOT_YET}")
        named = set(ids)
        splits = s.exec(
            select(DedupeOverride.image_a, DedupeOverride.image_b).where(
                DedupeOverride.action == "split",
                DedupeOverride.image_a.in_(ids),
                DedupeOverride.image_b.in_(ids),
            )
        ).all()
        pairs = [(ids[0], o) for o in ids[1:]] + [(x, y) for x, y in splits if x in named and y in named]
        was_with = _cluster_mates(s, ids)
        replaced = [r for x, y in dict.fromkeys(pairs) if (r := _decide(s, x, y, "merge", note))]
        summary = recluster(s, run_id, compared_only=True)
        keys = {m.image_id: m.cluster_key for m in s.exec(select(DedupeMember).where(DedupeMember.image_id.in_(ids)))}
        apart = [i for i in ids[1:] if keys.get(i) != keys.get(ids[0])]
        now_with = set(_cluster_mates(s, [ids[0]]))
        # of two keeps the merge put in one cluster the later represents (`representative`); the earlier is taken
        # back, so `keep --undo` of the later hands the cluster to the rule, as it says (before: to the earlier).
        # Every cluster the named images ended in: one held apart from `a` may have joined another (before: `a`'s alone)
        for key in dict.fromkeys(k for i in ids if (k := keys.get(i))):
            rep = _representative_of(s, key)
            kept = select(DedupeOverride).where(DedupeOverride.image_a == rep, DedupeOverride.image_b == rep)
            if rep is not None and s.exec(kept).first() is not None:
                replaced += _drop_other_keeps(s, rep)
        return summary | {
            "replaced": replaced,
            "already_apart": [],
            "merged": ids,
            "apart": apart,
            # before: the named images' old cluster-mates that did not follow were left unsaid (two clusters'
            # representatives merged: one cluster's copies joined, the other's lost their photo without a word)
            "left_out": [i for i in was_with if i not in now_with and i not in named],
            "undecided": len(undecided_pairs(s)),
        }


def _cluster_mates(s, ids: list[int]) -> list[int]:
    """Every image in a cluster with any of `ids` (them included), in id order."""
    keys = s.exec(select(DedupeMember.cluster_key).where(DedupeMember.image_id.in_(ids))).all()
    return sorted(s.exec(select(DedupeMember.image_id).where(DedupeMember.cluster_key.in_(set(keys)))).all())


def _apart(s, image: int, others: list[int]) -> list[int]:
    """Of `others`, those a split would change nothing for: in another cluster than `image`, with no
    stored pair (the sheet's `split A B` for a pair to review is the steward's decision on that pair,
    and blocks it on every later run) and no earlier decision between them. Every one of them and `image` is in a
    cluster (`split` refuses one that is not)."""
    keys = {
        m.image_id: m.cluster_key
        for m in s.exec(select(DedupeMember).where(DedupeMember.image_id.in_([image, *others]))).all()
    }
    linked = set()
    for model in (DedupePair, DedupeOverride):
        for a, b in s.exec(
            select(model.image_a, model.image_b).where(
                or_(
                    (model.image_a == image) & model.image_b.in_(others),
                    (model.image_b == image) & model.image_a.in_(others),
                )
            )
        ).all():
            linked.add(b if a == image else a)
    return [o for o in others if o not in linked and keys.get(o) != keys.get(image)]


def split(ws, image: int, others: list[int] | None = None, note: str | None = None, run_id: int | None = None) -> dict:
    """Record that `image` is not a duplicate of `others` (default: every other member of its cluster).

    An image of `others` already in another cluster and not linked to `image` by a stored pair or decision
    is left out (`already_apart` in the summary): nothing would change, so nothing is recorded; if that is
    every one of them, a `ConfigError` says so, as for an image alone in its cluster. Any named image that no run
    has compared is refused, as `split A B` of it alone is: before, `split A B NEW` dropped NEW as "already in another
    cluster" and recorded nothing for it, so the next run put NEW in A's cluster against the steward's word."""
    with ws.session() as s:
        _check_ids(s, [image, *(others or [])])
        _refuse_before_any_change(s, note)
        if unclustered := _not_compared(s, list(dict.fromkeys([image, *(others or [])]))):
            raise ConfigError(f"{_ids(unclustered)} {NOT_YET}")
        apart: list[int] = []
        if not others:
            mine = s.get(DedupeMember, image)
            others = [
                m.image_id
                for m in s.exec(select(DedupeMember).where(DedupeMember.cluster_key == mine.cluster_key)).all()
                if m.image_id != image
            ]
            if not others:
                raise ConfigError(f"image {image} is alone in its cluster; nothing to split")
        else:
            others = list(dict.fromkeys(others))
            if image in others:
                raise ConfigError(ITSELF)
            apart = _apart(s, image, others)
            others = [o for o in others if o not in apart]
            if not others:
                raise ConfigError(
                    f"image {image} is already in a different cluster from {_ids(apart)}, and no dedupe pair links "
                    "them; nothing to split"
                )
        _refuse_split_of_a_merge(s, image, others)
        replaced = [r for o in others if (r := _decide(s, image, o, "split", note))]
        return recluster(s, run_id, compared_only=True) | {
            "replaced": replaced,
            "already_apart": apart,
            "undecided": len(undecided_pairs(s)),
        }


def _refuse_split_of_a_merge(s, image: int, others: list[int]) -> None:
    """A split of two images that merge decisions join through a third (`merge 1 2 3`, then `split 2 3`) is
    refused, naming the merges: recorded, it would leave a merge standing that no run honours (before: 3 left 1's
    cluster, `decisions` still listed the merge 1–3, and status counted a pair the sheet never showed). A merge of
    the two themselves, or of `image` with any of `others`, is replaced by the split, as any reversal: so
    `split 5` after `merge 1 5 6` takes 5 out of the unit, as its help says."""
    from scipy.cluster.hierarchy import DisjointSet  # scipy.cluster takes 0.7 s to load: here, not for --help

    merges = s.exec(
        select(DedupeOverride.image_a, DedupeOverride.image_b).where(DedupeOverride.action == "merge")
    ).all()
    replaced = {frozenset((image, o)) for o in others}
    through = [(a, b) for a, b in merges if frozenset((a, b)) not in replaced]
    for other in others:
        units = DisjointSet([image, other, *(x for pair in through for x in pair)])
        for a, b in through:
            units.merge(a, b)
        if units.connected(image, other):
            named = ", ".join(f"{a}–{b}" for a, b in sorted(through) if units.connected(a, image))
            raise ConfigError(
                f"images {image} and {other} are one photo by your merges ({named}): split one of those merges "
                "instead (`curate dedupe split A B` with its two ids)"
            )


def keep(ws, image: int, note: str | None = None, undo: bool = False, run_id: int | None = None) -> dict:
    """Record that `image` represents whatever cluster holds it, now and after every re-run: the rule
    (`curate.dedupe.cluster.representative`) sees pixels, colour and arrival, not an enlarged crop or a colour
    cast, and a steward who sees one picks the photo. A keep takes back the keeps of its cluster's other members
    (in `replaced`); of two kept images that a later merge puts in one cluster, the later keep. `undo`: take the
    keep back (its row goes; the command log keeps the call), the rule chooses again. A low-resolution image is
    refused: a representative under the minimum side is never labelled. The summary's `was` is the cluster's
    representative before, `now` after."""
    with ws.session() as s:
        _check_ids(s, [image])
        _refuse_before_any_change(s, note)
        mine = s.get(DedupeMember, image)
        if mine is None:
            raise ConfigError(f"image {image} is {NOT_YET}")
        if mine.low_res and not undo:
            raise ConfigError(f"image {image} is below the minimum side: it would never be labelled; keep another")
        was = _representative_of(s, mine.cluster_key)
        row = s.exec(
            select(DedupeOverride).where(DedupeOverride.image_a == image, DedupeOverride.image_b == image)
        ).first()
        if undo:
            if row is None:
                raise ConfigError(f"image {image} was not kept; nothing to take back")
            s.delete(row)
        elif row is None:
            s.add(
                DedupeOverride(image_a=image, image_b=image, action=KEEP, note=_cut(note, NOTE_MAX) if note else note)
            )
        elif note is not None:
            row.note = _cut(note, NOTE_MAX)
        replaced = [] if undo else _drop_other_keeps(s, image)
        s.flush()
        summary = recluster(s, run_id, compared_only=True)
        now = s.get(DedupeMember, image)
        if now is None:  # no longer clustered (its codes gone meanwhile): the transaction rolls back, nothing recorded
            raise ConfigError(f"image {image} is {NOT_YET}")
        key = now.cluster_key
        return summary | {
            "replaced": replaced,
            "already_apart": [],
            "undecided": len(undecided_pairs(s)),
            "cluster": key,
            "was": was,
            "now": _representative_of(s, key),
        }


def _drop_other_keeps(s, image: int) -> list[dict]:
    """The keeps of the other members of `image`'s cluster, taken back: the steward chose again. Before, they
    stayed, so `keep --undo` of the new one handed the cluster to the old keep, not to the rule as it says."""
    others = [m for m in _cluster_mates(s, [image]) if m != image]
    rows = s.exec(
        select(DedupeOverride).where(
            DedupeOverride.action == KEEP,
            DedupeOverride.image_a.in_(others),
            DedupeOverride.image_a == DedupeOverride.image_b,
        )
    ).all()
    for row in rows:
        s.delete(row)
    return [
        {"image_a": r.image_a, "image_b": r.image_b, "action": r.action, "note": r.note, "at": when(r.created_at)}
        for r in rows
    ]


def _representative_of(s, cluster_key: str) -> int | None:
    """The image representing cluster `cluster_key` now."""
    query = select(DedupeMember.image_id).where(DedupeMember.cluster_key == cluster_key, DedupeMember.representative)
    return s.exec(query).first()


def _ids(ids: list[int]) -> str:
    return f"image{'s' * (len(ids) > 1)} {', '.join(map(str, ids))}"


def decisions(ws) -> list[dict]:
    with ws.session() as s:
        return [
            {"image_a": o.image_a, "image_b": o.image_b, "action": o.action, "note": o.note, "at": o.created_at}
            for o in s.exec(select(DedupeOverride).order_by(DedupeOverride.id)).all()
        ]
