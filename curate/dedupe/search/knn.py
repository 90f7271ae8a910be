"""k nearest neighbours by inner product (cosine on unit vectors), on faiss.

Small problems are searched exactly (`IndexFlatIP`: one BLAS product per block
of queries). Beyond `EXACT_WORK` query x vector products, the vectors are first
reduced by PCA to `dims` and put in an inverted file of sqrt(n) lists (k-means on
16 vectors a list, 8 rounds), each list stored as 4-bit product-quantised codes
(2 dimensions a code) that faiss scans with SIMD table look-ups (`IVF…,PQ16x4fs`);
each query probes its `nprobe` nearest lists. The similarities returned are
then the codes' estimates, good enough to rank a near-duplicate first. The work
grows with n sqrt(n) rather than n squared. Near-duplicates sit far closer to
each other than to anything else, which is the case an inverted file handles
best; what it loses at each size is measured by `bench/dedupe.py --scale`
(planted copies found), bench/README.md, Scale.

Measured there on 100,000 pictures (1.1 M window vectors, 0.5 M queries of 31,
then 16 results; CPU seconds of one thread, 2026-11-30, load ~3): the former
4 sqrt(n) lists of float vectors took 6.7 s to train, 12.0 to fill and 34.3 to
search; sqrt(n) lists of fast-scan codes 0.6, 3.5 and 9.6-10.0, finding as many
planted copies (0.993 of 1,000). Tried and not kept: 16 or 24 PCA dimensions
(0.46 and 0.92 of the copies); an HNSW coarse quantiser (slower than the BLAS
one at a few thousand lists); 8-bit scalar codes (28 s to search); re-ranking
twice k codes on the PCA vectors (`RFlat`: twice the search time, same copies
found); nprobe 4 or 6 (0.987, 0.991); 2,048 lists with nprobe 6 (0.990, no faster).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# faiss's OpenMP threads wait for each other by sleeping, not spinning: on a 2-core machine shared
# with another process, spinning threads burnt the CPU the search needed (100,000 pictures at load
# ~3: 32-33 s spinning, 23.6 s sleeping). Read once, when faiss's OpenMP runtime loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss
import numpy as np

EXACT_WORK = 4e9  # query x vector products searched exactly (a few seconds of BLAS at most)
POINTS_PER_LIST = 16  # k-means training sample per inverted list


@dataclass
class NearestNeighbours:
    nprobe: int = 8
    dims: int = 32
    exact_work: float = EXACT_WORK
    seed: int = 0
    index: faiss.Index | None = None
    pca: faiss.PCAMatrix | None = None

    def exact(self, n_vectors: int, n_queries: int) -> bool:
        """Whether a search of this size is done exactly."""
        return float(n_vectors) * n_queries <= self.exact_work or n_vectors < 4096

    @property
    def approximate(self) -> bool:
        """Whether the built index is the inverted file (similarities from 4-bit codes)."""
        return self.pca is not None

    def build(self, vectors: np.ndarray, n_queries: int) -> NearestNeighbours:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, d = vectors.shape
        self.pca = None
        if self.exact(n, n_queries):
            self.index = faiss.IndexFlatIP(d)
            self.index.add(vectors)
            return self
        rng = np.random.default_rng(self.seed)
        nlist = int(np.sqrt(n))
        sample = vectors[rng.choice(n, min(n, nlist * POINTS_PER_LIST), replace=False)]
        self.pca = faiss.PCAMatrix(d, self.dims)
        self.pca.train(sample)
        codes = f"PQ{self.dims // 2}x4fs"  # 2 dimensions a 4-bit code
        self.index = faiss.index_factory(self.dims, f"IVF{nlist},{codes}", faiss.METRIC_INNER_PRODUCT)
        self.index.cp.niter = 8  # 8 k-means rounds: the default (25) costs more than the search
        self.index.cp.min_points_per_centroid = 8  # (and says so on stderr)
        self.index.nprobe = self.nprobe
        self.index.train(self.pca.apply(sample))
        self.index.add(self.pca.apply(vectors))
        return self

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query index, vector index, inner product) of each query's k nearest vectors."""
        if self.index is None:
            raise RuntimeError("build() the index before searching it")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.pca is not None:
            queries = self.pca.apply(queries)
        k = min(k, self.index.ntotal)
        if not len(queries) or not k:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
        sims, found = self.index.search(queries, k)
        q = np.repeat(np.arange(len(queries)), k)
        c, s = found.ravel(), sims.ravel()
        keep = c >= 0  # an inverted file can return fewer than k
        return q[keep], c[keep].astype(np.int64), s[keep]
