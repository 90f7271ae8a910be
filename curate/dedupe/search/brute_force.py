"""Exhaustive search, vectorised: every query against every code, in cache-sized blocks
spread over threads (numpy releases the GIL inside its loops, so both cores work)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class BruteForceIndex:
    def __init__(self, distance, block: int = 2_000_000, threads: int | None = None):
        self.distance = distance
        self.block = block  # query x code comparisons per step
        self.threads = threads or os.cpu_count() or 1
        self.codes: np.ndarray | None = None

    def build(self, codes: np.ndarray) -> BruteForceIndex:
        self.codes = np.ascontiguousarray(codes, dtype=np.uint64)
        return self

    def _block(self, queries: np.ndarray, start: int, radius: int):
        d = self.distance(queries[:, None], self.codes[None, :])
        q, c = np.nonzero(d <= radius)
        return q + start, c, d[q, c]

    def search(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.codes is None:
            raise RuntimeError("build() the index before searching it")
        queries = np.asarray(queries, dtype=np.uint64)
        rows = max(1, self.block // max(1, len(self.codes)))
        starts = range(0, len(queries), rows)
        with ThreadPoolExecutor(self.threads) as pool:
            parts = list(pool.map(lambda s: self._block(queries[s : s + rows], s, radius), starts))
        if not parts:
            return (np.empty(0, np.int64),) * 2 + (np.empty(0, np.int16),)
        q, c, d = (np.concatenate(x) for x in zip(*parts, strict=False))
        return q.astype(np.int64), c.astype(np.int64), d
