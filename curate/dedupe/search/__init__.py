"""Hamming-radius search back-ends, chosen by name.

Each back-end is a class that takes a distance function, is built with
`.build(codes)` and answers `.search(queries, radius)` with three arrays
(query index, code index, distance) for every pair within the radius. They
know nothing about images. `make_index(Backend.X, distance)` picks one; an
unknown name raises `ConfigError` listing the known ones. They serve `--method phash`;
the default method's proposal is k nearest neighbours on float descriptors (`knn`).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import numpy as np

from curate.dedupe.search.brute_force import BruteForceIndex
from curate.dedupe.search.multi_index import MultiIndexHashing
from curate.errors import ConfigError

Distance = Callable[[np.ndarray, np.ndarray], np.ndarray]


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance between uint64 codes (broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int16)


class Backend(StrEnum):
    AUTO = "auto"
    BRUTE_FORCE = "brute-force"
    MULTI_INDEX = "multi-index"


REGISTRY = {
    Backend.BRUTE_FORCE: BruteForceIndex,
    Backend.MULTI_INDEX: MultiIndexHashing,
}


def backend_named(name: str | Backend) -> Backend:
    try:
        return Backend(name)
    except ValueError:
        known = ", ".join(b.value for b in Backend)
        raise ConfigError(f"unknown search back-end {name!r}; choose one of: {known}") from None


def make_index(backend: str | Backend, n_codes: int, radius: int, distance: Distance = hamming):
    """An unbuilt index of the chosen back-end; AUTO picks the cheaper one for this size and radius."""
    backend = backend_named(backend)
    if backend is Backend.AUTO:
        mih = MultiIndexHashing.expected_candidates(n_codes, radius)
        backend = Backend.MULTI_INDEX if mih < n_codes / 8 else Backend.BRUTE_FORCE
    return REGISTRY[backend](distance)


__all__ = ["Backend", "BruteForceIndex", "MultiIndexHashing", "hamming", "make_index", "backend_named"]
