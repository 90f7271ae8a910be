"""Rater quality (pure): Gwet's AC1 against hand-computed textbook values, Dawid–Skene against simulated raters
whose accuracy is known, and each rater's agreement and confusion matrix against the consensus."""

from __future__ import annotations

import random

import pytest

from curate.label.agreement import agreement, gwet_ac1
from curate.label.raters import dawid_skene, rater_quality


def _table(cells: dict[tuple[str, str], int]) -> tuple[list[str], list[str]]:
    a, b = [], []
    for (x, y), n in cells.items():
        a += [x] * n
        b += [y] * n
    return a, b


def test_ac1_kappa_paradox_feinstein_cicchetti():
    """Feinstein & Cicchetti (1990): 118 both yes, 5 yes/no, 2 no/yes, 0 both no (n=125). Observed agreement
    0.944; by hand, kappa = (0.944 - 0.94528) / (1 - 0.94528) = -0.0234 and, with pi_yes = 243/250 = 0.972,
    p_e = 2 * 0.972 * 0.028 = 0.054432, AC1 = (0.944 - 0.054432) / (1 - 0.054432) = 0.9408."""
    a, b = _table({("yes", "yes"): 118, ("yes", "no"): 5, ("no", "yes"): 2})
    assert gwet_ac1(a, b) == pytest.approx(0.9408, abs=1e-4)
    ag = agreement(list(zip(a, b, strict=True)), ["yes", "no"])
    assert ag.observed == pytest.approx(0.944) and ag.kappa == pytest.approx(-0.0234, abs=1e-4)
    assert ag.ac1 == pytest.approx(0.9408, abs=1e-4)


def test_ac1_three_categories_and_the_declared_scale():
    """10 images: 4 x/x, 3 y/y, 1 z/z, 1 x/y, 1 y/z. p_o = 0.8; of 20 ratings x 9, y 8, z 3, so
    sum pi(1-pi) = 0.2475 + 0.24 + 0.1275 = 0.615. q=3: p_e = 0.3075, AC1 = 0.4925 / 0.6925 = 0.7112.
    On a 4-diagnosis scale (w never used) q=4: p_e = 0.205, AC1 = 0.595 / 0.795 = 0.7484."""
    a, b = _table({("x", "x"): 4, ("y", "y"): 3, ("z", "z"): 1, ("x", "y"): 1, ("y", "z"): 1})
    assert gwet_ac1(a, b) == pytest.approx(0.7112, abs=1e-4)
    assert gwet_ac1(a, b, categories=4) == pytest.approx(0.7484, abs=1e-4)
    assert agreement(list(zip(a, b, strict=True)), ["x", "y", "z", "w"]).ac1 == pytest.approx(0.7484, abs=1e-4)


def test_ac1_edge_cases():
    assert gwet_ac1([], []) is None
    assert gwet_ac1(["x", "x"], ["x", "x"]) is None  # one category: nothing to tell apart
    assert gwet_ac1(["x", "y"], ["x", "y"]) == 1.0
    with pytest.raises(ValueError):
        gwet_ac1(["x"], ["x", "y"])


def test_rare_diagnosis_per_diagnosis_kappa_collapses_ac1_does_not():
    """A rare diagnosis on which the raters never both agree: one-vs-rest kappa near 0, AC1 near observed."""
    pairs = [("mpox", "mpox")] * 96 + [("mpox", "syphilis"), ("syphilis", "mpox")] * 2
    ag = agreement(pairs, ["mpox", "syphilis"])
    assert ag.per_diagnosis["syphilis"] < 0.05 and ag.ac1_per_diagnosis["syphilis"] > 0.9


def _simulate(n: int, seed: int) -> tuple[list[dict[str, str]], list[str], dict[str, float]]:
    """Two raters on every image (8 % and 12 % wrong, B calls herpes mpox 30 % of the time), a reviewer (5 %)
    on each disagreement; returns votes, truth and each person's true share right on the images they saw."""
    rng = random.Random(seed)
    classes, weights = ["mpox", "herpes", "warts", "syphilis", "other"], [40, 20, 15, 10, 15]
    truth = rng.choices(classes, weights, k=n)

    def say(t: str, noise: float, bias: bool = False) -> str:
        if bias and t == "herpes" and rng.random() < 0.3:
            return "mpox"
        return t if rng.random() > noise else rng.choice([c for c in classes if c != t])

    votes, right = [], {"A": [], "B": [], "C": []}
    for t in truth:
        v = {"A": say(t, 0.08), "B": say(t, 0.06, bias=True)}
        if v["A"] != v["B"]:
            v["C"] = say(t, 0.05)
        votes.append(v)
        for r, d in v.items():
            right[r].append(d == t)
    return votes, truth, {r: sum(x) / len(x) for r, x in right.items()}


def test_dawid_skene_recovers_known_accuracy():
    votes, truth, true_acc = _simulate(3000, seed=7)
    ds = dawid_skene(votes)
    assert ds.converged
    for r, acc in true_acc.items():
        assert abs(ds.accuracy[r] - acc) <= 0.03, (r, ds.accuracy[r], acc)
    # the biased rater's confusion shows it: herpes read as mpox far more than the reverse
    h, m = ds.labels.index("herpes"), ds.labels.index("mpox")
    assert ds.confusion["B"][h][m] > 0.2 and ds.confusion["B"][m][h] < 0.05
    # and the posterior beats the raters: the most likely class is right more often than either rater
    quality, _ = rater_quality(votes, {"C": "reviewer"}, [None] * len(votes), [])
    assert {q.rater: q.estimated_accuracy for q in quality} == {r: round(a, 4) for r, a in ds.accuracy.items()}
    picked = [ds.labels[max(range(len(p)), key=p.__getitem__)] for p in ds.posterior]
    assert sum(p == t for p, t in zip(picked, truth, strict=True)) / len(truth) > max(true_acc["A"], true_acc["B"])


def test_dawid_skene_empty_and_unanimous():
    assert dawid_skene([]).accuracy == {}
    ds = dawid_skene([{"A": "x", "B": "x"}, {"A": "y", "B": "y"}] * 20)
    assert ds.accuracy["A"] == pytest.approx(1.0, abs=0.01)


def test_rater_quality_against_consensus():
    votes = [
        {"a": "mpox", "b": "mpox"},
        {"a": "mpox", "b": "herpes", "c": "herpes"},
        {"a": "mpox", "b": "warts", "c": "syphilis"},
        {"a": "herpes"},
    ]
    consensus = ["mpox", "herpes", None, None]
    roles = {"a": "rater", "b": "rater", "c": "reviewer"}
    quality, _ = rater_quality(votes, roles, consensus, ["mpox", "herpes", "warts", "syphilis"])
    by = {q.rater: q for q in quality}
    assert [q.rater for q in quality] == ["a", "b", "c"]
    assert (by["a"].diagnosed, by["a"].compared, by["a"].agreement) == (4, 2, 0.5)
    assert by["a"].matrix[1][0] == 1 and by["a"].matrix[0][0] == 1  # consensus herpes, a said mpox
    assert (by["b"].compared, by["b"].agreement, by["c"].compared, by["c"].role) == (2, 1.0, 1, "reviewer")
    assert all(q.estimated_accuracy is None for q in quality)  # 4 images: too few for an estimate
    with pytest.raises(ValueError):
        rater_quality(votes, roles, consensus[:2], [])
