"""Multi-index hashing (Norouzi et al.): split 64-bit codes into m chunks.

Two codes within Hamming distance r agree to within floor(r/m) bits on at
least one chunk (pigeonhole), so probing each chunk's sorted table with every
mask of at most floor(r/m) bits finds every pair; candidates are then checked
with the full distance. Sub-quadratic for small radii; all numpy.

Why not faiss `IndexBinaryMultiHash` (it has `range_search`): on the same
100k-style window codes (10,000 pictures, 880,000 dihedral queries against
110,000 window codes, radius 11, 4 x 16 bits, nflip 2) it took 68 s against
36 s for this version before the bucket table, with the same 38,978 results
(bench/README.md, Scale). Chunks of up to 24 bits are looked up in a
counting-sort bucket table (two gathers per probe) instead of a binary search,
and chunks take interleaved bits (`_keys`): 8.6 s -> 5.7 s there, same results.
"""

from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np


def _masks(bits: int, weight: int) -> np.ndarray:
    out = [0]
    for w in range(1, weight + 1):
        for idx in combinations(range(bits), w):
            out.append(sum(1 << i for i in idx))
    return np.array(out, dtype=np.uint64)


def _keys(codes: np.ndarray, j: int, m: int, b: int) -> np.ndarray:
    """Chunk j's key: bits j, j + m, j + 2m, … (interleaved, so every chunk mixes low and high
    frequencies; contiguous chunks put the always-zero DC bit and the most correlated bits
    together, and photo codes then crowd a few buckets)."""
    out = np.zeros(len(codes), np.uint64)
    one = np.uint64(1)
    for k in range(b):
        out |= ((codes >> np.uint64(j + k * m)) & one) << np.uint64(k)
    return out


class MultiIndexHashing:
    CHUNKS = (2, 4, 8)

    def __init__(self, distance, chunks: int | None = None):
        self.distance = distance
        self.chunks = chunks
        self.codes: np.ndarray | None = None

    @staticmethod
    def expected_candidates(n: int, radius: int, chunks: int | None = None) -> float:
        """Candidates per query if codes were uniform (for choosing m and the back-end)."""
        best = float("inf")
        for m in (chunks,) if chunks else MultiIndexHashing.CHUNKS:
            b = 64 // m
            probes = sum(comb(b, w) for w in range(radius // m + 1))
            best = min(best, m * probes * (1 + n / 2.0**b))
        return best

    def build(self, codes: np.ndarray) -> MultiIndexHashing:
        self.codes = np.ascontiguousarray(codes, dtype=np.uint64)
        return self

    def _pick_chunks(self, radius: int) -> int:
        if self.chunks:
            return self.chunks
        n = len(self.codes)
        return min(self.CHUNKS, key=lambda m: self.expected_candidates(n, radius, m))

    def search(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.codes is None:
            raise RuntimeError("build() the index before searching it")
        queries = np.asarray(queries, dtype=np.uint64)
        m = self._pick_chunks(radius)
        b = 64 // m
        masks = _masks(b, radius // m)
        n = len(self.codes)
        qs, cs, ds = [], [], []
        for j in range(m):
            table = _keys(self.codes, j, m, b)
            order = np.argsort(table, kind="stable")
            sorted_keys = table[order]
            bucket = None
            if b <= 24:  # bucket table: starts[key] .. starts[key + 1] are the codes with that key
                bucket = np.zeros((1 << b) + 1, np.int64)
                np.cumsum(np.bincount(table.astype(np.int64), minlength=1 << b), out=bucket[1:])
            qchunk = _keys(queries, j, m, b)
            for mask in masks:
                target = qchunk ^ mask
                if bucket is not None:
                    key = target.astype(np.int64)
                    lo, hi = bucket[key], bucket[key + 1]
                else:
                    lo = np.searchsorted(sorted_keys, target, side="left")
                    hi = np.searchsorted(sorted_keys, target, side="right")
                counts = hi - lo
                total = int(counts.sum())
                if not total:
                    continue
                hit = np.nonzero(counts)[0]
                counts, lo = counts[hit], lo[hit]
                qi = np.repeat(hit, counts)
                # position inside each run: a running index minus the run's start
                starts = np.repeat(np.cumsum(counts) - counts, counts)
                ci = order[np.repeat(lo, counts) + (np.arange(total) - starts)]
                d = self.distance(queries[qi], self.codes[ci])
                keep = d <= radius
                qs.append(qi[keep])
                cs.append(ci[keep])
                ds.append(d[keep])
        if not qs:
            return (np.empty(0, np.int64),) * 2 + (np.empty(0, np.int16),)
        q, c, d = np.concatenate(qs).astype(np.int64), np.concatenate(cs).astype(np.int64), np.concatenate(ds)
        _, first = np.unique(q * n + c, return_index=True)  # a pair can match on several chunks
        return q[first], c[first], d[first]
