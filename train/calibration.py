"""Calibration of P(positive): Platt scaling fitted on out-of-fold predictions, and the measures
that say whether a probability can be trusted (ECE over 15 bins, Brier score, reliability diagram).

Why Platt (a logistic regression on logit p, scikit-learn) and not temperature scaling or isotonic:
the heads are trained on a class-balanced set (offline augmentation), so their probabilities carry
a 50/50 prior while the data does not; temperature scaling only rescales the logit and cannot move
that prior, Platt's intercept can. Isotonic regression needs far more than a few hundred
out-of-fold images, gives a step function with ties (it changes the ranking, hence AUC) and
overfits small sets; Platt has two parameters and keeps the ranking, so AUC is unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

from train.errors import TrainError
from train.outputs import save_figure

EPS = 1e-6
ECE_BINS = 15


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


# Platt's slope is negative when the model ranks mpox below the rest on its own out-of-fold predictions (worse
# than chance): fitted as it comes, it turned every decision around (P 0.50 "routine", P 0.47 "refer") without a
# word. Such a run is left uncalibrated, and says so wherever its decisions are shown.
INVERTED_METHOD = "none: out-of-fold ranking worse than chance"
INVERTED = (
    "the model ranks mpox below the other photos on its own out-of-fold predictions (worse than chance): its "
    "probabilities are left uncalibrated and its decisions are not fit for triage; train on more or better data"
)


# Every out-of-fold score the same (a model that learnt nothing): no slope to fit. Before, its zero slope was read
# as "worse than chance".
FLAT_METHOD = "none: out-of-fold scores all equal"
FLAT = (
    "the model gives every photo the same probability on its own out-of-fold predictions (it ranks nothing): its "
    "probabilities are left uncalibrated and its decisions are not fit for triage; train on more or better data"
)
ONE_CLASS_METHOD = "none: out-of-fold predictions of one class"  # nothing to fit a slope on
CALIBRATED = "platt"  # the method of a calibration that was applied


def method_of(calibration) -> str | None:
    """A calibration's method: of a `Platt`, its dict (metrics.json, an exported model's metadata) or None."""
    return calibration.get("method") if isinstance(calibration, dict) else getattr(calibration, "method", None)


def applied(calibration) -> bool:
    """Whether P(positive) is calibrated (Platt's fit was used); False for a run left uncalibrated and said so."""
    return method_of(calibration) == CALIBRATED


def unfit(calibration) -> str | None:
    """`INVERTED` or `FLAT` for a run left uncalibrated because it ranks worse than chance or not at all, else
    None. Every place that shows decisions says it: run, compare, predict, serve, the report and the model card."""
    return {INVERTED_METHOD: INVERTED, FLAT_METHOD: FLAT}.get(method_of(calibration))


@dataclass(frozen=True)
class Platt:
    """p_calibrated = sigmoid(a · logit(p) + b); identity is a=1, b=0."""

    a: float = 1.0
    b: float = 0.0
    method: str = CALIBRATED

    @classmethod
    def fit(cls, y: np.ndarray, p: np.ndarray) -> Platt:
        """Fit on out-of-fold (never on test) predictions; nearly unregularised (C=1e4)."""
        y = np.asarray(y).astype(int)
        x = logit(p)
        if not np.isfinite(x).all():  # before: scikit-learn's multi-line "Input X contains NaN"
            raise TrainError(
                f"{int((~np.isfinite(x)).sum())} out-of-fold prediction(s) are not numbers (NaN): training diverged; "
                "lower --lr or check the images"
            )
        if len(set(y.tolist())) < 2:
            return cls(method=ONE_CLASS_METHOD)
        if np.ptp(x) < 1e-9:
            return cls(method=FLAT_METHOD)
        lr = LogisticRegression(C=1e4, solver="lbfgs", max_iter=1000).fit(x[:, None], y)
        if lr.coef_[0, 0] <= 0:  # the out-of-fold scores rank positives below negatives: see INVERTED
            return cls(method=INVERTED_METHOD)
        return cls(float(lr.coef_[0, 0]), float(lr.intercept_[0]))

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a * logit(p) + self.b)))

    def as_dict(self) -> dict:
        return asdict(self)


def ece(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of P(positive): Σ_b n_b/N · |fraction positive − mean p| over
    equal-width bins (scikit-learn's calibration_curve has no bin counts, which ECE weighs by)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() / len(y) * abs(y[m].mean() - p[m].mean())
    return float(total)


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(brier_score_loss(np.asarray(y).astype(int), np.asarray(p, dtype=float), pos_label=1))


def calibration_summary(y: np.ndarray, p_raw: np.ndarray, p_cal: np.ndarray) -> dict:
    return {
        "n": int(len(y)),
        "ece_before": ece(y, p_raw),
        "ece_after": ece(y, p_cal),
        "brier_before": brier(y, p_raw),
        "brier_after": brier(y, p_cal),
    }


def reliability_figure(path, curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], plt) -> None:
    """One panel per set: observed fraction positive vs mean predicted probability, before and after."""
    from sklearn.calibration import calibration_curve

    fig, axes = plt.subplots(1, len(curves), figsize=(3.6 * len(curves), 3.6), squeeze=False)
    for ax, (name, (y, raw, cal)) in zip(axes[0], curves.items(), strict=True):
        for p, style, tag in ((raw, "o--", "before"), (cal, "s-", "after")):
            frac, mean = calibration_curve(y, p, n_bins=ECE_BINS, strategy="uniform")
            ax.plot(mean, frac, style, ms=3.5, lw=1.2, label=f"{tag} (ECE {ece(y, p):.3f})")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="mean predicted P(positive)",
            ylabel="fraction positive",
            title=f"Reliability: {name}",
        )
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
