"""Candidate pairs by nearest neighbours: each picture proposes its most alike others.

Every picture's whole-picture descriptor, in each of the eight flips and
quarter-turns, is a query against the descriptors of every hash window of every
picture (`curate.dedupe.dct`: whole, 95 % centre, 3 x 3 grid of 90 % crops, so a
cropped copy meets the original's matching window). A query picture proposes
the `neighbours` other pictures whose best window is nearest, whatever their
distance; a pair is a candidate when either picture proposes the other. So the
candidates grow as n x neighbours rather than with a fixed Hamming radius,
whose candidates grow quadratically in a big catalogue (bench/README.md,
Scale), and a heavily edited copy is still proposed when nothing else is closer.

Orientation. While the search is exact (up to a few thousand pictures; see
`search.knn`), every picture asks in all eight orientations. Beyond, the
windows are stored in a canonical orientation (`dct.canonical_slack`: transposed
so the upper triangle holds more energy, flipped so the first horizontal and
vertical coefficients are positive) and each picture asks in that orientation
and in those within `MARGIN` of it (2.9 of 8 on average on the benchmark
corpus), which makes the search ~2.8 x cheaper. The price, measured on the
corpus: 6 of the 1,254 true pairs the former Hamming search proposed are not
proposed (crops move exactly the low frequencies the choice rests on; margin
0.25 loses none but asks 4.7 orientations). Magnitude-only descriptors, the
same for all orientations, lost 15-25 and were dropped.
"""

from __future__ import annotations

import numpy as np

from curate.dedupe.dct import (
    DIHEDRAL,
    WINDOWS,
    all_turns,
    canonical_slack,
    canonical_turn,
    compose_dihedral,
    descriptors,
    inverse_dihedral,
    turned,
)
from curate.dedupe.search.knn import NearestNeighbours

Pairs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
BLOCK = 8192  # query pictures searched at a time
MARGIN = 0.15  # big catalogues: turns within this of the canonical one are asked too (module docstring)
_INVERSE = np.array([inverse_dihedral(k) for k in range(len(DIHEDRAL))])
_COMPOSE = np.array([[compose_dihedral(x, y) for y in range(len(DIHEDRAL))] for x in range(len(DIHEDRAL))])


def _order(major: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Row order by `major` ascending, then score descending: one integer sort (score in 2**20 steps)."""
    step = np.round((1.0 - np.clip(score, -1.0, 1.0)) * (1 << 19)).astype(np.int64)
    return np.argsort(major * (1 << 21) + step, kind="stable")


def _best_per_pair(a, b, d, s, n: int):
    """One row per (a, b): the highest score and its orientation."""
    order = _order(a * n + b, s)
    a, b, d, s = a[order], b[order], d[order], s[order]
    first = np.ones(len(a), bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[first], b[first], d[first], s[first]


def _top(a, b, d, s, k: int):
    """Each query picture's k best others."""
    order = _order(a, s)
    a, b, d, s = a[order], b[order], d[order], s[order]
    rank = np.arange(len(a)) - np.searchsorted(a, a)
    keep = rank < k
    return a[keep], b[keep], d[keep], s[keep]


def _canonical(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each descriptor in its canonical orientation, and that orientation (see `dct.canonical_slack`)."""
    turn = canonical_turn(flat)
    out = np.empty_like(flat)
    for d in range(len(DIHEDRAL)):
        rows = turn == d
        out[rows] = turned(flat[rows], d)
    return out, turn


def _search(vec, queries, windows, neighbours: int, nn: NearestNeighbours, margin: float | None):
    """Queries: picture indices whose whole picture asks; windows: picture indices whose windows answer.
    `margin` None: all eight turns of each query against the windows as they are; a number: the
    windows in their canonical orientation, each query in the turns within `margin` of it."""
    n, nw, dims = vec.shape
    e = np.empty(0, np.int64)
    if not len(queries) or not len(windows):
        return e, e, e, np.empty(0, np.float32)
    db = vec[windows].reshape(-1, dims)
    owner = np.repeat(windows, nw)
    db_turn = np.zeros(len(db), np.int64)
    if margin is not None:
        db, db_turn = _canonical(db)
    undo = _COMPOSE[:, _INVERSE]  # undo[g, h]: turn g, then undo turn h
    index = nn.build(db, len(queries) * (len(DIHEDRAL) if margin is None else 2))
    parts = []
    for start in range(0, len(queries), BLOCK):  # a block of query pictures at a time bounds the memory
        block = queries[start : start + BLOCK]
        turns = all_turns(vec[block, 0])  # (pictures, 8, dims)
        if margin is None:
            ask = np.ones(turns.shape[:2], bool)
        else:
            slack = canonical_slack(turns)
            ask = (slack > -margin) | (slack == slack.max(1, keepdims=True))
        rows, turn = np.nonzero(ask)
        # own windows come first; 4 windows per neighbour leave room for copies matching on several
        qi, ci, sim = index.search(turns[rows, turn], nw + 4 * neighbours)
        a, b, d = block[rows[qi]], owner[ci], undo[turn[qi], db_turn[ci]]
        keep = a != b
        parts.append(_top(*_best_per_pair(a[keep], b[keep], d[keep], sim[keep], n), neighbours))
    return tuple(np.concatenate(x) for x in zip(*parts, strict=True))


def nearest_pairs(
    thumbs,
    neighbours: int = 5,
    new: np.ndarray | None = None,
    nn: NearestNeighbours | None = None,
    margin: float | None | str = "auto",
) -> Pairs:
    """(lo, hi, dihedral, cosine) arrays, lo < hi; `dihedral` turns picture lo onto picture hi.

    With `new` (a boolean mask), only pairs touching a new picture: the new pictures' queries
    against every window, and every picture's queries against the new pictures' windows (so each
    old picture's nearest among the new ones is proposed too: a superset of what a full search
    would propose for these pairs).
    """
    thumbs = np.asarray(thumbs)
    n = len(thumbs)
    e = np.empty(0, np.int64)
    if n < 2:
        return e, e, e, np.empty(0, np.float32)
    nn = nn or NearestNeighbours()
    if margin == "auto":  # every turn while the search is exact; the canonical one (and near) beyond
        margin = None if nn.exact(n * len(WINDOWS), n * len(DIHEDRAL)) else MARGIN
    vec = descriptors(thumbs)
    everyone = np.arange(n)
    if new is None:
        parts = [_search(vec, everyone, everyone, neighbours, nn, margin)]
    else:
        fresh = np.nonzero(np.asarray(new, bool))[0]
        parts = [
            _search(vec, fresh, everyone, neighbours, nn, margin),
            _search(vec, everyone, fresh, neighbours, nn, margin),
        ]
    a, b, d, s = (np.concatenate(x) for x in zip(*parts, strict=True))
    # the orientation turns the query picture (a) onto b: for a pair stored as (b, a), invert it
    swap = a > b
    lo, hi = np.where(swap, b, a), np.where(swap, a, b)
    d = np.where(swap, _INVERSE[d], d)
    lo, hi, d, s = _best_per_pair(lo, hi, d, s, n)
    return lo, hi, d, s
