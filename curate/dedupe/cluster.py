"""Clusters from matched pairs and the steward's decisions: pure functions on plain data.

Union of matched pairs, with two kinds of override: a *merge* is an edge that
always holds; a *split* says two images are not duplicates, so no cluster may
contain both. Edges are joined strongest first and an edge that would put a
split pair together is skipped, so the result does not depend on input order.

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

KIND_RANK = {"merge": 0, "pixel": 1, "hash": 2, "cnn": 3}


@dataclass(frozen=True)
class Edge:
    a: int
    b: int
    kind: str  # merge | pixel | hash | cnn
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


def clusters(image_ids: list[int], edges: list[Edge], splits: set[tuple[int, int]]) -> dict[int, int]:
    """image id -> root id (the smallest id in its cluster)."""
    parent = {i: i for i in image_ids}
    members = {i: {i} for i in image_ids}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    blocked: dict[int, set[int]] = {}
    for a, b in splits:
        blocked.setdefault(a, set()).add(b)
        blocked.setdefault(b, set()).add(a)

    for e in sorted(edges, key=lambda e: (KIND_RANK.get(e.kind, 9), -e.similarity, min(e.a, e.b), max(e.a, e.b))):
        if e.a not in parent or e.b not in parent:
            continue
        ra, rb = find(e.a), find(e.b)
        if ra == rb:
            continue
        small, big = sorted((members[ra], members[rb]), key=len)
        if any(blocked.get(x, set()) & big for x in small):
            continue  # the steward said some pair across these two is not a duplicate
        root, child = (ra, rb) if ra < rb else (rb, ra)
        parent[child] = root
        members[root] |= members.pop(child)
    return {i: find(i) for i in image_ids}


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
