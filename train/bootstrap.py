"""95 % bootstrap confidence intervals that resample image *groups* (near-duplicate clusters), so
two photos of one lesion never count as independent evidence.

Written here rather than with scipy.stats.bootstrap: scipy resamples observations, not groups, and
one resample with a single class (AUC undefined) makes its whole interval NaN; here such resamples
are skipped (percentiles ignore NaN) and their number is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Metric = Callable[[np.ndarray, np.ndarray], dict]


def group_bootstrap(
    y: np.ndarray, p: np.ndarray, groups: list, metric: Metric, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
    """{name: {"lo", "hi"}} of every number `metric(y, p)` returns, percentile intervals over
    `n_boot` resamples of the groups (with replacement, seeded)."""
    y, p = np.asarray(y), np.asarray(p)
    uniq, inverse = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    members = [np.nonzero(inverse == g)[0] for g in range(len(uniq))]
    rng = np.random.default_rng(seed)
    draws: dict[str, list] = {}
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([members[g] for g in pick])
        for k, v in metric(y[idx], p[idx]).items():
            draws.setdefault(k, []).append(v if isinstance(v, float) else float(v))
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    out = {}
    for k, vals in draws.items():
        arr = np.asarray(vals, dtype=float)
        ok = ~np.isnan(arr)
        if ok.sum() == 0:
            out[k] = {"lo": math.nan, "hi": math.nan, "skipped": int(n_boot)}
            continue
        out[k] = {
            "lo": float(np.percentile(arr[ok], lo_q)),
            "hi": float(np.percentile(arr[ok], hi_q)),
            "skipped": int((~ok).sum()),
        }
    return out
