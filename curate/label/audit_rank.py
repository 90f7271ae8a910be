"""Rank likely label errors (pure): confident learning on the model's out-of-fold probabilities, combined with
what the raters said.

Why our own ~30 lines and not `cleanlab`: cleanlab is AGPL-3.0 and this toolkit is Apache-2.0, so it cannot
be a dependency. The part used here is small and textbook (Northcutt et al. 2021, "Confident learning"):
a per-class threshold t_j = mean self-confidence p_j over the images labelled j; an image labelled i is a
*confident issue* when some other class j has p_j >= t_j (the confident joint's off-diagonal; the class it
is assigned to is the argmax of p among the classes over their threshold).

The score combines two independent pieces of evidence about the true class:
  - the model (out-of-fold, so it never saw the image's own label), and
  - the raters and the reviewer, through a Dawid–Skene posterior (curate.label.raters) that weighs each
    person's learnt confusion matrix: an image both raters agreed on is less likely wrong than one a
    reviewer settled between two diagnoses.
q(c) ∝ p_model(c) · p_raters(c) / prior(c) (the prior appears in both), and score = 1 − q(consensus class):
the probability that the consensus is wrong. Images are ranked by that score; the confident-learning flag is
shown beside it and breaks ties. (Putting every confident issue first, as cleanlab's filter would, found fewer
errors in bench/label_audit.py: a weak model flags many right labels, and agreed-but-wrong ones sink below them.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curate.label.raters import dawid_skene

# Exponent on the raters' evidence: < 1 trusts it less than Dawid–Skene's independence assumption would (two
# clinicians share look-alike confusions, so their agreement is weaker evidence than the product says).
# bench/label_audit.py: 0.5 finds the most errors in the top K (0.85 vs 0.82 at 1.0 and 0.76 for the model alone).
RATER_WEIGHT = 0.5


@dataclass(frozen=True)
class Candidate:
    image_id: int
    given: str  # the consensus class
    probs: dict[str, float]  # model probabilities per class
    votes: dict[str, str]  # person -> class they said (raters, reviewer)
    disputed: bool = False  # the two raters gave different diagnoses
    reviewed: bool = False  # a reviewer decided


@dataclass(frozen=True)
class Ranked:
    image_id: int
    rank: int  # 1 = most likely wrong
    score: float  # estimated probability that the consensus is wrong
    self_confidence: float  # model's probability of the consensus class
    issue: bool  # confident-learning flag (model alone)
    suggested: str  # the confidently-assigned class of an issue, else the most likely under the combined evidence
    raters_disagreed: bool
    reviewed: bool


def thresholds(given: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per class j: mean p_j over the images labelled j (a class nobody carries gets 1, never reached)."""
    k = probs.shape[1]
    return np.array([probs[given == j, j].mean() if (given == j).any() else 1.0 for j in range(k)])


def confident_issues(given: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(True where the image's confidently-assigned class differs from its label, that class)."""
    t = thresholds(given, probs)
    above = probs >= t[None, :]
    masked = np.where(above, probs, -1.0)
    assigned = masked.argmax(1)
    return above.any(1) & (assigned != given), assigned


def rank(candidates: list[Candidate], classes: list[str]) -> list[Ranked]:
    """Every candidate, most likely label error first."""
    if not candidates:
        return []
    idx = {c: i for i, c in enumerate(classes)}
    given = np.array([idx[c.given] for c in candidates])
    probs = np.array([[c.probs.get(k, 0.0) for k in classes] for c in candidates], dtype=float)
    probs = np.clip(probs, 1e-6, 1.0)
    probs /= probs.sum(1, keepdims=True)
    issue, assigned = confident_issues(given, probs)
    votes = [c.votes for c in candidates]
    ds = dawid_skene(votes, list(classes))
    post = np.array(ds.posterior)[:, : len(classes)] if ds.posterior else np.full_like(probs, 1 / len(classes))
    prior = np.clip(np.array(ds.prior[: len(classes)]), 1e-6, None)
    q = probs * (np.clip(post, 1e-9, None) / prior[None, :]) ** RATER_WEIGHT
    q /= q.sum(1, keepdims=True)
    score = 1.0 - q[np.arange(len(candidates)), given]
    order = sorted(range(len(candidates)), key=lambda i: (-score[i], not issue[i], candidates[i].image_id))
    out = []
    for r, i in enumerate(order, 1):
        c = candidates[i]
        out.append(
            Ranked(
                c.image_id,
                r,
                round(float(score[i]), 6),
                round(float(probs[i, given[i]]), 6),
                bool(issue[i]),
                classes[int(assigned[i] if issue[i] else q[i].argmax())],
                c.disputed,
                c.reviewed,
            )
        )
    return out
