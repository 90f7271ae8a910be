"""Inter-rater agreement (pure): Cohen's kappa overall and per diagnosis, and the confusion matrix."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Agreement:
    n: int
    kappa: float | None
    observed: float | None
    per_diagnosis: dict[str, float | None]
    labels: list[str]
    matrix: list[list[int]]  # rows: first rater, columns: second rater, in `labels` order


def _kappa(a: list[str], b: list[str], labels: list[str] | None = None) -> float | None:
    from sklearn.metrics import cohen_kappa_score

    if not a or len(set(a) | set(b)) < 2:
        return None  # undefined when only one class was ever used
    k = float(cohen_kappa_score(a, b, labels=labels))
    return None if math.isnan(k) else round(k, 4)


def agreement(pairs: list[tuple[str, str]], labels: list[str]) -> Agreement:
    """`pairs`: (first rater's diagnosis, second rater's diagnosis) per doubly-rated image; `labels`: the
    diagnosis codes in display order (a code no longer declared is appended, so no pair is dropped)."""
    from sklearn.metrics import confusion_matrix

    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    labels = list(labels) + sorted(set(a + b) - set(labels))
    per = {d: _kappa([x == d for x in a], [y == d for y in b]) if pairs else None for d in labels}
    per = {d: (None if not any(x == d or y == d for x, y in pairs) else k) for d, k in per.items()}
    matrix = confusion_matrix(a, b, labels=labels).tolist() if pairs else [[0] * len(labels) for _ in labels]
    observed = round(sum(x == y for x, y in pairs) / len(pairs), 4) if pairs else None
    return Agreement(len(pairs), _kappa(a, b, labels), observed, per, labels, matrix)
