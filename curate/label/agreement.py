"""Inter-rater agreement (pure): Cohen's kappa and Gwet's AC1, overall and per diagnosis, and the confusion matrix.

AC1 sits beside kappa because kappa's chance term grows with the prevalence of the majority class: when one
diagnosis is rare, two raters who agree on 97 % of images can score a kappa near zero (the "kappa paradox",
Feinstein & Cicchetti 1990). AC1 (Gwet 2008) takes chance agreement from how far the raters' pooled
distribution is from uniform and stays close to the observed agreement in that case. scikit-learn, which
computes kappa here, has no AC1; the formula is a few lines, so it is written here rather than adding a
dependency for it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Agreement:
    n: int
    kappa: float | None
    observed: float | None
    per_diagnosis: dict[str, float | None]  # one vs rest Cohen's kappa
    labels: list[str]
    matrix: list[list[int]]  # rows: first rater, columns: second rater, in `labels` order
    ac1: float | None = None  # Gwet's AC1 over all declared diagnoses
    ac1_per_diagnosis: dict[str, float | None] = field(default_factory=dict)  # one vs rest AC1


def _kappa(a: list, b: list, labels: list[str] | None = None) -> float | None:
    from sklearn.metrics import cohen_kappa_score

    if not a or len(set(a) | set(b)) < 2:
        return None  # undefined when only one class was ever used
    k = float(cohen_kappa_score(a, b, labels=labels))
    return None if math.isnan(k) else round(k, 4)


def gwet_ac1(a: list, b: list, categories: int | None = None) -> float | None:
    """Gwet's AC1 for two raters: (p_o - p_e) / (1 - p_e), p_e = sum_k pi_k (1 - pi_k) / (q - 1), where pi_k is
    the share of all 2n ratings in category k and q the number of categories on the scale (`categories`;
    default: the categories either rater used). None when there is nothing to compare or q < 2."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} first ratings but {len(b)} second ratings")
    q = categories if categories is not None else len(set(a) | set(b))
    if not a or q < 2:
        return None
    po = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
    counts = Counter(a) + Counter(b)
    pe = sum((c / (2 * len(a))) * (1 - c / (2 * len(a))) for c in counts.values()) / (q - 1)
    return round((po - pe) / (1 - pe), 4) if pe < 1 else None


def agreement(pairs: list[tuple[str, str]], labels: list[str]) -> Agreement:
    """`pairs`: (first rater's diagnosis, second rater's diagnosis) per doubly-rated image; `labels`: the
    diagnosis codes in display order (a code no longer declared is appended, so no pair is dropped).
    AC1's q is the number of diagnoses on the scale (the declared list), not only those used."""
    from sklearn.metrics import confusion_matrix

    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    labels = list(labels) + sorted(set(a + b) - set(labels))
    used = {d: any(x == d or y == d for x, y in pairs) for d in labels}
    per = {d: _kappa([x == d for x in a], [y == d for y in b]) if used[d] else None for d in labels}
    per_ac1 = {d: gwet_ac1([x == d for x in a], [y == d for y in b], 2) if used[d] else None for d in labels}
    matrix = confusion_matrix(a, b, labels=labels).tolist() if pairs else [[0] * len(labels) for _ in labels]
    observed = round(sum(x == y for x, y in pairs) / len(pairs), 4) if pairs else None
    return Agreement(
        len(pairs), _kappa(a, b, labels), observed, per, labels, matrix, gwet_ac1(a, b, len(labels)), per_ac1
    )


def rater_agreement(images: Iterable, labels: list[str]) -> Agreement:
    """Agreement between the two blind raters over the images both diagnosed. `images`: objects with the
    image's `.ratings` in round order (`curate.label.recompute.ImageLabels`); the labelling report and the
    export's dataset card both call this, so they quote the same kappa."""
    pairs = [
        (i.ratings[0].diagnosis, i.ratings[1].diagnosis)
        for i in images
        if len(i.ratings) == 2 and i.ratings[0].diagnosis and i.ratings[1].diagnosis
    ]
    return agreement(pairs, labels)
