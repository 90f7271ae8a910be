"""Candidate pairs by a collage's panels: the fourth proposal, for a photo shown inside a figure.

A web page or an atlas often shows several photos side by side in one picture,
split by flat gutters (`curate.dedupe.decode.panels`); one of them may be in the
catalogue on its own too. The other proposals rank whole content boxes, which
a panel is a half to a ninth of: on a probe of 24 figures of 2-4 photos, a
photo and a figure holding it were never proposed for 11 of 72 such pairs. So
each panel's thumbnail (`THUMB` px, in the picture's eight flips and
quarter-turns) asks, among every picture's content box and every other panel,
for the `NEIGHBOURS` most alike (the same descriptor as `propose`'s whole
window; no floor, a rank). The pair then goes through the same verification as
every candidate, where a match inside one panel is "to review", never merged
(`curate.dedupe.verify.paneled`). Measured in bench/README.md (collages).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from curate.dedupe.dct import DIHEDRAL, DIMS, WINDOWS, apply_dihedral, descriptors
from curate.dedupe.search.knn import NearestNeighbours

NEIGHBOURS = 3  # pictures each panel proposes at most
ASK = NEIGHBOURS * len(DIHEDRAL) + 4  # nearest asked for each orientation, before its own collage is left out
CHUNK = 8192  # thumbnails described at a time
EXACT_WORK = 5e8  # query x picture products searched exactly (`curate.dedupe.whole`'s bound)


def panel_pairs(
    ids: Sequence[int],
    thumbs: Mapping[int, np.ndarray],
    panel_thumbs: Mapping[int, Sequence[np.ndarray]],
    new: set[int] | None = None,
) -> list[tuple[int, int, float]]:
    """(a, b, cosine), a < b, of the pairs the panels propose (module docstring). `panel_thumbs`: each
    collage's panels' thumbnails; `new` (an incremental run): only the pairs touching one of these."""
    ids = [i for i in ids if i in thumbs]
    if not panel_thumbs or len(ids) < 2:
        return []
    owners = ids + [i for i, ps in panel_thumbs.items() for _ in ps]  # each vector's picture
    pool = [thumbs[i] for i in ids] + [t for ps in panel_thumbs.values() for t in ps]
    vec = _described(pool)
    asking = [(i, t) for i, ps in panel_thumbs.items() for t in ps]
    queries = _described([apply_dihedral(t, d) for _, t in asking for d in range(len(DIHEDRAL))])
    nn = NearestNeighbours(exact_work=EXACT_WORK).build(vec, len(queries))
    q, c, sim = nn.search(queries, min(ASK, len(vec)))
    owner = np.array(owners, np.int64)
    asker = np.array([i for i, _ in asking], np.int64).repeat(len(DIHEDRAL))[q]
    panel = (q // len(DIHEDRAL)).astype(np.int64)
    answered: dict[int, dict[int, float]] = {}  # panel -> {picture: best cosine}, its NEIGHBOURS best pictures
    rows = zip(panel.tolist(), asker.tolist(), owner[c].tolist(), sim.tolist(), strict=True)
    for p, a, b, s in sorted(rows, key=lambda r: -r[3]):
        best = answered.setdefault(p, {})
        if a != b and (b in best or len(best) < NEIGHBOURS):
            best[b] = max(best.get(b, -1.0), s)
    pairs: dict[tuple[int, int], float] = {}
    for p, best in answered.items():
        a = asking[p][0]
        for b, s in best.items():
            key = (min(a, b), max(a, b))
            pairs[key] = max(pairs.get(key, -1.0), s)
    return sorted((a, b, s) for (a, b), s in pairs.items() if new is None or a in new or b in new)


def _described(thumbs: list[np.ndarray]) -> np.ndarray:
    """Whole-window descriptors (`curate.dedupe.dct.descriptors`) of `thumbs`, a chunk at a time."""
    out = np.empty((len(thumbs), DIMS), np.float32)
    for start in range(0, len(thumbs), CHUNK):
        out[start : start + CHUNK] = descriptors(np.stack(thumbs[start : start + CHUNK]), WINDOWS[:1])[:, 0]
    return out
