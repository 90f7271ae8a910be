"""Image-level, out-of-fold view of a run, and what a clinic needs from it: calibrated
probabilities, the operating point, and bootstrap confidence intervals.

Reads the per-fold prediction rows `loop.evaluate_fold` made. Every train image gets the
probability of the one fold model that never saw it (out-of-fold, "train" below); test, test_roi and
external images get the mean of the fold models (the ensemble `predict`, `serve` and the exported
model use). Writes `<run>/oof_predictions.csv` and `<run>/triage.json`.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from curate.files import write_atomic
from train.bootstrap import group_bootstrap
from train.calibration import Platt, calibration_summary
from train.operating import rates, sensitivity_at_specificity, threshold_for_sensitivity

SETS = ("train", "test", "test_roi", "external")  # "train" = out-of-fold predictions of the train split
CI_METRICS = (
    "auc",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "sens_at_95_spec",
)


@dataclass
class ImageRow:
    set: str
    image_id: str
    file: str
    label: str
    is_positive: int | None
    fold: str  # held-out fold for train images; "" for the ensemble sets
    n_models: int
    probs: dict  # class -> probability (mean over fold models for ensemble sets)
    p_positive: float | None = None
    p_calibrated: float | None = None


def image_rows(rows: list[dict], classes: list, positive: str | None) -> list[ImageRow]:
    """One row per (set, image): out-of-fold for train, fold-model mean for the others."""
    by = defaultdict(list)
    for r in rows:
        by[("train" if r["set"] == "val" else r["set"], r["image_id"])].append(r)
    out = []
    for (s, image_id), rs in by.items():
        probs = {c: float(np.mean([float(r[f"p_{c}"]) for r in rs])) for c in classes}
        first = rs[0]
        out.append(
            ImageRow(
                s,
                image_id,
                first["file"],
                first["label"],
                int(first["label"] == positive) if positive else None,
                first["fold"] if s == "train" else "",
                len(rs),
                probs,
                probs[positive] if positive else None,
            )
        )
    order = {s: i for i, s in enumerate(SETS)}
    return sorted(out, key=lambda r: (order.get(r.set, 9), r.image_id))


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC as the Mann–Whitney statistic with mid-ranks (equals sklearn's roc_auc_score, tested;
    about 20× faster on small sets, which the bootstrap needs)."""
    n_pos = int(np.sum(y == 1))
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    r = rankdata(p)
    return float((r[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _table2(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """AUC, accuracy, precision, recall (= sensitivity), F1 of the positive class at `threshold`."""
    pred = p >= threshold
    tp = float(np.sum(pred & (y == 1)))
    fp = float(np.sum(pred & (y == 0)))
    fn = float(np.sum(~pred & (y == 1)))
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {
        "auc": auc(y, p),
        "accuracy": float(np.mean(pred == (y == 1))),
        "precision": prec,
        "recall": rec,
        "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
    }


def _all_metrics(threshold: float, op: float):
    def metric(y: np.ndarray, pp: np.ndarray) -> dict:
        raw, cal = pp[:, 0], pp[:, 1]
        r = rates(y, cal, op)
        return {
            **_table2(y, raw, threshold),
            **{k: r[k] for k in ("sensitivity", "specificity", "ppv", "npv")},
            "sens_at_95_spec": sensitivity_at_specificity(y, cal, 0.95),
        }

    return metric


def analyse(
    out: Path,
    rows: list[dict],
    classes: list,
    positive: str | None,
    groups: dict,
    threshold: float,
    target_sensitivity: float,
    seed: int,
    n_boot: int = 1000,
) -> dict:
    """Write oof_predictions.csv; for binary tasks also return calibration, operating point and CIs."""
    table = image_rows(rows, classes, positive)
    result: dict = {"file": "oof_predictions.csv"}
    if positive:
        train = [r for r in table if r.set == "train"]
        y_tr = np.array([r.is_positive for r in train])
        cal = Platt.fit(y_tr, np.array([r.p_positive for r in train]))
        for r in table:
            r.p_calibrated = float(cal(np.array([r.p_positive]))[0])
        op = threshold_for_sensitivity(y_tr, np.array([r.p_calibrated for r in train]), target_sensitivity)
        metric = _all_metrics(threshold, op)
        per_set = {}
        for s in SETS:
            rs = [r for r in table if r.set == s]
            if not rs:
                continue
            y = np.array([r.is_positive for r in rs])
            raw, calp = np.array([r.p_positive for r in rs]), np.array([r.p_calibrated for r in rs])
            point = metric(y, np.c_[raw, calp])
            ci = group_bootstrap(
                y, np.c_[raw, calp], [groups.get(r.image_id, r.image_id) for r in rs], metric, n_boot=n_boot, seed=seed
            )
            per_set[s] = {
                "n": len(rs),
                "n_positive": int(y.sum()),
                "calibration": calibration_summary(y, raw, calp),
                "operating_point": rates(y, calp, op),
                "metrics": point,
                "ci": {k: ci[k] for k in CI_METRICS if k in ci},
            }
        result |= {
            "positive_class": positive,
            "calibration": cal.as_dict(),
            "fit_on": "train (out-of-fold)",
            "target_sensitivity": target_sensitivity,
            "threshold": op,
            "table2_threshold": threshold,
            "bootstrap": {"n": n_boot, "seed": seed, "level": 0.95, "unit": "image group (cluster)"},
            "sets": per_set,
        }
    _write_table(out / "oof_predictions.csv", table, classes, result.get("threshold"), positive)
    return result


def _write_table(path: Path, table: list[ImageRow], classes: list, op: float | None, positive: str | None) -> None:
    buf = io.StringIO(newline="")
    cols = [
        "set",
        "image_id",
        "file",
        "label",
        "is_positive",
        "fold",
        "n_models",
        *[f"p_{c}" for c in classes],
        "p_positive",
        "p_positive_calibrated",
        "triage",
    ]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in table:
        w.writerow(
            {
                "set": r.set,
                "image_id": r.image_id,
                "file": r.file,
                "label": r.label,
                "is_positive": "" if r.is_positive is None else r.is_positive,
                "fold": r.fold,
                "n_models": r.n_models,
                **{f"p_{c}": round(r.probs[c], 6) for c in classes},
                "p_positive": "" if r.p_positive is None else round(r.p_positive, 6),
                "p_positive_calibrated": "" if r.p_calibrated is None else round(r.p_calibrated, 6),
                "triage": "" if op is None else ("refer" if r.p_calibrated >= op else "routine"),
            }
        )
    write_atomic(path, buf.getvalue())
