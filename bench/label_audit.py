"""Does model-assisted curation find the wrong labels, and label the informative images first?

Images: scikit-learn's bundled handwritten digits (1,797 real 8×8 scans, no download), digits 0-7 standing
for the study's eight diagnoses (bench/rater_quality.py's classes, look-alike confusions and hardness);
features: the pixels reduced by PCA (precomputed image features, so it runs in seconds on 2 cores).
Simulated clinicians as in bench/rater_quality.py: two raters (8 % and 12 % base error, class-dependent,
errors mostly to look-alike diagnoses; rater B reads genital herpes as mpox 25 % of the time) and a reviewer
(5 %) for every disagreement; the real consensus rules (curate.label.consensus) decide each image.

1. Audit. A model trained on the consensus gives out-of-fold probabilities (5 folds, as `train run` does);
   curate.label.audit_rank.rank (what `curate label audit` calls) ranks the images. Share of the consensus
   errors found in the top K = 2 × (number of errors), beside a random K and beside the model's
   self-confidence alone (cleanlab's default ranking).
2. Order. From a random 5 % start, batches of 5 % are labelled in the order `curate label push` would give
   (uncertainty of the current model with the diversity term, curate.label.order) or at random; labels needed
   until the model is within 0.01 AUC (macro one-vs-rest, held-out test third) of the model trained on all labels.
3. Rater quality: the Dawid-Skene estimate (curate.label.raters) against each simulated person's true accuracy.

The commands themselves run against a real Label Studio in tests/test_label_audit_studio.py; driving Label
Studio for ~1,400 images × 3 clinicians per seed would take ~10 minutes per seed here, so the benchmark calls
the same library functions on the simulated catalogue.

    .venv/bin/python bench/label_audit.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rater_quality import CLASSES, say

from curate.label.audit_rank import Candidate, rank
from curate.label.consensus import Rating, decide
from curate.label.order import diverse_order, margin_uncertainty
from curate.label.raters import rater_quality

SCENARIOS = {  # person -> (base error, reads genital herpes as mpox 25 % of the time)
    "paper: A 8 %, B 12 % (biased), reviewer 5 %": {"A": (0.08, False), "B": (0.12, True), "R": (0.05, False)},
    "noisier: A 15 % (biased), B 15 % (biased), reviewer 10 %": {
        "A": (0.15, True),
        "B": (0.15, True),
        "R": (0.10, False),
    },
}
PCA_DIM = 3  # few dimensions: a model about as good as the study's (AUC ~0.95-0.97), not a solved task


def images(seed: int):
    d = load_digits()
    keep = d.target < len(CLASSES)
    x = PCA(PCA_DIM, random_state=seed).fit_transform(d.data[keep] / 16.0)
    truth = [CLASSES[t] for t in d.target[keep]]
    return x, truth


def label(truth: list[str], seed: int, people: dict):
    """Two blind raters and a reviewer per image; the consensus under the paper's rules."""
    rng = random.Random(seed)
    votes, consensus, right = [], [], {p: [] for p in people}
    for t in truth:
        ra, rb = (Rating(p, say(rng, t, *people[p])) for p in ("A", "B"))
        review = Rating("R", say(rng, t, *people["R"])) if ra.diagnosis != rb.diagnosis else None
        o = decide([ra, rb], review)
        v = {r.rater: r.diagnosis for r in (ra, rb, review) if r}
        votes.append(v)
        consensus.append(o.diagnosis if o.status in ("agreed", "adjudicated") else None)
        for p, dx in v.items():
            right[p].append(dx == t)
    return votes, consensus, {p: sum(x) / len(x) for p, x in right.items()}


def model():
    return LogisticRegression(C=1.0, max_iter=2000)


def oof(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    p = np.zeros((len(y), len(CLASSES)))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y):
        m = model().fit(x[tr], y[tr])
        p[np.ix_(te, m.classes_)] = m.predict_proba(x[te])
    return p


def audit(x, truth, votes, consensus, seed: int) -> dict:
    idx = [i for i, c in enumerate(consensus) if c is not None]
    y = np.array([CLASSES.index(consensus[i]) for i in idx])
    p = oof(x[idx], y, seed)
    cands = [
        Candidate(
            i,
            consensus[i],
            dict(zip(CLASSES, p[n], strict=False)),
            votes[i],
            len({votes[i]["A"], votes[i]["B"]}) > 1,
            "R" in votes[i],
        )
        for n, i in enumerate(idx)
    ]
    wrong = {i for i in idx if consensus[i] != truth[i]}
    k = 2 * len(wrong)
    ours = {r.image_id for r in rank(cands, CLASSES)[:k]}
    selfconf = [idx[n] for n in np.argsort(p[np.arange(len(idx)), y], kind="stable")[:k]]
    rnd = random.Random(seed).sample(idx, k)
    return {
        "images": len(idx),
        "errors": len(wrong),
        "k": k,
        "ours": len(ours & wrong) / len(wrong),
        "self_confidence": len(set(selfconf) & wrong) / len(wrong),
        "random": len(set(rnd) & wrong) / len(wrong),
    }


def macro_auc(m, x, y) -> float:
    p = np.zeros((len(y), len(CLASSES)))
    p[:, m.classes_] = m.predict_proba(x)
    return float(roc_auc_score(y, p, multi_class="ovr", average="macro", labels=list(range(len(CLASSES)))))


def learning_curve(x, labels, test_x, test_y, order: str, seed: int, step: float = 0.025) -> list[tuple[int, float]]:
    """(labels used, test AUC) as batches are labelled in `order`; labels are the consensus (None: discarded)."""
    n = len(labels)
    rng = np.random.default_rng(seed)
    perm = list(rng.permutation(n))
    batch = max(1, int(step * n))
    chosen, rest = perm[:batch], perm[batch:]
    curve = []
    while True:
        usable = [i for i in chosen if labels[i] is not None]
        m = model().fit(x[usable], labels[usable].astype(int))
        curve.append((len(chosen), macro_auc(m, test_x, test_y)))
        if not rest:
            return curve
        if order == "uncertainty":
            p = np.zeros((len(rest), len(CLASSES)))
            p[:, m.classes_] = m.predict_proba(x[rest])
            picked = [rest[j] for j in diverse_order(margin_uncertainty(p), x[rest])[:batch]]
        else:
            picked = rest[:batch]
        chosen = chosen + picked
        taken = set(picked)
        rest = [i for i in rest if i not in taken]


def needed(curve, target: float) -> int:
    return next(n for n, auc in curve if auc >= target)


def order_bench(x, truth, consensus, seed: int) -> dict:
    n = len(truth)
    rng = np.random.default_rng(seed + 100)
    test = rng.random(n) < 1 / 3
    y_true = np.array([CLASSES.index(t) for t in truth])
    labels = np.array([CLASSES.index(c) if c is not None else -1 for c in consensus], dtype=object)
    labels = np.array([None if v == -1 else v for v in labels], dtype=object)
    pool = np.where(~test)[0]
    px, pl = x[pool], labels[pool]
    usable = [i for i in range(len(pool)) if pl[i] is not None]
    full = macro_auc(model().fit(px[usable], pl[usable].astype(int)), x[test], y_true[test])
    out = {"pool": len(pool), "full_auc": full}
    for order in ("uncertainty", "random"):
        curve = learning_curve(px, pl, x[test], y_true[test], order, seed)
        out[order] = needed(curve, full - 0.01) / len(pool)
        out[order + "_strict"] = needed(curve, full - 0.002) / len(pool)  # the digits saturate early: a finer gap too
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args(argv)
    m = lambda key, rows: statistics.mean(r[key] for r in rows)  # noqa: E731
    for name, people in SCENARIOS.items():
        audits, orders, dev, right = [], [], {p: [] for p in people}, {p: [] for p in people}
        for seed in range(args.seeds):
            x, truth = images(seed)
            votes, consensus, true_acc = label(truth, seed, people)
            audits.append(audit(x, truth, votes, consensus, seed))
            orders.append(order_bench(x, truth, consensus, seed))
            _, ds = rater_quality(votes, {"A": "rater", "B": "rater", "R": "reviewer"}, consensus, CLASSES)
            for p in people:
                dev[p].append(ds.accuracy[p] - true_acc[p])
                right[p].append(true_acc[p])
        print(f"\n# {name} ({args.seeds} seeds, {len(truth)} images each)")
        print("\n## Audit: share of the consensus errors in the top K = 2 x errors\n")
        print(
            "| seed | images with consensus | wrong | K | **curate label audit** | model self-confidence alone | "
            "random K |\n|---|---|---|---|---|---|---|"
        )
        for s_, a in enumerate(audits):
            print(
                f"| {s_} | {a['images']} | {a['errors']} ({a['errors'] / a['images']:.1%}) | {a['k']} | "
                f"**{a['ours']:.2f}** | "
                f"{a['self_confidence']:.2f} | {a['random']:.2f} |"
            )
        print(
            f"| mean | | | | **{m('ours', audits):.2f}** | {m('self_confidence', audits):.2f} | "
            f"{m('random', audits):.2f} |"
        )
        print("\n## Order: share of the pool labelled until within 0.01 macro AUC of the model on all labels\n")
        print(
            "| seed | pool | AUC, all labels | **uncertainty + diversity** | random | within 0.002: uncertainty | "
            "random |\n"
            "|---|---|---|---|---|---|---|"
        )
        for s_, o in enumerate(orders):
            print(
                f"| {s_} | {o['pool']} | {o['full_auc']:.3f} | **{o['uncertainty']:.1%}** | {o['random']:.1%} | "
                f"{o['uncertainty_strict']:.1%} | {o['random_strict']:.1%} |"
            )
        print(
            f"| mean | | | **{m('uncertainty', orders):.1%}** | {m('random', orders):.1%} | "
            f"{m('uncertainty_strict', orders):.1%} | {m('random_strict', orders):.1%} |"
        )
        print("\n## Rater quality: Dawid-Skene estimate minus true accuracy\n")
        print(
            "| person | base error | biased | true accuracy (mean) | estimate - truth (mean) | max abs "
            "|\n|---|---|---|---|---|---|"
        )
        for p, (e, b) in people.items():
            print(
                f"| {p} | {e:.0%} | {'yes' if b else 'no'} | {statistics.mean(right[p]):.3f} | "
                f"{statistics.mean(dev[p]):+.3f} | "
                f"{max(abs(v) for v in dev[p]):.3f} |"
            )
    print("\ntargets: audit >= 0.60 (random ~ K / images); order <= 60 % of the labels; rater quality within 0.03")


if __name__ == "__main__":
    main()
