"""Candidate pairs by shared local features: the second proposal, for what low frequencies miss.

The DCT proposal (`curate.dedupe.propose`) ranks pictures by their low
frequencies, which a frame plus a rescale, a watermark plus a crop, or a bar
across a star field change more than two different pictures of plain skin
differ: on `bench/dedupe.py`'s corpus it never proposed 9 copies, their
originals 7th to 68th among the copy's nearest. Local features are not fooled
that way, and verification computes them anyway (`verify.COARSE` px; each
picture's `TOP` strongest are kept between runs, `curate.dedupe.answers`):
each picture's `ASK` strongest SIFT descriptors, as they are and
mirrored (`verify.mirrored`), ask an index of everyone's `TOP` strongest
(`_index`) for their `K` nearest. A neighbour clearly nearer than the K-th
(`RATIO`: Lowe's test against the crowd rather than the runner-up, so three
copies of one photo still vote for each other) is one vote for its picture.
A pair is a candidate when it gathers `MIN_VOTES` votes and is among either
picture's `PER_IMAGE` best; it then goes through the same verification as
every candidate.

Measured on the corpus: each of those 9 copies gets 11-180 votes with its
original; on the current corpus (1,055 files) local features alone add 936
candidates to the DCT proposal's 2,970 (bench/README.md, Dedupe).

Big catalogues. Everyone asks on every run, 192 questions a picture, so the
search is what grows. With float lists, and everyone's descriptors turned into
floats at once (4 times their 16 KB a picture), it took 50 s and 1.9 GB at
10,000 pictures, 138 s and 3.5 GB at 20,000 (n^1.5: about 24 minutes at
100,000). From `FAST` answering descriptors the lists hold 4-bit codes, and the
vectors are turned a block at a time (`_index`): 14 s and 0.7 GB, 35 s and
0.9 GB, 281 s at 100,000 (`bench/local_scale.py`; bench/README.md,
"the local proposal at scale").

A re-run. When under `ALONE` of the pictures are new, only they ask, and of the
others only the questions that may vote for a new picture are asked again
(`_asking_them`): a re-run that adds 1 % costs the index and about 30 times a
full run's questions per new picture, not everyone's (bench/README.md, "A
re-run's local proposal").
"""

from __future__ import annotations

import numpy as np

from curate.dedupe.search.knn import faiss  # imported there once its OpenMP threads are told to sleep
from curate.dedupe.verify import mirrored_descriptors

TOP = 128  # strongest descriptors of each picture that answer
ASK = 96  # of those, the strongest that ask (as they are and mirrored)
K = 8  # neighbours each descriptor asks for; the K-th is the crowd it must stand out from
RATIO = 0.8  # a vote: nearer than this times the K-th neighbour
MIN_VOTES = 6  # votes between two pictures that make them a candidate
PER_IMAGE = 5  # candidates each picture proposes at most (its best by votes)
EXACT = 8192  # descriptors searched exactly (a few pictures); beyond, PCA + an inverted file (`_index`)
DIMS = 32  # PCA dimensions of the approximate search
NPROBE = 4  # inverted lists each query looks in
LISTS = 2  # inverted lists: LISTS x sqrt(descriptors)
BLOCK = 65_536  # descriptors added or asking at a time (bounds the memory of a big catalogue)
FAST = 500_000  # answering descriptors (about 3,900 pictures) from which the lists hold 4-bit codes (`_index`)
CODES = f"PQ{DIMS}x4fs"  # one 4-bit code a PCA dimension, scanned with SIMD table look-ups
ALONE = 0.02  # new pictures under this share: they ask, with the questions that find them (`_asking_them`)
BACK = 4 * K  # a new descriptor's nearest, among which the old questions that may vote for it are looked for
WIDE = 4  # times as many inverted lists as `NPROBE` that search looks in (`_search_wide`)


def _unit(desc: np.ndarray, top: int) -> np.ndarray:
    d = desc[:top].astype(np.float32)
    return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)


def _index(n: int, rows, blocks) -> faiss.Index:
    """An index of the `n` answering descriptors, for Euclidean nearest neighbours; `rows(k)`: the
    descriptors at those positions (the training sample), `blocks()`: all of them, a block at a time
    (a catalogue's descriptors as float vectors are 4 times their bytes: 6.6 GB for 100,000 pictures).

    Exact for a few thousand descriptors; beyond, PCA to `DIMS` and an inverted file (faiss). From
    `FAST` descriptors the lists hold 4-bit codes, which faiss scans with SIMD table look-ups: at
    100,000 pictures a query costs 64 us in float lists, 11 in these. They code the vectors themselves,
    not their offsets from the list's centre: one look-up table a query, not one a list probed (5 us a
    query at 10,000 pictures against 9.5; the same at 100,000). Tried, not kept: sqrt(n) lists (no
    faster over a whole run); 2 lists probed would take 8 us a query (what it loses not measured). Below `FAST`
    the float lists stay: as fast at a few thousand pictures, and what every threshold was measured
    with (the benchmark corpora, 150,000 descriptors at most, give the same pairs as before). Not
    `search.knn`'s inner-product index: that suits the DCT descriptors, whose mean is zero, but PCA
    centres SIFT's all-positive descriptors, and centred inner products rank them wrongly (measured:
    1 candidate instead of 2,483)."""
    if n < EXACT:
        index = faiss.IndexFlatL2(128)
    else:
        nlist = int(LISTS * np.sqrt(n))
        lists = f"IVF{nlist},{CODES}" if n >= FAST else f"IVF{nlist},Flat"
        index = faiss.index_factory(128, f"PCA{DIMS},{lists}")
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.niter, ivf.cp.min_points_per_centroid = 8, 8
        if n >= FAST:  # codes of the vectors themselves, not of their offsets from the list's centre
            ivf.by_residual = False
        index.train(rows(np.random.default_rng(0).choice(n, min(n, nlist * 16), replace=False)))
        ivf.nprobe = NPROBE
    for block in blocks():
        index.add(block)
    return index


def _votes(index: faiss.Index, queries: np.ndarray, asker: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """(asking picture, answering picture) of every vote of one block of queries, each query voting
    at most once for each other picture."""
    dist, found = index.search(queries, min(K, index.ntotal))
    dist = np.sqrt(np.maximum(dist, 0.0))
    kth = dist.max(axis=1, initial=0.0, where=found >= 0)[:, None]
    other = owner[np.maximum(found, 0)]
    vote = (found >= 0) & (other != asker[:, None]) & (dist < RATIO * kth)
    rows, cols = np.nonzero(vote)
    n = int(owner.max()) + 1
    once = np.unique(rows.astype(np.int64) * n + other[rows, cols])
    return np.stack([asker[once // n], once % n], axis=1)


def _both_ways(descs: list[np.ndarray], top: int) -> np.ndarray:
    """Each of `descs`' `top` strongest as unit vectors, then all of them mirrored (`verify.mirrored`): a
    picture asks, and is looked for, as it is and as its mirror image."""
    descs = [d[:top] for d in descs]
    return np.concatenate([_unit(d, top) for d in descs] + [_unit(mirrored_descriptors(d), top) for d in descs])


def _asked(index: faiss.Index, desc: dict, ids: list[int], askers, owner: np.ndarray) -> np.ndarray:
    """(asking picture, answering picture) of every vote of the pictures at positions `askers`, each asking
    with its `ASK` strongest descriptors as they are and mirrored."""
    askers = list(askers)
    parts = [np.zeros((0, 2), np.int64)]
    per_block = max(1, BLOCK // (2 * ASK))
    for start in range(0, len(askers), per_block):  # a block of asking pictures at a time bounds the memory
        block = askers[start : start + per_block]
        asker = np.tile(np.repeat(np.array(block), [min(len(desc[ids[k]]), ASK) for k in block]), 2)
        parts.append(_votes(index, _both_ways([desc[ids[k]] for k in block], ASK), asker, owner))
    return np.concatenate(parts)


def _search_wide(index: faiss.Index, queries: np.ndarray, k: int) -> np.ndarray:
    """The rows `index.search` finds for `queries`, looking in `WIDE` times as many inverted lists (an exact
    index as it is): a new descriptor and a question near it may lie in neighbouring lists, and the
    question, when a full run asked it, looked in its own."""
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:  # the exact index
        return index.search(queries, k)[1]
    probe, ivf.nprobe = ivf.nprobe, ivf.nprobe * WIDE
    try:
        return index.search(queries, k)[1]
    finally:
        ivf.nprobe = probe


def _asking_them(
    index: faiss.Index,
    desc: dict,
    ids: list[int],
    fresh: np.ndarray,
    owner: np.ndarray,
    first: np.ndarray,
    counts: np.ndarray,
) -> np.ndarray:
    """The votes the other pictures' questions give the `fresh` ones, without everyone asking.

    An old picture's question votes for a new one when one of the new picture's answering
    descriptors is among its `K` nearest and clearly nearer than the K-th. Such a question is near
    that descriptor, so it is usually among the descriptor's `BACK` nearest (a mirrored question: among
    the mirrored descriptor's, mirroring moves both alike). Those questions alone are asked again, as a
    full run asks them, and their votes for new pictures kept. Measured on v6's descriptors against
    everyone asking (bench/README.md, "A re-run's local proposal"): none of the full run's candidates
    lost with `BACK` = 4 K and `WIDE` lists, 4 of 243 with `K`; more candidates (an old picture's best
    `PER_IMAGE` are chosen among its pairs with new pictures only), which verification turns down.
    `first`, `counts`: each picture's first row in the index and how many it has (`local_pairs`)."""
    found_by = [np.zeros(0, np.int64)]  # each question once (row x 2 + mirrored), whichever new pictures found it
    per_block = max(1, BLOCK // (2 * TOP))
    news = np.flatnonzero(fresh)
    for start in range(0, len(news), per_block):
        queries = _both_ways([desc[ids[k]] for k in news[start : start + per_block]], TOP)
        found = _search_wide(index, queries, min(BACK, index.ntotal))
        flip = np.broadcast_to((np.arange(len(queries)) >= len(queries) // 2)[:, None], found.shape)
        rows, flip = found[found >= 0], flip[found >= 0]
        who = owner[rows]
        asking = ~fresh[who] & (rows - first[who] < np.minimum(ASK, counts[who]))  # an old picture's question
        found_by.append(np.unique(rows[asking] * 2 + flip[asking]))
    questions = np.unique(np.concatenate(found_by))
    parts = [np.zeros((0, 2), np.int64)]
    for q in range(0, len(questions), BLOCK):
        row, mirror = np.divmod(questions[q : q + BLOCK], 2)
        who = owner[row]
        vectors = np.stack([desc[ids[w]][r - first[w]] for r, w in zip(row, who, strict=True)])
        mirror = mirror.astype(bool)
        vectors[mirror] = mirrored_descriptors(vectors[mirror])
        votes = _votes(index, _unit(vectors, len(vectors)), who, owner)
        parts.append(votes[fresh[votes[:, 1]]])
    return np.concatenate(parts)


def local_pairs(
    desc: dict[int, np.ndarray | None], new: set[int] | None = None, order: list[int] | None = None
) -> list[tuple[int, int, int]]:
    """(a, b, votes), a < b, for the candidate pairs (module docstring); `desc`: each picture's SIFT
    descriptors at `verify.COARSE` px, strongest first (uint8, at least the `TOP` strongest). With
    `new`, only the pairs touching one of those pictures: a pair's votes come from both ends, so with
    under `ALONE` of the pictures new, the new ones ask and the old questions that find them are asked
    again (`_asking_them`); with more, everyone asks (each picture's `PER_IMAGE` best are then chosen
    among all its pairs, not among its pairs with new pictures). `order`: the
    pictures in the order the index takes them (`curate.dedupe.pairs.load_codes`; default: by id)."""
    ids = [i for i in (sorted(desc) if order is None else order) if (d := desc.get(i)) is not None and len(d)]
    if len(ids) < 2:
        return []
    counts = np.array([min(len(desc[i]), TOP) for i in ids])
    owner = np.repeat(np.arange(len(ids)), counts)
    first = np.cumsum(counts) - counts  # each picture's first row among the answers
    answering = max(1, BLOCK // TOP)  # pictures whose answers are turned into floats at a time

    def rows(k: np.ndarray) -> np.ndarray:
        return _unit(np.stack([desc[ids[owner[r]]][r - first[owner[r]]] for r in k]), len(k))

    def blocks():
        for start in range(0, len(ids), answering):
            yield np.concatenate([_unit(desc[i], TOP) for i in ids[start : start + answering]])

    index = _index(len(owner), rows, blocks)
    fresh = None if new is None else np.array([i in new for i in ids])
    if fresh is not None and fresh.sum() < ALONE * len(ids):  # a few new pictures: they alone ask
        asking = np.flatnonzero(fresh)
        found = _asked(index, desc, ids, asking, owner)
        found = np.concatenate([found, _asking_them(index, desc, ids, fresh, owner, first, counts)])
    else:
        found = _asked(index, desc, ids, range(len(ids)), owner)
    a, b = found.T
    n = len(ids)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pairs, votes = np.unique(lo * n + hi, return_counts=True)
    keep = votes >= MIN_VOTES
    pairs, votes = pairs[keep], votes[keep]
    lo, hi = pairs // n, pairs % n
    chosen = np.zeros(len(pairs), bool)
    for side in (lo, hi):  # each picture's PER_IMAGE best, from either end of the pair
        order = np.lexsort((-votes, side))
        rank = np.arange(len(order)) - np.searchsorted(side[order], side[order])
        chosen[order[rank < PER_IMAGE]] = True
    ids_arr = np.array(ids)
    out = [
        (*sorted((int(ids_arr[x]), int(ids_arr[y]))), int(v))
        for x, y, v in zip(lo[chosen], hi[chosen], votes[chosen], strict=True)
    ]
    if new is not None:
        out = [p for p in out if p[0] in new or p[1] in new]
    return out
