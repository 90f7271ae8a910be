"""The triage operating point: a threshold on calibrated P(positive) chosen on out-of-fold
predictions for a target sensitivity (missing mpox is the costly error), and the rates it gives."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_curve


def threshold_for_sensitivity(y: np.ndarray, p: np.ndarray, target: float) -> float:
    """Among thresholds whose sensitivity (p >= t) on (y, p) reaches `target`, those with the best
    specificity; of these the lowest (the most sensitive), placed midway to the next lower score so a
    new image with a score between the two is not decided by a hair. On separable scores this sits in
    the gap between the classes, not inside the positive cluster."""
    y = np.asarray(y).astype(int)
    if y.sum() == 0 or y.sum() == len(y):
        return 0.5
    fpr, tpr, thr = roc_curve(y, p, drop_intermediate=False)
    ok = np.nonzero(tpr >= target - 1e-12)[0]
    best = fpr[ok].min()
    i = int(ok[fpr[ok] <= best + 1e-12].max())
    t = float(thr[i]) if i + 1 >= len(thr) else float((thr[i] + thr[i + 1]) / 2)
    return min(max(t, 0.0), 1.0)


def rates(y: np.ndarray, p: np.ndarray, t: float) -> dict:
    """Sensitivity, specificity, PPV and NPV of `p >= t` (NaN when undefined). Plain counts: this
    runs thousands of times in the bootstrap, where sklearn's input checks dominate."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(p) >= t
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    tn = int(np.sum(~pred & ~y))

    def div(a, b):
        return float(a / b) if b else math.nan

    return {
        "sensitivity": div(tp, tp + fn),
        "specificity": div(tn, tn + fp),
        "ppv": div(tp, tp + fp),
        "npv": div(tn, tn + fn),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def sensitivity_at_specificity(y: np.ndarray, p: np.ndarray, spec: float = 0.95) -> float:
    """Best sensitivity over thresholds whose specificity on this set is >= `spec` (the ROC curve
    read at 1 − spec; equals sklearn's roc_curve reading, tested)."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=float)
    neg, pos = np.sort(p[~y])[::-1], p[y]
    if len(neg) == 0 or len(pos) == 0:
        return math.nan
    k = int(math.floor((1 - spec) * len(neg) + 1e-9))  # false positives allowed
    if k >= len(neg):
        return 1.0
    return float(np.mean(pos > neg[k]))
