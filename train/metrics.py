"""Metrics (scikit-learn, as in the paper) and fold summaries. Pure functions on arrays."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

METRICS = ["auc", "accuracy", "precision", "recall", "f1"]
METRIC_LABELS = {"auc": "AUC", "accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "f1": "F1-score"}
EVAL_SETS = {
    "test": "testing data set (before cropping)",
    "test_roi": "testing data set (with region of interest approach)",
    "external": "external validation data set",
}


def predicted_classes(probs: np.ndarray, positive: int | None, threshold: float) -> np.ndarray:
    """Predicted class index: binary tasks use the threshold on P(positive); others take argmax."""
    if positive is None:
        return probs.argmax(1)
    other = 1 - positive
    return np.where(probs[:, positive] >= threshold, positive, other)


def classification_metrics(y: np.ndarray, probs: np.ndarray, positive: int | None, threshold: float = 0.5) -> dict:
    """AUC, accuracy, precision, recall, F1. Binary: of the positive class; multi-class: macro (AUC one-vs-rest)."""
    pred = predicted_classes(probs, positive, threshold)
    if positive is not None:
        yb = (y == positive).astype(int)
        pb = (pred == positive).astype(int)
        auc = roc_auc_score(yb, probs[:, positive]) if len(set(yb)) == 2 else math.nan
        return {
            "auc": float(auc),
            "accuracy": float(accuracy_score(yb, pb)),
            "precision": float(precision_score(yb, pb, zero_division=0)),
            "recall": float(recall_score(yb, pb, zero_division=0)),
            "f1": float(f1_score(yb, pb, zero_division=0)),
            "n": int(len(y)),
        }
    labels = list(range(probs.shape[1]))
    try:
        auc = roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=labels)
    except ValueError:
        auc = math.nan
    return {
        "auc": float(auc),
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, average="macro", labels=labels, zero_division=0)),
        "recall": float(recall_score(y, pred, average="macro", labels=labels, zero_division=0)),
        "f1": float(f1_score(y, pred, average="macro", labels=labels, zero_division=0)),
        "n": int(len(y)),
    }


def summarise(per_fold: Iterable[dict]) -> dict:
    """Mean and sample SD (ddof=1; 0 for one fold) of each metric over the fold models where it is defined (a
    fold whose validation set holds one class has no AUC): `folds` says over how many, when not all. Before, one
    such fold made the mean NaN, shown as "nan (nan)"."""
    per_fold = list(per_fold)
    out = {}
    for m in METRICS:
        vals = np.array([np.nan if f[m] is None else f[m] for f in per_fold], dtype=float)
        vals = vals[np.isfinite(vals)]
        mean = float(np.mean(vals)) if len(vals) else math.nan
        out[m] = {"mean": mean, "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0 if len(vals) else math.nan}
        if len(vals) < len(per_fold):
            out[m]["folds"] = len(vals)
    return out


def fmt(stat: dict) -> str:
    """'0.928 (0.022)' as in Table 2; '—' where no fold defines it, '0.750 (0.354) [2 folds]' over some only."""
    mean, sd = stat.get("mean"), stat.get("sd")
    if mean is None or not math.isfinite(mean):
        return "\u2014"
    text = f"{mean:.3f} ({sd:.3f})" if sd is not None and math.isfinite(sd) else f"{mean:.3f}"
    return text + (f" [{stat['folds']} fold{'s' * (stat['folds'] != 1)}]" if "folds" in stat else "")


def roc(y: np.ndarray, p_pos: np.ndarray, positive: int):
    fpr, tpr, _ = roc_curve((y == positive).astype(int), p_pos)
    return fpr, tpr


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    return confusion_matrix(y, pred, labels=list(range(n_classes)))
