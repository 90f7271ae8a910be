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
and in those within `MARGIN` of it. Crops move exactly the low frequencies the
choice rests on, so a margin loses some pairs; measured on the benchmark corpus
(exact search, 11 windows): margin 0.25 asks 4.7 orientations a picture, 0.15
asks 2.9 (10 of the 1,286 true pairs proposed with every turn lost), 0.10 asks
2.0 (11 lost). Magnitude-only descriptors, the same for all orientations, lost
15-25 and were dropped.

Big catalogues (beyond the exact search) also store 7 windows a picture, not
11 (`BIG_WINDOWS` leaves out the four corner crops, shifted along both axes),
ask within margin 0.10 (0.15 until 2026-11-30), and a query asks for its own
windows plus one result a neighbour (four while exact). On 100,000 pictures
(`bench/dedupe.py --scale`, CPU seconds of one thread, fast-scan index) that took the search
from 27 to 18 s with more planted copies found (0.996 against 0.993 of 1,000:
fewer of a picture's own windows crowd its results), the index from 1.1 M to
0.7 M vectors and the queries from 5.0 to 2.8 a picture. The price, measured on
the benchmark corpus searched exactly with these settings: 1,263 true pairs and
549 of 564 copies with their original proposed, against 1,278 and 554 with the
former 11 windows and margin 0.15 (and 1,286 and 556 with every turn, which the
corpus itself gets); the copies lost are crops (watermark + crop) and turns.
"""

from __future__ import annotations

import numpy as np

from curate.dedupe.dct import (
    DIHEDRAL,
    WINDOWS,
    canonical,
    compose_dihedral,
    descriptors,
    inverse_dihedral,
    turn_slack,
    turned_each,
)
from curate.dedupe.search.knn import NearestNeighbours

Pairs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
BLOCK = 8192  # query pictures searched at a time
MARGIN = 0.10  # big catalogues: turns within this of the canonical one are asked too (module docstring)
# big catalogues: the whole, the 95 % centre and the 90 % crops shifted along one axis at most
BIG_WINDOWS = tuple(w for w in WINDOWS if w[1] == 0 or w[2] == 0)
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


def _search(vec, queries, windows, neighbours: int, nn: NearestNeighbours, margin: float | None):
    """Queries: picture indices whose whole picture asks; windows: picture indices whose windows answer.
    `margin` None: all eight turns of each query against the windows as they are; a number: the
    windows in their canonical orientation, each query in the turns within `margin` of it."""
    n, nw, dims = vec.shape
    e = np.empty(0, np.int64)
    if not len(queries) or not len(windows):
        return e, e, e, np.empty(0, np.float32)
    whole = len(windows) == n and bool((windows == np.arange(n)).all())
    db = vec.reshape(-1, dims) if whole else vec[windows].reshape(-1, dims)  # every picture: no copy
    owner = np.repeat(windows, nw)
    db_turn = np.zeros(len(db), np.int64)
    if margin is not None:
        db, db_turn = canonical(db)
    undo = _COMPOSE[:, _INVERSE]  # undo[g, h]: turn g, then undo turn h
    index = nn.build(db, len(queries) * (len(DIHEDRAL) if margin is None else 2))
    # own windows come first, then room for the neighbours' windows: 4 a neighbour while exact (copies
    # match on several); 1 in the inverted file, whose search time grows with k (module docstring)
    room = 1 if index.approximate else 4
    parts = []
    for start in range(0, len(queries), BLOCK):  # a block of query pictures at a time bounds the memory
        block = queries[start : start + BLOCK]
        asking = vec[block, 0]  # each query picture's whole-picture descriptor
        if margin is None:
            ask = np.ones((len(block), len(DIHEDRAL)), bool)
        else:
            slack = turn_slack(asking)
            ask = (slack > -margin) | (slack == slack.max(1, keepdims=True))
        rows, turn = np.nonzero(ask)
        qi, ci, sim = index.search(turned_each(asking[rows], turn), nw + room * neighbours)
        a, b = block[rows[qi]], owner[ci]
        keep = np.flatnonzero(a != b)  # over half the results are the query's own windows
        qi, ci = qi[keep], ci[keep]
        d = undo[turn[qi], db_turn[ci]]
        parts.append(_top(*_best_per_pair(a[keep], b[keep], d, sim[keep], n), neighbours))
    return tuple(np.concatenate(x) for x in zip(*parts, strict=True))


def nearest_pairs(
    thumbs,
    neighbours: int = 5,
    new: np.ndarray | None = None,
    nn: NearestNeighbours | None = None,
    margin: float | None | str = "auto",
    windows: tuple | str = "auto",
) -> Pairs:
    """(lo, hi, dihedral, cosine) arrays, lo < hi; `dihedral` turns picture lo onto picture hi.

    With `new` (a boolean mask), only the pairs touching a new picture, exactly those a full search
    proposes: everyone still asks everyone. Asking only the new pictures' windows (as until
    2026-11-30) proposed each old picture's nearest new ones however far down its ranking they
    came: for 10 new photos in the benchmark's 1,055, 1,082 pairs of different photos went to SIFT
    verification (17 s of CPU), against about a second for the whole search.
    """
    thumbs = np.asarray(thumbs)
    n = len(thumbs)
    e = np.empty(0, np.int64)
    if n < 2:
        return e, e, e, np.empty(0, np.float32)
    nn = nn or NearestNeighbours()
    big = not nn.exact(n * len(WINDOWS), n * len(DIHEDRAL))
    if margin == "auto":  # every turn while the search is exact; the canonical one (and near) beyond
        margin = MARGIN if big else None
    if windows == "auto":  # every hash window while exact; beyond, no corner crops (module docstring)
        windows = BIG_WINDOWS if big else WINDOWS
    vec = descriptors(thumbs, windows)
    everyone = np.arange(n)
    a, b, d, s = _search(vec, everyone, everyone, neighbours, nn, margin)
    if new is not None:
        new = np.asarray(new, bool)
        touching = new[a] | new[b]
        a, b, d, s = a[touching], b[touching], d[touching], s[touching]
    # the orientation turns the query picture (a) onto b: for a pair stored as (b, a), invert it
    swap = a > b
    lo, hi = np.where(swap, b, a), np.where(swap, a, b)
    d = np.where(swap, _INVERSE[d], d)
    lo, hi, d, s = _best_per_pair(lo, hi, d, s, n)
    return lo, hi, d, s
