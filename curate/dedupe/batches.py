"""Verification's pairs in batches whose pictures' local features fit in memory together.

Each picture is in several candidate pairs. Looked at in the order they were proposed, a picture's pairs
are far apart, and with room for a tenth of the pictures' features each picture's would be taken about
four times (a simulation on `bench/dedupe.py`'s candidates). Ordered by reverse Cuthill-McKee on the graph
of pairs (scipy), which numbers pictures so that the two ends of most pairs come close, pairs next to each
other share pictures: each picture's features are taken about twice with room for a tenth, once with room
for half. A catalogue whose pictures all fit is one batch, in the proposal's order."""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import reverse_cuthill_mckee


def batches(pairs: list[tuple[int, int]], needs: list[bool], room: int) -> list[list[int]]:
    """Indices into `pairs` (a, b), in batches holding at most `room` pictures of the pairs that `needs`
    features (the others need none and go in the first batch); every index once."""
    needing = np.flatnonzero(needs)
    pictures = sorted({i for k in needing for i in pairs[k]})
    if len(pictures) <= room:
        return [list(range(len(pairs)))]
    at = {p: k for k, p in enumerate(pictures)}
    ends = np.array([(at[pairs[k][0]], at[pairs[k][1]]) for k in needing], np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(ends)), (ends[:, 0], ends[:, 1])), shape=(len(pictures),) * 2).tocsr()
    rank = np.empty(len(pictures), np.int64)
    rank[reverse_cuthill_mckee(graph + graph.T, symmetric_mode=True)] = np.arange(len(pictures))
    ranked = rank[ends]
    out: list[list[int]] = [[k for k, n in enumerate(needs) if not n]]
    held: set[int] = set()
    for k in needing[np.lexsort((ranked.max(1), ranked.min(1)))].tolist():
        ends_k = set(pairs[k])
        if out[-1] and held and len(held | ends_k) > room:
            out.append([])
            held = set()
        out[-1].append(k)
        held |= ends_k
    return [b for b in out if b]
