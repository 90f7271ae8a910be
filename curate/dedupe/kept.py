"""What verification keeps between looks at pictures, up to a byte budget: the grey pictures decoded
(`curate.dedupe.decode.Decodes`) and their local features (`curate.dedupe.pairs.Verifier`).

cachetools' LRU cache, sized in bytes by each value's arrays, with a lock around it: verification's
threads share it, and cachetools' caches are not thread-safe. A missing value is made outside the
lock, so no thread waits on another's work; two threads may both make one value (the same value),
and a value larger than the whole budget is handed out without being kept."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from contextlib import suppress
from threading import Lock
from typing import Generic, TypeVar

from cachetools import LRUCache

V = TypeVar("V")


class Kept(Generic[V]):
    def __init__(self, budget: int, size: Callable[[V], int]):
        self._cache: LRUCache = LRUCache(maxsize=budget, getsizeof=size)
        self._lock = Lock()
        self.hits = self.misses = 0

    @property
    def budget(self) -> int:
        return int(self._cache.maxsize)

    @property
    def used(self) -> int:
        """Bytes held now (never over `budget`)."""
        return int(self._cache.currsize)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._cache

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        """The value kept under `key`, or `make()`'s, kept when it fits (the least recently used go first)."""
        with self._lock:
            if key in self._cache:
                self.hits += 1
                return self._cache[key]
        value = make()
        with self._lock:
            self.misses += 1
            with suppress(ValueError):  # cachetools: larger than the whole budget, so not kept
                self._cache[key] = value
        return value
