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

Why not one orientation-canonical query instead of eight (brief: transpose so
that the upper triangle holds more energy, flip so the first odd coefficients
are positive, query the alternatives within a margin): measured on the
benchmark corpus, a margin that queries 2.5 orientations per picture on average
still lost 5 true pairs the eight-orientation search finds (watermark + crop:
the crop moves exactly the low frequencies the choice rests on), and
magnitude-only descriptors that ignore orientation lost 15-25.
"""

from __future__ import annotations

import numpy as np

from curate.dedupe.dct import DIHEDRAL, all_turns, descriptors, inverse_dihedral
from curate.dedupe.search.knn import NearestNeighbours

Pairs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
BLOCK = 8192  # query pictures searched at a time


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


def _search(vec: np.ndarray, queries: np.ndarray, windows: np.ndarray, neighbours: int, nn: NearestNeighbours):
    """Queries: picture indices whose whole picture asks; windows: picture indices whose windows answer."""
    n, nw, dims = vec.shape
    e = np.empty(0, np.int64)
    if not len(queries) or not len(windows):
        return e, e, e, np.empty(0, np.float32)
    turns = len(DIHEDRAL)
    owner = np.repeat(windows, nw)
    index = nn.build(vec[windows].reshape(-1, dims), len(queries) * turns)
    parts = []
    for start in range(0, len(queries), BLOCK):  # a block of query pictures at a time bounds the memory
        block = queries[start : start + BLOCK]
        q = all_turns(vec[block, 0]).reshape(-1, dims)  # (pictures * 8, dims)
        # own windows come first; 4 windows per neighbour leave room for copies matching on several
        qi, ci, sim = index.search(q, nw + 4 * neighbours)
        a, b, d = block[qi // turns], owner[ci], qi % turns
        keep = a != b
        parts.append(_top(*_best_per_pair(a[keep], b[keep], d[keep], sim[keep], n), neighbours))
    return tuple(np.concatenate(x) for x in zip(*parts, strict=True))


def nearest_pairs(
    thumbs, neighbours: int = 5, new: np.ndarray | None = None, nn: NearestNeighbours | None = None
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
    vec = descriptors(thumbs)
    everyone = np.arange(n)
    if new is None:
        parts = [_search(vec, everyone, everyone, neighbours, nn)]
    else:
        fresh = np.nonzero(np.asarray(new, bool))[0]
        parts = [_search(vec, fresh, everyone, neighbours, nn), _search(vec, everyone, fresh, neighbours, nn)]
    a, b, d, s = (np.concatenate(x) for x in zip(*parts, strict=True))
    # the orientation turns the query picture (a) onto b: for a pair stored as (b, a), invert it
    swap = a > b
    inv = np.array([inverse_dihedral(k) for k in range(len(DIHEDRAL))])
    lo, hi = np.where(swap, b, a), np.where(swap, a, b)
    d = np.where(swap, inv[d], d)
    lo, hi, d, s = _best_per_pair(lo, hi, d, s, n)
    return lo, hi, d, s
