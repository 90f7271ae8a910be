"""How well does `curate label report` judge its raters? Simulated clinicians whose accuracy is known.

Each image gets a true diagnosis; two raters diagnose it blind (5-15 % wrong, class-dependent: errors go
mostly to look-alike diagnoses, some diagnoses are harder), one rater has a systematic bias (reads genital
herpes as mpox), and a reviewer diagnoses every disagreement. The real consensus rules (curate.label.consensus)
decide each image; then, per person, the true share right is set beside the Dawid-Skene estimate
(curate.label.raters) and beside agreement with the consensus (what a steward would otherwise read off).
Also: Cohen's kappa against Gwet's AC1 as one diagnosis gets rarer. Optionally the same EM from crowd-kit,
run in another interpreter that has it (`--crowdkit-python /path/to/python`), for comparison.

    .venv/bin/python bench/rater_quality.py [--n 2000] [--seeds 5] [--crowdkit-python PY]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.label.agreement import agreement
from curate.label.consensus import Rating, decide
from curate.label.raters import rater_quality

PREVALENCE = {
    "mpox": 35,
    "genital_herpes": 15,
    "genital_warts": 12,
    "primary_syphilis": 8,
    "secondary_syphilis": 5,
    "molluscum_contagiosum": 8,
    "dermatosis": 10,
    "healthy_skin": 7,
}
LOOK_ALIKES = {
    "mpox": ["genital_herpes", "molluscum_contagiosum", "primary_syphilis"],
    "genital_herpes": ["mpox", "primary_syphilis"],
    "genital_warts": ["molluscum_contagiosum", "dermatosis"],
    "primary_syphilis": ["genital_herpes", "mpox"],
    "secondary_syphilis": ["dermatosis"],
    "molluscum_contagiosum": ["genital_warts", "mpox"],
    "dermatosis": ["healthy_skin", "secondary_syphilis"],
    "healthy_skin": ["dermatosis"],
}
HARDNESS = {"primary_syphilis": 1.5, "secondary_syphilis": 1.4, "healthy_skin": 0.5, "genital_warts": 0.8}
CLASSES = list(PREVALENCE)


def scenarios() -> dict[str, tuple[dict[str, tuple[float, bool]], list[tuple[str, str]], str]]:
    """name -> (person -> (base error rate, biased?), rater pairs used in turn, reviewer)."""
    paper = {"A": (0.08, False), "B": (0.10, True), "R": (0.05, False)}
    rotating = {"A": (0.05, False), "B": (0.10, True), "C": (0.15, False), "D": (0.08, False), "R": (0.05, False)}
    pairs = [("A", "B"), ("A", "C"), ("A", "D"), ("B", "C"), ("B", "D"), ("C", "D")]
    return {
        "paper: 2 raters + reviewer": (paper, [("A", "B")], "R"),
        "4 raters in rotating pairs + reviewer": (rotating, pairs, "R"),
    }


def say(rng: random.Random, truth: str, error: float, biased: bool) -> str:
    if biased and truth == "genital_herpes" and rng.random() < 0.25:
        return "mpox"  # the systematic bias
    if rng.random() >= min(error * HARDNESS.get(truth, 1.0), 0.5):
        return truth
    if rng.random() < 0.7:
        return rng.choice(LOOK_ALIKES[truth])
    return rng.choice([c for c in CLASSES if c != truth])


def simulate(n: int, seed: int, people, pairs, reviewer):
    rng = random.Random(seed)
    truth = rng.choices(CLASSES, list(PREVALENCE.values()), k=n)
    votes, consensus, right = [], [], {p: [] for p in people}
    for i, t in enumerate(truth):
        a, b = pairs[i % len(pairs)]
        ra, rb = (Rating(p, say(rng, t, *people[p])) for p in (a, b))
        review = Rating(reviewer, say(rng, t, *people[reviewer])) if ra.diagnosis != rb.diagnosis else None
        o = decide([ra, rb], review)
        v = {r.rater: r.diagnosis for r in (ra, rb, review) if r}
        votes.append(v)
        consensus.append(o.diagnosis if o.status in ("agreed", "adjudicated") else None)
        for p, d in v.items():
            right[p].append(d == t)
    return truth, votes, consensus, {p: sum(x) / len(x) for p, x in right.items() if x}


def crowdkit_accuracy(python: str, votes: list[dict[str, str]]) -> tuple[dict[str, float], float]:
    """The same per-person number from crowd-kit's DawidSkene, run in `python` (which has crowd-kit)."""
    code = """import json, sys, time
import pandas as pd
from crowdkit.aggregation import DawidSkene
votes = json.load(sys.stdin)
df = pd.DataFrame([(i, w, l) for i, v in enumerate(votes) for w, l in v.items()], columns=["task", "worker", "label"])
t = time.perf_counter()
ds = DawidSkene(n_iter=500, tol=1e-5)
probas = ds.fit_predict_proba(df)
s = time.perf_counter() - t
df["p"] = [probas.at[t_, l] for t_, l in zip(df.task, df.label)]
print(json.dumps({"acc": df.groupby("worker").p.mean().to_dict(), "seconds": s}))"""
    out = subprocess.run([python, "-c", code], input=json.dumps(votes), capture_output=True, text=True, check=True)
    res = json.loads(out.stdout)
    return res["acc"], res["seconds"]


def rare_class_table(n: int, seed: int) -> list[tuple[float, float, float | None, float | None]]:
    """Two raters 95 % right on a yes/no question whose 'yes' gets rarer: (prevalence, observed, kappa, AC1)."""
    rng = random.Random(seed)
    rows = []
    for prev in (0.5, 0.2, 0.05, 0.02, 0.01):
        pairs = []
        for _ in range(n):
            t = rng.random() < prev
            pairs.append(tuple("yes" if (t if rng.random() < 0.95 else not t) else "no" for _ in range(2)))
        ag = agreement(pairs, ["yes", "no"])
        rows.append((prev, ag.observed, ag.kappa, ag.ac1))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="images per simulation (default: 2000)")
    ap.add_argument("--seeds", type=int, default=5, help="simulations per scenario (default: 5)")
    ap.add_argument("--crowdkit-python", help="an interpreter with crowd-kit installed, for comparison")
    args = ap.parse_args(argv)
    for name, (people, pairs, reviewer) in scenarios().items():
        errs_ds, errs_cons, errs_ck, secs, secs_ck = {}, {}, {}, [], []
        for seed in range(args.seeds):
            truth, votes, consensus, true_acc = simulate(args.n, seed, people, pairs, reviewer)
            roles = {p: "reviewer" if p == reviewer else "rater" for p in people}
            t = time.perf_counter()
            quality, ds = rater_quality(votes, roles, consensus, CLASSES)
            secs.append(time.perf_counter() - t)
            ck, ck_s = crowdkit_accuracy(args.crowdkit_python, votes) if args.crowdkit_python else ({}, None)
            secs_ck.append(ck_s)
            wrong = sum(c is not None and c != t for c, t in zip(consensus, truth, strict=True))
            decided = sum(c is not None for c in consensus)
            if seed == 0:
                print(
                    f"\n## {name}: {args.n} images, seed 0; {wrong} of {decided} consensus labels wrong "
                    f"({wrong / decided:.1%}); Dawid-Skene {ds.iterations} iterations\n"
                )
                head = (
                    "| person | role | base error | biased | images | true accuracy | Dawid-Skene | error | "
                    "agreement with consensus | error |"
                )
                if ck:
                    head += " crowd-kit DS | error |"
                print(head)
                print("|" + "---|" * (head.count("|") - 1))
            for q in quality:
                err_ds = ds.accuracy[q.rater] - true_acc[q.rater]  # also below MIN_DIAGNOSED
                err_c = q.agreement - true_acc[q.rater]
                errs_ds.setdefault(q.role, []).append(abs(err_ds))
                errs_cons.setdefault(q.role, []).append(abs(err_c))
                if ck:
                    errs_ck.setdefault(q.role, []).append(abs(ck[q.rater] - true_acc[q.rater]))
                if seed == 0:
                    e, b = people[q.rater]
                    row = (
                        f"| {q.rater} | {q.role} | {e:.0%} | {'yes' if b else 'no'} | {q.diagnosed} | "
                        f"{true_acc[q.rater]:.3f} | "
                        f"{ds.accuracy[q.rater]:.3f} | {err_ds:+.3f} | {q.agreement:.3f} | {err_c:+.3f} |"
                    )
                    if ck:
                        row += f" {ck[q.rater]:.3f} | {ck[q.rater] - true_acc[q.rater]:+.3f} |"
                    print(row)
        print(f"\nover {args.seeds} seeds, |estimate - truth| mean / max (target <= 0.03 for the raters):\n")
        print(
            "| who | Dawid-Skene | agreement with consensus |"
            + (" crowd-kit DS |" if errs_ck else "")
            + "\n|---|---|---|"
            + ("---|" if errs_ck else "")
        )
        for role, errs in errs_ds.items():
            cells = [errs, errs_cons[role]] + ([errs_ck[role]] if errs_ck else [])
            print(
                f"| {role}s ({len(errs)}) | "
                + " | ".join(f"{statistics.mean(e):.3f} / {max(e):.3f}" for e in cells)
                + " |"
            )
        print(
            f"\nseconds per run: Dawid-Skene {statistics.mean(secs):.2f}"
            + (f", crowd-kit {statistics.mean(secs_ck):.2f}" if errs_ck else "")
        )
    print(f"\n## Cohen's kappa vs Gwet's AC1: two raters 95 % right, yes/no, {args.n * 5} images each\n")
    print("| prevalence of yes | observed agreement | Cohen's kappa | Gwet's AC1 |\n|---|---|---|---|")
    for prev, obs, k, ac1 in rare_class_table(args.n * 5, 0):
        print(f"| {prev:.0%} | {obs:.3f} | {k:.3f} | {ac1:.3f} |")


if __name__ == "__main__":
    main()
