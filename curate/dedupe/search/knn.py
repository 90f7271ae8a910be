"""k nearest neighbours by inner product (cosine on unit vectors), on faiss.

Small problems are searched exactly (`IndexFlatIP`: one BLAS product per block
of queries). Beyond `EXACT_WORK` query x vector products, an inverted file
(`IndexIVFFlat`, `nlist` ~ 4 sqrt(n) clusters trained on a sample; the queries
probe the `nprobe` nearest clusters) on vectors first reduced by PCA to `dims`,
so the work grows with n sqrt(n) rather than n squared. Near-duplicates sit far
closer to each other than to anything else, which is the case an inverted file
handles best; what it loses at each size is measured by `bench/dedupe.py --scale`
(planted copies found), bench/README.md, Scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

EXACT_WORK = 4e9  # query x vector products searched exactly (a few seconds of BLAS at most)


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

    def build(self, vectors: np.ndarray, n_queries: int) -> NearestNeighbours:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, d = vectors.shape
        self.pca = None
        if self.exact(n, n_queries):
            self.index = faiss.IndexFlatIP(d)
            self.index.add(vectors)
            return self
        rng = np.random.default_rng(self.seed)
        nlist = int(4 * np.sqrt(n))
        sample = vectors[rng.choice(n, min(n, nlist * 16), replace=False)]
        self.pca = faiss.PCAMatrix(d, self.dims)
        self.pca.train(sample)
        reduced = self.pca.apply(vectors)
        quantizer = faiss.IndexFlatIP(self.dims)
        self.index = faiss.IndexIVFFlat(quantizer, self.dims, nlist, faiss.METRIC_INNER_PRODUCT)
        self.index.cp.niter = 8  # k-means on 16 points a cluster, 8 rounds: the default costs more than the search
        self.index.cp.min_points_per_centroid = 8  # (and says so on stderr)
        self.index.train(self.pca.apply(sample))
        self.index.add(reduced)
        self.index.nprobe = self.nprobe
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
