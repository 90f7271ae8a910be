"""Rater quality (pure): each rater's agreement with the final consensus, their confusion matrix against it,
and a latent-class (Dawid–Skene) estimate of their accuracy that does not treat the consensus as the truth.

Why Dawid–Skene here is our own ~40 lines of numpy and not `crowd-kit`: crowd-kit (Apache-2.0) would fit the
licence, but it installs transformers, nltk, pyarrow and pandas for one EM routine, in a tool clinics run on
small machines; its `DawidSkene` also takes a pandas frame and gives no per-rater accuracy over the images
that rater saw, which is the number the report shows. The EM below is the textbook algorithm (Dawid & Skene
1979): start from the soft majority vote, alternate M (class prior and one confusion matrix per rater, with a
small additive smoothing so an unseen cell is not log 0) and E (posterior class per image) until the
posteriors stop moving. `bench/rater_quality.py` checks it against simulated raters whose accuracy is known
(within 0.006 for raters) and against crowd-kit's DawidSkene on the same votes (same numbers, 2-3x faster).

The reviewer's ratings are used too: they exist only where the two raters disagreed, which depends on observed
ratings only (missing at random), so the likelihood still estimates everyone's confusion without bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SMOOTHING = 0.01
MIN_DIAGNOSED = 100  # below this many images a person's estimate swings by 0.1 or more (bench), so none is shown


@dataclass
class DawidSkene:
    labels: list[str]
    raters: list[str]
    prior: list[float]  # class prevalence, `labels` order
    confusion: dict[str, list[list[float]]]  # rater -> P(rater says column | truth is row)
    accuracy: dict[str, float]  # rater -> expected share of their diagnoses that are right
    posterior: list[list[float]]  # per item (input order), P(truth = label)
    iterations: int
    converged: bool


def dawid_skene(
    items: list[dict[str, str]], labels: list[str] | None = None, max_iter: int = 500, tol: float = 1e-5
) -> DawidSkene:
    """`items`: per image, rater -> diagnosis (only who diagnosed it). `labels`: the classes (default: those used);
    a diagnosis outside `labels` is added. Accuracy of a rater is the mean, over the images they diagnosed, of
    the posterior probability that their diagnosis is the true one."""
    used = sorted({d for it in items for d in it.values()})
    labels = list(labels or []) + [d for d in used if d not in (labels or [])]
    raters = sorted({r for it in items for r in it})
    li, ri = {d: k for k, d in enumerate(labels)}, {r: k for k, r in enumerate(raters)}
    obs = np.array([(i, ri[r], li[d]) for i, it in enumerate(items) for r, d in it.items()], dtype=int).reshape(-1, 3)
    n, k, m = len(items), len(labels), len(raters)
    if n == 0 or k == 0:
        return DawidSkene(labels, raters, [0.0] * k, {}, {}, [], 0, True)
    item, rater, label = obs.T
    post = np.zeros((n, k))
    np.add.at(post, (item, label), 1.0)  # soft majority vote
    post /= np.maximum(post.sum(1, keepdims=True), 1e-12)
    it, converged = 0, False
    for it in range(1, max_iter + 1):  # noqa: B007 - read after the loop: the EM iterations run
        prior = (post.sum(0) + SMOOTHING) / (n + k * SMOOTHING)
        conf = np.full((m, k, k), SMOOTHING)
        np.add.at(conf, (rater, slice(None), label), post[item])  # conf[r, true, said] += P(true)
        conf /= conf.sum(2, keepdims=True)
        logp = np.tile(np.log(prior), (n, 1))
        np.add.at(logp, item, np.log(conf[rater, :, label]))
        new = np.exp(logp - logp.max(1, keepdims=True))
        new /= new.sum(1, keepdims=True)
        delta = float(np.abs(new - post).max())
        post = new
        if delta < tol:
            converged = True
            break
    right = post[item, label]
    acc = {r: float(right[rater == j].mean()) for j, r in enumerate(raters) if (rater == j).any()}
    return DawidSkene(
        labels,
        raters,
        prior.tolist(),
        {r: conf[j].tolist() for j, r in enumerate(raters)},
        acc,
        post.tolist(),
        it,
        converged,
    )


@dataclass
class RaterQuality:
    """One rater (or reviewer) against the final consensus and under the latent-class model."""

    rater: str
    role: str  # rater | reviewer | "rater, reviewer" (rated in one round, reviewed in another)
    diagnosed: int  # images this person gave a diagnosis for
    compared: int  # of those, images with a final consensus diagnosis (agreed or adjudicated) they did not decide
    agreement: float | None  # share of `compared` where they chose the consensus diagnosis
    estimated_accuracy: float | None  # Dawid–Skene; None when they diagnosed fewer than MIN_DIAGNOSED images
    labels: list[str]
    matrix: list[list[int]]  # rows: consensus diagnosis, columns: this person's, in `labels` order


def rater_quality(
    votes: list[dict[str, str]],
    roles: dict[str, str],
    consensus: list[str | None],
    labels: list[str],
    decided: list[str | None] | None = None,
) -> tuple[list[RaterQuality], DawidSkene]:
    """`votes`: per image, person -> diagnosis (raters and the reviewer); `roles`: person -> role shown;
    `consensus`: the image's final diagnosis or None (pending, discarded, excluded); `labels`: display order;
    `decided`: per image, the person whose choice the consensus is (a reviewer's), not compared with it there."""
    decided = decided if decided is not None else [None] * len(votes)
    if not len(votes) == len(consensus) == len(decided):
        raise ValueError(f"{len(votes)} images of votes but {len(consensus)} consensus diagnoses")
    seen = {d for v in votes for d in v.values()} | {c for c in consensus if c}
    labels = list(labels) + sorted(seen - set(labels))
    ds = dawid_skene(votes, labels)
    idx = {d: k for k, d in enumerate(labels)}
    out = []
    for person in ds.raters:
        matrix = [[0] * len(labels) for _ in labels]
        diagnosed = 0
        for v, c, by in zip(votes, consensus, decided, strict=True):
            if person not in v:
                continue
            diagnosed += 1
            if c is not None and by != person:
                matrix[idx[c]][idx[v[person]]] += 1
        compared = sum(map(sum, matrix))
        hits = sum(matrix[k][k] for k in range(len(labels)))
        out.append(
            RaterQuality(
                person,
                roles.get(person, "rater"),
                diagnosed,
                compared,
                round(hits / compared, 4) if compared else None,
                round(ds.accuracy[person], 4) if diagnosed >= MIN_DIAGNOSED else None,
                labels,
                matrix,
            )
        )
    out.sort(key=lambda q: (q.role != "rater", q.rater))
    return out, ds
