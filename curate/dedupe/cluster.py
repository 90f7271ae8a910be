"""Clusters from matched pairs and the steward's decisions: pure functions on plain data.

Clusters never chain. Pixel-identical pairs and the steward's *merge*
decisions are joined first and always hold (a "unit"). Verified pairs (hash +
geometry, CNN) are then joined strongest first, but two groups become one only
when EVERY unit of one is checked against every unit of the other and none
contradicts it (complete linkage with a stated tolerance): each cross pair is
either verified "same", or was judged "review" (geometric evidence of shared
content just short of the "same" rule: two different crops of one photo, a
picture with too little texture), or "untested" (a picture with too few
keypoints for any evidence either way: a mostly black fundus tile against its
cropped copy), never "different" or unchecked. The unit
counts as one: a member verified against any image of a unit counts for the
whole unit. So A~B and B~C never put A with C unless A and C were compared
and found at least partly the same; the blocked pair goes to the steward as
"to review". Two groups of several units each need at least two verified
cross pairs: with every other pair across them only tolerated, one link is
all that joins them (two different tiles of one fundus photo, each with a
caption, a perspective and a thumbnail-sized copy: one caption against the
other's small copy correlated 0.969, and eight pictures of two photos became
one cluster). A single picture still joins a group on one link. A *split*
says two images are not duplicates: no cluster may contain both. The result
does not depend on input order.

Order matters only where complete linkage must choose: a thumbnail-sized copy
(content box under `SMALL` px, often heavily compressed) has too few pixels for
its local features to confirm every member, so its edges are joined last. Joined
first, it kept three good copies of one photo (a caption, a sticker, a
perspective) out of their original's cluster, which made two clusters and two
photos to label; joined last, it is the one left out when a member contradicts it.

The representative rule: an image that has already entered labelling (it has a
`LabelTask`) stays its cluster's representative, so a sharper copy arriving later
never takes the place of a photo the raters have seen; among several such, one
with a final consensus (agreed or adjudicated) first. Then, and for clusters with
no labelled member, the plain rule: not low-resolution, most pixels, source
priority (clinic > public > web), earliest, lowest id.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from scipy.cluster.hierarchy import DisjointSet

KIND_RANK = {"merge": 0, "pixel": 1, "hash": 2, "cnn": 3, "review": 4, "untested": 5}
EXACT = ("merge", "pixel")
UNTESTED = "untested"  # a pair one picture's lack of texture left undecided (`curate.dedupe.pairs`)
NOT_EDGES = ("review", UNTESTED)  # stored pairs that never join, and never block a join
# the reason of a "review" pair put there by `curate.dedupe.pairs.stamps` begins with this (the sheet groups them)
STAMPED = "the same marks in the same place on 3 or more pictures whose pixels differ (a site's stamp?): "


def stamped(kind: str, reason: str | None) -> bool:
    """Whether a stored pair is one `curate.dedupe.pairs.stamps` put to review (the sheet shows them apart)."""
    return kind == "review" and (reason or "").startswith(STAMPED)


SMALL = 128  # px: a content box whose longer side is under this is thumbnail-sized (the paper's low-res cut)


@dataclass(frozen=True)
class Edge:
    a: int
    b: int
    kind: str  # merge | pixel | hash | cnn (review and untested pairs are never edges)
    similarity: float = 1.0


@dataclass(frozen=True)
class Candidate:
    """What the representative rule looks at."""

    image_id: int
    width: int
    height: int
    priority: int  # best (lowest) source priority among its arrivals: clinic 0 < public 1 < web 2
    created_at: datetime
    low_res: bool = False


def clusters(
    image_ids: list[int],
    edges: list[Edge],
    splits: set[tuple[int, int]],
    tolerated: Collection[tuple[int, int]] = (),
    last: Collection[int] = (),
) -> dict[int, int]:
    """image id -> root id (the smallest id in its cluster); the rule is the module docstring's.
    `tolerated`: "review" and "untested" pairs, which never join but do not block a join either.
    `last`: pictures whose edges are joined after all others (`SMALL`)."""
    ds = DisjointSet(image_ids)
    blocked: dict[int, set[int]] = {}
    for a, b in splits:
        blocked.setdefault(a, set()).add(b)
        blocked.setdefault(b, set()).add(a)

    def join(a: int, b: int) -> bool:
        small, big = sorted((ds.subset(a), ds.subset(b)), key=len)
        if any(blocked.get(x, set()) & big for x in small):
            return False  # the steward said some pair across these two is not a duplicate
        ds.merge(a, b)
        return True

    late = set(last)
    ordered = sorted(
        (e for e in edges if e.a in ds and e.b in ds and e.a != e.b),
        key=lambda e: (
            e.kind not in EXACT and (e.a in late or e.b in late),
            KIND_RANK.get(e.kind, 9),
            -e.similarity,
            min(e.a, e.b),
            max(e.a, e.b),
        ),
    )
    for e in ordered:
        if e.kind in EXACT and not ds.connected(e.a, e.b):
            join(e.a, e.b)
    unit = {i: ds[i] for i in image_ids}
    same = {(min(unit[e.a], unit[e.b]), max(unit[e.a], unit[e.b])) for e in ordered if e.kind not in EXACT}
    verified = same | {(min(unit[a], unit[b]), max(unit[a], unit[b])) for a, b in tolerated if a in unit and b in unit}
    units_of = {r: {r} for r in set(unit.values())}  # cluster root -> the exact-copy units inside it

    def bridged(ra: int, rb: int) -> bool:
        """Whether one verified pair is all that joins two groups of several units each."""
        ua, ub = units_of[ra], units_of[rb]
        if len(ua) < 2 or len(ub) < 2:
            return False
        return sum((min(u, v), max(u, v)) in same for u in ua for v in ub) < 2

    for e in ordered:
        if e.kind in EXACT:
            continue
        ra, rb = ds[e.a], ds[e.b]
        if ra == rb or bridged(ra, rb):
            continue
        if all((min(u, v), max(u, v)) in verified for u in units_of[ra] for v in units_of[rb]) and join(ra, rb):
            units_of[ds[ra]] = units_of.pop(ra) | units_of.pop(rb)
    return {i: min(sub) for sub in ds.subsets() for i in sub}


def unmerged(edges: list[Edge], roots: dict[int, int], decided: set[tuple[int, int]]) -> list[Edge]:
    """Verified pairs the clustering did not join (complete linkage, a split), not yet decided by the steward."""
    return [
        e
        for e in edges
        if e.kind not in EXACT and roots.get(e.a) != roots.get(e.b) and (min(e.a, e.b), max(e.a, e.b)) not in decided
    ]


def representative(members: list[Candidate], labelled: Collection[int] = (), final: Collection[int] = ()) -> Candidate:
    """The documented rule (module docstring). `labelled`: ids already in labelling (have a task);
    `final`: ids with an agreed or adjudicated consensus. Labelled first, so labels already paid
    for stay the cluster's; then usable (not low-resolution), most pixels, best source priority
    (clinic > public > web), earliest, lowest id."""

    def stage(c: Candidate) -> int:
        return 0 if c.image_id in final else 1 if c.image_id in labelled else 2

    return min(
        members,
        key=lambda c: (stage(c), c.low_res, -(c.width * c.height), c.priority, c.created_at, c.image_id),
    )


def cluster_key(root_id: int) -> str:
    """Stable key: the smallest image id in the cluster, as before dedupe ever ran (`img<id>`)."""
    return f"img{root_id}"
