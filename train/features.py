"""The feature cache: a frozen backbone in eval mode maps an image to the same vector every epoch,
so compute it once per (image bytes, backbone, weights, preprocessing) and train the head on that.

Layout: ``<cache_dir>/<arch>-<weights hash>-<preset id>/<key[:2]>/<key>.f32`` where key is the
image's sha256 (plus augmentation index and seed for offline-augmented copies). Each entry is
32 bytes of sha256(payload) followed by the float32 payload, so a truncated or flipped entry is
detected, reported, and recomputed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from curate.files import write_atomic
from train.device import autocast
from train.presets import EvalPreset, ImageRef

log = logging.getLogger("train.features")


@dataclass
class CacheStats:
    hits: int = 0
    computed: int = 0
    corrupt: int = 0
    seconds: float = 0.0
    corrupt_keys: list = field(default_factory=list)


class FeatureCache:
    """Settings only; `get`/`put` do the work."""

    def __init__(self, root: Path, arch: str, weights_id: str, preset: EvalPreset, dim: int):
        wid = hashlib.sha256(weights_id.encode()).hexdigest()[:12]
        self.dir = Path(root) / f"{arch}-{wid}-{preset.id}"
        self.dim = dim
        self.stats = CacheStats()

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.f32"

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        digest, payload = blob[:32], blob[32:]
        if len(payload) != 4 * self.dim or hashlib.sha256(payload).digest() != digest:
            log.warning("feature cache entry %s is corrupt; recomputing it", path.name)
            self.stats.corrupt += 1
            self.stats.corrupt_keys.append(key)
            path.unlink(missing_ok=True)
            return None
        return np.frombuffer(payload, dtype=np.float32).copy()

    def put(self, key: str, vec: np.ndarray) -> None:
        payload = np.ascontiguousarray(vec, dtype=np.float32).tobytes()
        write_atomic(self._path(key), hashlib.sha256(payload).digest() + payload)  # an entry is whole or absent


@torch.no_grad()
def compute_features(
    backbone: nn.Module,
    items: Sequence[ImageRef],
    preset: EvalPreset,
    batch_size: int = 32,
    device: str = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Backbone outputs for `items`, in order (no cache)."""
    backbone.eval()
    out = []
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        x = torch.stack([preset(it.image()) for it in chunk]).to(device)
        with autocast(device):
            out.append(backbone(x).float().cpu().numpy())
        if on_batch:
            on_batch(len(chunk))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def extract(
    backbone: nn.Module,
    items: Sequence[ImageRef],
    preset: EvalPreset,
    cache: FeatureCache,
    batch_size: int = 32,
    device: str = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Features for `items` through the cache: read hits, compute and store misses."""
    feats: dict[str, np.ndarray] = {}
    missing: list[ImageRef] = []
    for it in items:
        if it.key in feats:
            continue
        vec = cache.get(it.key)
        if vec is None:
            missing.append(it)
            feats[it.key] = None  # placeholder, keeps duplicates from being computed twice
        else:
            feats[it.key] = vec
            cache.stats.hits += 1
    if on_batch and len(items) - len(missing):
        on_batch(len(items) - len(missing))
    for i in range(0, len(missing), batch_size):  # store per batch: an interrupted extraction keeps its work
        chunk = missing[i : i + batch_size]
        t0 = time.perf_counter()
        new = compute_features(backbone, chunk, preset, batch_size, device, on_batch)
        cache.stats.seconds += time.perf_counter() - t0
        for it, vec in zip(chunk, new, strict=True):
            cache.put(it.key, vec)
            feats[it.key] = vec
        cache.stats.computed += len(chunk)
    return torch.from_numpy(np.stack([feats[it.key] for it in items])) if items else torch.zeros(0, cache.dim)
