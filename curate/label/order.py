"""In which order `curate label push` sends new images: as catalogued (default), seeded random, or the most
informative first (the model's uncertainty with a diversity term).

Label Studio's "Label All Tasks" stream, under the projects' default sequential sampling, hands tasks out in
task-id order, which is import order (tests/test_label_audit_studio.py checks this on a real server), so the
order of the import is the order the raters see.

Uncertainty: 1 − (p_top1 − p_top2), the margin between the model's two most likely classes (1 = a coin flip).
Diversity: greedy maximal-marginal-relevance selection — each next image maximises
uncertainty − DIVERSITY · (highest cosine similarity to an image already chosen), on the dedupe stage's CNN
embedding where it has one, else its 32×32 grey thumbnail. Similar-looking photos (dedupe already merged
near-duplicates) therefore spread out instead of filling the top of the list. Why our own ~20 lines: the
libraries that do active learning (modAL, baal) wrap a classifier and a training loop; here the model lives
in `train` and only its predictions reach curate.
"""

from __future__ import annotations

import hashlib
import json
import random
from enum import StrEnum
from pathlib import Path

import numpy as np
from sqlmodel import Session, select

from curate.errors import LabelError
from db.models.dedupe import DedupeCode

DIVERSITY = 0.5
GREEDY_MAX = 5000  # beyond this many candidates the tail keeps plain uncertainty order (greedy is O(n²))


class Order(StrEnum):
    catalogue = "catalogue"  # image id order (the default, as before)
    random = "random"
    uncertainty = "uncertainty"


def margin_uncertainty(probs: np.ndarray) -> np.ndarray:
    top = np.sort(probs, axis=1)[:, ::-1]
    second = top[:, 1] if probs.shape[1] > 1 else 1 - top[:, 0]
    return 1.0 - (top[:, 0] - second)


def diverse_order(uncertainty: np.ndarray, features: np.ndarray | None, weight: float = DIVERSITY) -> list[int]:
    """Indices, most informative first: greedy uncertainty − weight · max cosine similarity to those chosen."""
    n = len(uncertainty)
    by_u = list(np.argsort(-uncertainty, kind="stable"))
    if features is None or n < 2 or weight == 0:
        return [int(i) for i in by_u]
    head, tail = by_u[:GREEDY_MAX], by_u[GREEDY_MAX:]
    f = features[head].astype(np.float64)
    f = f - f.mean(0, keepdims=True)
    f /= np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    u = uncertainty[head]
    best_sim = np.full(len(head), -1.0)
    left = np.ones(len(head), dtype=bool)
    out = []
    for _ in range(len(head)):
        gain = np.where(left, u - weight * np.maximum(best_sim, 0.0), -np.inf)
        i = int(np.argmax(gain))
        out.append(head[i])
        left[i] = False
        best_sim = np.maximum(best_sim, f @ f[i])
    return [int(i) for i in out + tail]


def read_predictions(path: Path) -> dict[str, dict[str, float]]:
    """`train predict --json` output: a list of {"image": path, "probabilities": {class: p}}, keyed by the image's
    sha256 (the store's objects/ab/cdef… path spells it; any other file is hashed). An input predict could not
    read ({"image", "error"}) has no prediction: the push then names the image left without one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, list):  # `{}` was read as no predictions at all
            raise TypeError(f"a list of predictions, not {type(data).__name__}")
        out = {}
        for item in data:
            if "error" in item and "probabilities" not in item:  # an input predict could not read: no prediction
                continue
            p = Path(item["image"])
            sha = p.parent.name + p.name
            if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
                sha = hashlib.sha256(p.read_bytes()).hexdigest()
            out[sha] = {str(k): float(v) for k, v in item["probabilities"].items()}
        return out
    except FileNotFoundError as exc:
        raise LabelError(f"{path}: {exc.filename} not found") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise LabelError(f"{path} is not `train predict --json` output ({type(exc).__name__}: {exc})") from None


def order_ids(
    ids: list[int],
    order: Order,
    seed: int = 0,
    probs: dict[int, dict[str, float]] | None = None,
    features: dict[int, np.ndarray] | None = None,
) -> list[int]:
    """`ids` in the asked order; uncertainty needs a probability for every id."""
    if order == Order.catalogue or not ids:  # nothing to push: nothing to order (before: numpy's AxisError)
        return list(ids)
    if order == Order.random:
        out = list(ids)
        random.Random(seed).shuffle(out)
        return out
    probs = probs or {}
    missing = [i for i in ids if i not in probs]
    if missing:
        raise LabelError(
            f"{len(missing)} image(s) to push have no prediction (first: image {missing[0]}); run "
            "`train predict --run RUN --json $(curate label candidates) > predictions.json` first"
        )
    classes = sorted({k for i in ids for k in probs[i]})
    p = np.array([[probs[i].get(k, 0.0) for k in classes] for i in ids])
    feats = None
    if features and all(i in features for i in ids):
        feats = np.stack([features[i] for i in ids])
    return [ids[j] for j in diverse_order(margin_uncertainty(p), feats)]


def image_features(s: Session, ids: list[int]) -> dict[int, np.ndarray]:
    """Per image the dedupe stage's CNN embedding, else its grey thumbnail, as a float vector."""
    out: dict[int, np.ndarray] = {}
    for c in s.exec(select(DedupeCode).where(DedupeCode.image_id.in_(ids))).all() if ids else []:
        if c.embedding:
            out[c.image_id] = np.frombuffer(c.embedding, dtype=np.float16).astype(np.float32)
        else:
            out[c.image_id] = np.frombuffer(c.thumb, dtype=np.uint8).astype(np.float32)
    if len({v.shape for v in out.values()}) > 1:  # some embedded, some not: compare thumbnails for all
        thumbs = {
            c.image_id: np.frombuffer(c.thumb, dtype=np.uint8).astype(np.float32)
            for c in s.exec(select(DedupeCode).where(DedupeCode.image_id.in_(ids))).all()
        }
        out = thumbs if len({v.shape for v in thumbs.values()}) == 1 else {}
    return out
