"""Candidate pairs by whole pictures: the third proposal, for copies whose content boxes were cut apart.

The content box (`curate.dedupe.content`) is cut where a band is as flat as
padding. On a photo whose own edge is smooth (a dark background, plain skin, a
grey sky), a tone curve, lower contrast or noise moves that cut: a copy's box
then holds another part of the photo than its original's, and the two box
thumbnails, which both other proposals rank by (`curate.dedupe.propose`,
`curate.dedupe.local`), no longer meet. The whole pictures still do when the
copy kept the photo's shape. So each picture whose box was cut asks, among the
pictures of its shape (aspect ratios within `SAME_SHAPE`) whose boxes were cut otherwise, for the
`NEIGHBOURS` whose whole picture is most alike: the same descriptor as
`propose`'s whole window, of the whole picture's thumbnail
(`curate.dedupe.decode.Decoded.whole`), in the picture's own orientation. No
floor: a rank, like `propose`'s, since on the benchmark the true pairs' cosines
go down to 0.38 while different pictures of one shape reach 0.999 (screenshots of
one app or web page around different photos). The pair then goes through the same verification as every
candidate; for two pictures of one shape with different boxes that is first
the thumbnail of both boxes together (`curate.dedupe.pairs.Verifier`).

Measured on `bench/dedupe.py`'s corpora (bench/README.md, Dedupe), against the
same code without this proposal: v6, 334 of 1,172 boxes cut, 370 pairs only
this proposal made (+9 % pairs to verify), recall 0.986 -> 0.991 (the three
thumbnail-sized copies of star-field and sky tiles never proposed before, whose
compressed edges the box cut into), precision 1.0000 both; `--edits`, 112 more
pairs, recall 0.923 -> 0.930 (a darker, a low-contrast and a noisy copy), the
same 25 false pairs; `--augmented` and `--stamped` unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from curate.dedupe.dct import DIMS, WINDOWS, descriptors
from curate.dedupe.search.knn import NearestNeighbours

SAME_SHAPE = 0.02  # aspect ratios (and box sides, as fractions) this close are one shape
NEIGHBOURS = 2  # pictures each cut picture proposes at most
ASK = NEIGHBOURS + 8  # nearest asked for, before those of another shape or the same box are left out
CHUNK = 8192  # thumbnails described at a time
# query x picture products searched exactly (about half a second); beyond, `search.knn`'s inverted file: 100,000
# pictures of one shape, a third of them cut, took 4.4 s exactly and 0.3 s so (bench/README.md, Scale)
EXACT_WORK = 5e8


def whole_pairs(
    ids: Sequence[int],
    thumbs: Mapping[int, np.ndarray],
    wholes: Mapping[int, np.ndarray],
    aspect: Mapping[int, float],
    boxes: Mapping[int, tuple[float, float, float, float]],
    new: set[int] | None = None,
) -> list[tuple[int, int, float]]:
    """(a, b, cosine), a < b, of the pairs the whole pictures propose (module docstring). `wholes`: the
    whole picture's thumbnail of each picture whose box was cut (the others' box thumbnail is their whole
    picture); `new` (an incremental run): only the pairs touching one of these, as a full search has them."""
    ids = [i for i in ids if i in thumbs and i in aspect]
    cut = np.array([i in wholes for i in ids], bool)
    if not cut.any() or len(ids) < 2:
        return []
    arr = np.array(ids, np.int64)
    vec = np.empty((len(ids), DIMS), np.float32)
    for start in range(0, len(ids), CHUNK):  # a chunk of thumbnails at a time: 100,000 of them are 400 MB
        chunk = np.stack([wholes[i] if i in wholes else thumbs[i] for i in ids[start : start + CHUNK]])
        vec[start : start + len(chunk)] = descriptors(chunk, WINDOWS[:1])[:, 0]
    shape = np.log(np.array([aspect[i] for i in ids], np.float64))
    box = np.array([boxes.get(i, (0.0, 0.0, 1.0, 1.0)) for i in ids], np.float64)
    # buckets one SAME_SHAPE wide: a picture's own shape and its neighbours' buckets hold every one within it
    bucket = np.floor(shape / np.log1p(SAME_SHAPE)).astype(np.int64)
    found: dict[tuple[int, int], float] = {}
    for b in np.unique(bucket[cut]):
        queries = np.flatnonzero(cut & (bucket == b))
        pool = np.flatnonzero(np.abs(bucket - b) <= 1)
        nn = NearestNeighbours(exact_work=EXACT_WORK)
        q, c, s = nn.build(vec[pool], len(queries)).search(vec[queries], ASK)
        qa, cb = queries[q], pool[c]
        keep = (
            (qa != cb)
            & (np.abs(np.exp(shape[qa] - shape[cb]) - 1) <= SAME_SHAPE)
            & (np.abs(box[qa] - box[cb]).max(1) > SAME_SHAPE)
        )
        qa, cb, s = qa[keep], cb[keep], s[keep]
        order = np.lexsort((-s, qa))  # each query's most alike first
        qa, cb, s = qa[order], cb[order], s[order]
        rank = np.arange(len(qa)) - np.searchsorted(qa, qa)
        for x, y, sim in zip(qa[rank < NEIGHBOURS], cb[rank < NEIGHBOURS], s[rank < NEIGHBOURS], strict=True):
            key = (int(min(arr[x], arr[y])), int(max(arr[x], arr[y])))
            found[key] = max(found.get(key, -1.0), float(sim))
    return sorted((a, b, sim) for (a, b), sim in found.items() if new is None or a in new or b in new)
