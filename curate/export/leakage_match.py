"""Same-photo evidence for the leakage audit: local features, a descriptor index, geometric verification.

Why not CNN embeddings: on the benchmark corpus (`bench/leakage.py --skin 10 --cnn`, bench/README.md),
EfficientNet-Lite0 pooled ImageNet features with mirror TTA and the border cut found 16 % of
watermark+crop, 68 % of mirror+crop and 42 % of framed copies at cosine 0.90 while reporting 89 pairs of
different photos (plain-skin look-alikes, tiles of one texture); at the first cosine with no false pair
(0.975) they found almost none. Global features say "similar content", not "same photo". What a re-post
cannot change is the photo's local structure: OpenCV ORB keypoints on the content box (uniform borders
and frames cut away; a smooth photo's texture raised first, `_textured`; spread over a grid, so that a
burned-in watermark's lettering cannot take them all, `_spread`) are indexed in a faiss binary IVF
index; every image's descriptors (and those of its mirror image) vote for the images holding their
nearest neighbours, and each voted pair is verified by RANSAC on an affine transform
(the export stretches every photo to a square, so x and y scale differently). Inliers must cover a
real part of both images, so a shared watermark or caption (a thin band) cannot make two different
photos one. Two kinds of pairs pass that and are still different photos; they are set apart, not
reported: a site's stamp on many previews (`stamped`), and one object both photos show beside
different lesions, a clinic's ruler or colour card (`one_object`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from curate.imaging import IN_PLACE, STAMP_NCC, in_band, laid_correlation, pearson
from curate.parallel import run_parallel

N_FEATURES = 1000  # ORB keypoints kept per picture (and per mirror image)
DETECT_SPARE = 3  # corners detected per keypoint kept, so that `_spread` has some to choose among
GRID = 6  # `_spread`'s cells per side: one line of a watermark's lettering crosses a few of them
CELL_MOST = 45  # keypoints one cell keeps at most: 1.6 times its even share of `N_FEATURES`
HAMMING_MAX = 64  # of 256 bits: a descriptor neighbour farther than this does not vote
NEIGHBOURS = 4  # nearest descriptors fetched per query descriptor
MIN_VOTES = 6  # votes a pair needs before it is verified
MAX_CANDIDATES = 12  # candidate images verified per query image
RANSAC_PX = 4.0
MIN_COVER = 0.06  # inlier hull area / content area, in both images
THIRDS = 8  # third images tried per pair for its triangle (`stamped`): each may need a verification
OBJECT_AWAY = 0.3  # `one_object` asks when this share of the area both images show lies away from the agreement
OBJECT_NEAR = 0.12  # "away": farther than this share of the side from every agreeing keypoint
OBJECT_PATCH = 8  # px each side of a spot: the patch compared (17 x 17 at the export's 320 px)
OBJECT_BLUR = 1.5  # Gaussian sigma (px) before patches are compared: resampling blurs a rescaled copy's grain
OBJECT_NCC = 0.5  # a spot is alike when its two patches correlate at least this much
OBJECT_CONTRAST = 1.5  # a spot with this many times the contrast in one image is not compared (letters on one)
OBJECT_FLAT = 2.0  # nor one flat in both (grey levels of spread): no evidence either way
OBJECT_CELL = 16  # px: the spots in one square cell of this side vote once, alike when half of them are alike
OBJECT_TESTED = 8  # cells compared beyond the object needed to decide
OBJECT_AGREE = 0.2  # under this share of them alike: the agreement is one object's
BAND_ALIKE = 0.35  # `banded`: away from a band, a copy's detail correlates at least this much
DETAIL_SIGMAS = (2.0, 16.0)  # px: the difference of Gaussians that leaves a lesion and takes out light and grain
TEXTURE_LIGHT = 8.0  # px: Gaussian sigma of the light `_textured` keeps; what it takes out is the texture
TEXTURE_SPREAD = 8.0  # grey levels: the median texture magnitude `_textured` raises a smooth picture's to
TEXTURE_GAIN = 8.0  # at most this many times
START = "forkserver"  # workers that use OpenCV start from a clean process (`curate.parallel`)
QUERY_BLOCK = 16  # images whose queries one task of `match` answers (a worker's share at a time)
RAISED_TURN = 15.0  # degrees: a match with a smooth picture (`Features.raised`) turning it more is no evidence:
# one lesion's outline fits another's turned (different close-ups of one skin: 25-157 degrees; copies: 0-3)


@dataclass
class Features:
    """ORB keypoints (x, y in content-box pixels) and descriptors of an image and of its mirror image."""

    points: np.ndarray  # (n, 2) float32
    desc: np.ndarray  # (n, 32) uint8
    mpoints: np.ndarray
    mdesc: np.ndarray
    area: float  # content-box area in pixels
    raised: bool = False  # its texture was raised (`_textured`): a smooth picture


@dataclass(frozen=True)
class Match:
    i: int  # image index of the pair's first image (i < j)
    j: int
    inliers: int
    cover: float  # the smaller of the two images' inlier hull coverage
    mirrored: bool
    shift: tuple[float, float, float] | None = None  # the inliers' median move (x, y) from the query image's points
    # to the other's, and how far they stray from it (median distance): one move for all = laid in place
    query: int = -1  # which of i, j the query image is
    affine: tuple[float, ...] | None = None  # the query image (mirrored when `mirrored`) laid on the other: 2 x 3,
    # least squares over the inliers


_ORB = None  # this process's ORB detector (`_described`)
_SHARED: tuple | None = None  # what `_answer` needs, in the process answering queries (`_share`)


def _orb():
    import cv2

    cv2.setNumThreads(1)  # deterministic and polite on shared machines
    return cv2.ORB_create(nfeatures=N_FEATURES * DETECT_SPARE, fastThreshold=7, edgeThreshold=15, patchSize=15)


def _spread(orb, g: np.ndarray) -> tuple[list, np.ndarray | None]:
    """ORB keypoints and descriptors of `g`: its `N_FEATURES` strongest corners, at most `CELL_MOST` of them in
    one cell of a `GRID` x `GRID` grid.

    Without the cap, a burned-in watermark's lettering, whose corners are far stronger than plain skin's, took
    most of a smooth photo's keypoints, and its watermarked crop shared too few with the original: 70 of 100
    such copies (opaque lettering, `tests/photo_corpus.py`'s) and 0.94 of `bench/leakage.py --no-photos --skin 0
    --closeups 50`'s (semi-opaque) were found; with it, 100 of 100 and 1.00. The cost is on the stamp's side:
    different close-ups under one atlas's logo agree on it more often (`--no-photos --skin 0 --stamped 30`: 75
    → 238 of 375 pairs verified at 20 inliers), and `stamped` and `one_object` still leave out every one; and
    a grey clock tile shown in a four-photo figure (`--collages`) is no longer found (0.972 → 0.944; not looked
    into: perhaps a cell of the figure spans four of the tile's, so its cap keeps other corners)."""
    kp = orb.detect(g, None)
    if not kp:
        return [], None
    h, w = g.shape[:2]
    xy = np.float32([k.pt for k in kp])
    cell = np.minimum(xy[:, 1] * GRID // h, GRID - 1) * GRID + np.minimum(xy[:, 0] * GRID // w, GRID - 1)
    response = np.float32([k.response for k in kp])
    order = np.lexsort((-response, cell))  # by cell, strongest first
    rank = np.arange(len(order)) - np.searchsorted(cell[order], cell[order])
    kept = order[rank < CELL_MOST]
    kept = kept[np.argsort(-response[kept], kind="stable")][:N_FEATURES]
    return orb.compute(g, [kp[i] for i in sorted(kept.tolist())])


def _textured(gray: np.ndarray) -> tuple[np.ndarray, bool]:
    """`gray` with its texture (what a blur of `TEXTURE_LIGHT` takes out) raised by one gain, so that its median
    magnitude is `TEXTURE_SPREAD` grey levels, when it is less; a textured picture comes back as it is.

    A close-up of one lesion on plain skin keeps a few ORB corners at the export's 320 px, and its re-posted
    copies were found a quarter of the time (`bench/leakage.py --closeups 50`: 0.26, 0.28, 0.26 on watermark +
    crop, mirror + crop, white frame); with its pores raised, 0.76, 0.92, 0.58. One gain over the whole
    picture, not OpenCV's CLAHE (dedupe's evened look, `curate.dedupe.pairs`): CLAHE evens each tile of a grid
    that a crop or a frame moves, so a copy's corners came out elsewhere (0.36, 0.42, 0.24)."""
    import cv2

    g = gray.astype(np.float32)
    light = cv2.GaussianBlur(g, (0, 0), TEXTURE_LIGHT)
    texture = g - light
    gain = min(TEXTURE_GAIN, TEXTURE_SPREAD / max(float(np.median(np.abs(texture))), 1e-3))
    if gain <= 1.0:
        return gray, False
    return np.clip(light + texture * gain + 0.5, 0, 255).astype(np.uint8), True


def features(
    gray_images: Sequence[np.ndarray], tick: Callable[[int, int], None] | None = None, workers: int = 1
) -> list[Features]:
    """ORB on each grayscale content box (uint8, H×W), its texture raised when smooth (`_textured`), its
    keypoints spread over a grid (`_spread`), and on its mirror image, in `workers` processes (0: one per core);
    `tick(done, total)` after each."""
    out: list[Features] = []
    run_parallel(
        _described,
        gray_images,
        lambda done: out.extend(f for _, f in done),
        workers=workers,
        on_progress=tick,
        start=START,
    )
    return out


def _described(gray: np.ndarray) -> Features:
    """One picture's part of `features` (a worker's task: ORB is single-threaded, `_orb`)."""
    global _ORB
    _ORB = _ORB or _orb()
    g, raised = _textured(gray)
    kp, d = _spread(_ORB, g)
    kpm, dm = _spread(_ORB, np.ascontiguousarray(g[:, ::-1]))
    return Features(
        np.float32([k.pt for k in kp]).reshape(-1, 2),
        d if d is not None else np.zeros((0, 32), np.uint8),
        np.float32([k.pt for k in kpm]).reshape(-1, 2),
        dm if dm is not None else np.zeros((0, 32), np.uint8),
        float(g.shape[0] * g.shape[1]),
        raised,
    )


def _index(feats: list[Features]):
    """faiss binary IVF over every image's (plain) descriptors, trained on an evenly spaced sample."""
    import faiss

    base = np.concatenate([f.desc for f in feats])
    owner = np.concatenate([np.full(len(f.desc), k, np.int64) for k, f in enumerate(feats)])
    point = np.concatenate([f.points for f in feats])
    # faiss asks 39 training points per list, else it prints a warning on every small export's audit; under 39
    # descriptors in all (a few 32 px images) an exact index needs no training, and says nothing
    if len(base) < 39:
        flat = faiss.IndexBinaryFlat(256)
        flat.add(base)
        return flat, owner, point
    nlist = int(max(1, min(4096, np.sqrt(len(base)) // 1, len(base) // 39)))
    index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(256), 256, nlist)
    if len(base) >= nlist:
        index.train(base[:: max(1, len(base) // (40 * nlist))])
        index.add(base)
    index.nprobe = min(nlist, 8)
    return index, owner, point


def _cover(pts: np.ndarray, area: float) -> float:
    import cv2

    if len(pts) < 3 or area <= 0:
        return 0.0
    return float(cv2.contourArea(cv2.convexHull(pts.astype(np.float32)))) / area


@dataclass(frozen=True)
class Fit:
    """One pair's verification (`_verify`)."""

    inliers: int = 0
    cover: float = 0.0  # the smaller of the two images' inlier hull coverage
    shift: tuple[float, float, float] | None = None  # `Match.shift`
    keep: np.ndarray | None = field(default=None, compare=False)  # which points are the inliers


def _verify(src: np.ndarray, dst: np.ndarray, area_src: float, area_dst: float) -> Fit:
    """RANSAC affine fit from src to dst points."""
    import cv2

    if len(src) < MIN_VOTES:
        return Fit()
    cv2.setRNGSeed(0)
    _, mask = cv2.estimateAffine2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=2000, confidence=0.995, refineIters=0
    )
    if mask is None or not mask.any():
        return Fit()
    keep = mask.ravel().astype(bool)
    moves = dst[keep] - src[keep]
    median = np.median(moves, axis=0)
    shift = (float(median[0]), float(median[1]), float(np.median(np.hypot(*(moves - median).T))))
    cover = min(_cover(src[keep], area_src), _cover(dst[keep], area_dst))
    return Fit(int(keep.sum()), cover, shift, keep)


def _least_squares(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2 x 3 affine map that lays `src` points on `dst` (n x 2 each) with the least squared error."""
    ones = np.hstack([np.asarray(src, np.float64), np.ones((len(src), 1))])
    return np.linalg.lstsq(ones, np.asarray(dst, np.float64), rcond=None)[0].T


def compared(part: int, parts: np.ndarray) -> np.ndarray:
    """Which images an image of `part` is compared with. parts: fold number for train images, -1 for test and
    external: train with evaluation images, and train with train of another fold."""
    return (parts >= 0) & ((part < 0) | (parts != part)) | ((part >= 0) & (parts < 0))


def match(
    feats: list[Features],
    parts: np.ndarray,
    min_inliers: int,
    tick: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> list[Match]:
    """Verified pairs (i < j) with at least `min_inliers` inliers, among the pairs `compared` selects.

    Each image queries the index with its plain and its mirrored descriptors; a pair keeps its best
    verification over both directions and both orientations (the first found of equals, so the result does
    not depend on `workers`, processes that answer `QUERY_BLOCK` images' queries each: 0, one per core).
    `tick(done, total)` as the queries finish.
    """
    if not feats:
        return []
    import faiss

    total = 2 * len(feats)
    if tick:
        tick(0, total)  # the index is built first
    with _one_omp_thread():
        index, owner, point = _index(feats)
    if index.ntotal == 0:  # no image has a keypoint: nothing to compare
        if tick:
            tick(total, total)
        return []
    blocks = [
        [
            (q, m, *((f.mpoints, f.mdesc) if m else (f.points, f.desc)))
            for q, f in enumerate(feats[at : at + QUERY_BLOCK], at)
            for m in (False, True)
        ]
        for at in range(0, len(feats), QUERY_BLOCK)
    ]
    shared = (
        faiss.serialize_index_binary(index),
        owner,
        point,
        np.asarray(parts),
        np.array([f.area for f in feats]),
        np.array([f.raised for f in feats]),
        min_inliers,
    )
    best: dict[tuple[int, int], Match] = {}

    def keep(done: list) -> None:
        for _, found in done:
            for m in found:
                _keep_better(best, m)

    global _SHARED
    try:
        run_parallel(
            _answer,
            blocks,
            keep,
            workers=workers,
            start=START,
            chunksize=1,
            initializer=_share,
            initargs=shared,
            on_progress=tick and (lambda n, _: tick(min(total, 2 * QUERY_BLOCK * n), total)),
        )
    finally:
        _SHARED = None  # the index's copy, when the queries were answered in this process
    return sorted(best.values(), key=lambda m: (-m.inliers, m.i, m.j))


@contextmanager
def _one_omp_thread():
    """faiss on one OpenMP thread inside, as it was outside after: deterministic, and no OpenMP spinning on a
    shared machine or beside the other workers."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def _share(index: np.ndarray, *rest) -> None:
    """A worker's copy of what every query needs (`match`): the index (serialized), each descriptor's image
    and point, and each image's part, area and whether its texture was raised."""
    import faiss

    global _SHARED
    _SHARED = (faiss.deserialize_index_binary(index), *rest)


def _answer(queries: list[tuple[int, bool, np.ndarray, np.ndarray]]) -> list[Match]:
    """The best verified match per pair among one block of queries (image, mirrored, points, descriptors)."""
    index, owner, point, parts, areas, raised, min_inliers = _SHARED
    if not sum(len(d) for *_, d in queries):
        return []
    with _one_omp_thread():
        dist, nn = index.search(np.concatenate([d for *_, d in queries]), NEIGHBOURS)
    best: dict[tuple[int, int], Match] = {}
    offset = 0
    for q, mirrored, pts, desc in queries:
        d_q, nn_q = dist[offset : offset + len(desc)], nn[offset : offset + len(desc)]
        offset += len(desc)
        ok = (nn_q >= 0) & (d_q <= HAMMING_MAX)
        qrow = np.nonzero(ok)[0]
        cand = owner[nn_q[ok]]
        sel = compared(int(parts[q]), parts[cand])
        qrow, cand, hit = qrow[sel], cand[sel], nn_q[ok][sel]
        if not len(cand):
            continue
        ids, votes = np.unique(cand, return_counts=True)
        order = np.lexsort((ids, -votes))[:MAX_CANDIDATES]
        for c, v in zip(ids[order].tolist(), votes[order].tolist(), strict=True):
            if v < MIN_VOTES:
                break
            rows = cand == c
            # one match per query keypoint: its nearest neighbour in image c
            _, first = np.unique(qrow[rows], return_index=True)
            src, dst = pts[qrow[rows][first]], point[hit[rows][first]]
            fit = _verify(src, dst, areas[q], areas[c])
            if fit.inliers < min_inliers or fit.cover < MIN_COVER:
                continue
            key = (min(q, c), max(q, c))
            # least squares over the inliers: the RANSAC sample's fit strays by pixels away from them,
            # where `one_object` looks
            affine = tuple(float(v) for v in _least_squares(src[fit.keep], dst[fit.keep]).ravel())
            if (raised[q] or raised[c]) and abs(np.degrees(np.arctan2(affine[3], affine[0]))) > RAISED_TURN:
                continue
            _keep_better(best, Match(key[0], key[1], fit.inliers, round(fit.cover, 3), mirrored, fit.shift, q, affine))
    return list(best.values())


def _keep_better(best: dict[tuple[int, int], Match], m: Match) -> None:
    """`m` as its pair's match unless one found before has as many inliers and as much cover: the first of
    equals stays, within a block of queries and across blocks alike, so the pairs do not depend on `workers`."""
    key = (m.i, m.j)
    if key not in best or (m.inliers, m.cover) > (best[key].inliers, best[key].cover):
        best[key] = m


def _placed(a: np.ndarray, b: np.ndarray, shift, fa: tuple, fb: tuple) -> float | None:
    """The pixels' correlation of content boxes `a` and `b`, laid on each other as the two whole images
    are, when the matching keypoints' median move between the whole images and their median stray from
    it are both within `IN_PLACE` of the side (`shift`: `Match.shift`; `fa`, `fb`: each box's (x0, y0) and
    its image's width and height); else None. Medians, not the affine fit: a stamp's keypoints along one
    band fit any shear (0.47 measured) while every one of them stays where it was."""

    (ax, ay, _, _), (bx, by, bw, bh) = fa, fb
    tol = IN_PLACE * max(bw, bh)
    dx, dy = shift[0] + bx - ax, shift[1] + by - ay  # the move between the whole images: none when in place
    if shift[2] > tol or np.hypot(dx, dy) > tol:
        return None
    return laid_correlation(a, b, [[1.0, 0.0, ax - bx], [0.0, 1.0, ay - by]])


def _fit(fa: Features, fb: Features) -> Fit:
    """Verify one pair the index did not (two images of one part): nearest descriptors, then `_verify`."""
    if len(fa.desc) < MIN_VOTES or len(fb.desc) < MIN_VOTES:
        return Fit()
    return _verify(*_nearest(fa.points, fa.desc, fb), fa.area, fb.area)


def _nearest(points: np.ndarray, desc: np.ndarray, fb: Features) -> tuple[np.ndarray, np.ndarray]:
    """Each of `desc`'s nearest descriptor in `fb` (brute force) when near (`HAMMING_MAX`): the two
    keypoints' positions, float32 (n x 2 each)."""
    import cv2

    pairs = [m for m in cv2.BFMatcher(cv2.NORM_HAMMING).match(desc, fb.desc) if m.distance <= HAMMING_MAX]
    src = np.float32([points[m.queryIdx] for m in pairs]).reshape(-1, 2)
    dst = np.float32([fb.points[m.trainIdx] for m in pairs]).reshape(-1, 2)
    return src, dst


def stamped(
    matches: list[Match], grays: list[np.ndarray], feats: list[Features], frames: list[tuple], min_inliers: int
) -> set[tuple[int, int]]:
    """(i, j) of the matches that only a shared stamp explains: each laid in place (`_placed`: not a
    mirror image, the matching keypoints where they were in the two whole images) with pixels that do
    not correlate (`curate.imaging.STAMP_NCC`), among three images all so matched with each other. A stock
    site's or an atlas's watermark at one place on every preview gives different photos dozens of
    agreeing keypoints; a copy's in-place edits leave its pixels alike with its other copies. The audit
    compares no two images of one part, so a third side missing from `matches` is verified here, for at
    most `THIRDS` third images per pair (each may cost a brute-force match). The thresholds are dedupe's
    (`curate.dedupe.pairs.stamps`), where "in place" is a four-corner test of a similarity transform;
    margins in bench/README.md. `frames`: each content box's (x0, y0) and its image's width and height."""
    weak: dict[tuple[int, int], bool] = {}
    for m in matches:
        src, dst = (m.i, m.j) if m.query == m.i else (m.j, m.i)
        placed = not m.mirrored and m.shift is not None
        c = _placed(grays[src], grays[dst], m.shift, frames[src], frames[dst]) if placed else None
        weak[(m.i, m.j)] = c is not None and c < STAMP_NCC
    near: dict[int, set[int]] = {}
    for (i, j), w in weak.items():
        if w:
            near.setdefault(i, set()).add(j)
            near.setdefault(j, set()).add(i)

    def alike(x: int, y: int) -> bool:  # a weak side, verified now when the index never compared the two
        key = (min(x, y), max(x, y))
        if key not in weak:
            fit = _fit(feats[key[0]], feats[key[1]])
            ok = fit.inliers >= min_inliers and fit.cover >= MIN_COVER and fit.shift is not None
            c = _placed(grays[key[0]], grays[key[1]], fit.shift, frames[key[0]], frames[key[1]]) if ok else None
            weak[key] = c is not None and c < STAMP_NCC
        return weak[key]

    return {
        (i, j)
        for (i, j), w in list(weak.items())
        if w and any(alike(i, k) and alike(j, k) for k in sorted((near[i] | near[j]) - {i, j})[:THIRDS])
    }


def one_object(
    matches: list[Match], grays: list[np.ndarray], feats: list[Features], workers: int = 1
) -> set[tuple[int, int]]:
    """(i, j) of the matches whose agreement rests on one object both images show, while the rest of what
    they both show, where it has texture, differs (`object_spots`): a clinic's measuring ruler, colour card
    or label beside different patients' lesions. Its ticks and print hold most of an image's ORB keypoints
    (804 of 924 on a probe) and agree on one affine map, so such pairs pass `match` with 20-68 inliers.
    Dedupe's rule for the same case (`curate.dedupe.verify.one_object`) compares the keypoints both
    pictures already have away from the agreement; here there are too few of them, so spots are found
    anew there and compared as pixels. Margins (`bench/leakage.py --rulers`, `--stamped`, bench/README.md),
    as the share of cells alike beyond the object: different lesions beside one ruler or under one atlas's
    logo 0.00-0.20 (most under 0.06); re-posted copies (watermark + crop, mirror + crop, white frame) reach
    from their agreement over most cells, or keep 0.88 or more, but for a smooth tile's watermarked copy
    (0.09: its raised grain, resampled, is unlike everywhere beyond the one thing it shows).
    A site's banner along one side of both images is one object too (`banded`). Each match is looked at in
    one of `workers` processes (0: one per core)."""
    out = set()

    def keep(done: list) -> None:
        out.update((m.i, m.j) for (m, *_), alone in done if alone)

    tasks = [(m, {k: grays[k] for k in (m.i, m.j)}, {k: feats[k] for k in (m.i, m.j)}) for m in matches]
    run_parallel(_on_one_object, tasks, keep, workers=workers, start=START)
    return out


def _on_one_object(task: tuple[Match, dict[int, np.ndarray], dict[int, Features]]) -> bool:
    """Whether one match (with its two images' pictures and features) is one object's (`one_object`)."""
    m, grays, feats = task
    laid = _laid_on(m, grays, feats)  # once for both looks
    if laid is None:
        return False
    if banded(laid):
        return True
    spots = object_spots(laid)
    return spots is not None and spots[0] >= OBJECT_TESTED and spots[1] < OBJECT_AGREE * spots[0]


def banded(placed: Laid) -> bool:
    """Whether a match's agreement lies in a band along one side of both images (`curate.imaging.in_band`,
    dedupe's rule too) while, away from the band, the two differ (`BAND_ALIKE`): one news site's banner
    across the foot of different close-ups (flat, or a gradient with an emblem and lettering) gave 32-401
    inliers on it (`bench/leakage.py --templates`), and on plain skin there are too few textured spots away
    from it for `object_spots` to decide. A ruler lies along one side too, and a copy of a smooth photo
    beside it agrees on the ruler alone: what the two show away from it is compared as pixels, its lighting
    and its grain taken out (`_detail`), and a copy's lesion is there in both."""
    import cv2

    gc, gq_laid, shown, agreeing = placed.candidate, placed.laid, placed.shown, placed.agreeing
    (hq, wq), (hc, wc) = placed.query.shape[:2], gc.shape[:2]
    if not (in_band(placed.src, wq, hq) and in_band(agreeing, wc, hc)):
        return False
    lo, hi = np.percentile(agreeing, [10, 90], axis=0)
    away = shown > 0
    if hi[1] - lo[1] < hi[0] - lo[0]:  # a band across: the rows beside it
        rows = np.arange(hc)[:, None]
        away &= (rows < lo[1] - OBJECT_NEAR * hc) | (rows > hi[1] + OBJECT_NEAR * hc)
    else:
        cols = np.arange(wc)[None, :]
        away &= (cols < lo[0] - OBJECT_NEAR * wc) | (cols > hi[0] + OBJECT_NEAR * wc)
    away = cv2.erode(away.view(np.uint8), np.ones((9, 9), np.uint8)) > 0  # off the laid picture's edge
    if away.sum() < OBJECT_AWAY * away.size:
        return False  # too little beside the band to tell: a suspect stays one (no pair of the benches came here)
    return pearson(_detail(gq_laid)[away], _detail(gc)[away]) < BAND_ALIKE


def _detail(gray: np.ndarray) -> np.ndarray:
    """`gray` with its lighting and its grain taken out (a difference of Gaussians, `DETAIL_SIGMAS` px): what
    is left on plain skin is the lesion."""
    import cv2

    g = gray.astype(np.float32)
    fine, coarse = DETAIL_SIGMAS
    return cv2.GaussianBlur(g, (0, 0), fine) - cv2.GaussianBlur(g, (0, 0), coarse)


class Laid(NamedTuple):
    """A match's query image laid on its candidate (`_laid_on`), what `banded` and `object_spots` look at."""

    candidate: np.ndarray  # grey
    laid: np.ndarray  # the query, laid on the candidate by the least-squares map of the whole agreement
    shown: np.ndarray  # where the query shows there (255)
    agreeing: np.ndarray  # the agreeing keypoints in the candidate (n x 2)
    src: np.ndarray  # and in the query as matched
    query: np.ndarray  # grey, as matched (mirrored or not)


def _laid_on(m: Match, grays: Mapping[int, np.ndarray], feats: Mapping[int, Features]) -> Laid | None:
    """The match's query laid on its candidate, or None when the match kept no map or agrees on under 3
    keypoint pairs."""
    import cv2

    if m.affine is None:
        return None
    q, c = (m.i, m.j) if m.query == m.i else (m.j, m.i)
    gq, gc = (_textured(grays[k])[0] if feats[k].raised else grays[k] for k in (q, c))  # as their keypoints saw them
    gq = np.ascontiguousarray(gq[:, ::-1]) if m.mirrored else gq
    h, w = gc.shape
    agreement = _agreement(feats[q], feats[c], m.mirrored, np.float64(m.affine).reshape(2, 3))
    if agreement is None:
        return None
    src, agreeing = agreement
    affine = _least_squares(src, agreeing)  # over all of it: the index's inliers were a part, and a ruler's
    # one part (its ticks repeat) lays plain skin a pixel or two amiss
    laid = cv2.warpAffine(gq, affine, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    shown = cv2.warpAffine(np.full(gq.shape, 255, np.uint8), affine, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    return Laid(gc, laid, shown, agreeing, src, gq)


def object_spots(placed: Laid) -> tuple[int, int] | None:
    """(cells compared, cells alike) beyond the object a match agrees on (`placed`), or None when the agreement,
    or what is alike reaching out from it, covers most of what both images show (a copy's does).

    The query image is laid on the other by the match's affine map. Its agreement is every keypoint pair
    with near descriptors that the map lays on each other (the index's few neighbours found part of it: a
    ruler's far end, left out, was alike in both). Away from them (`OBJECT_NEAR`; not their convex hull,
    which one chance agreement far off swells over the photo), ORB finds corners in either image; at each,
    the two patches (`OBJECT_PATCH`, after a blur of `OBJECT_BLUR`) are alike when they correlate
    (`OBJECT_NCC`). A spot with structure in one image only (`OBJECT_CONTRAST`: a burned-in watermark's
    letters, a lesion where the other photo has plain skin) or in neither (`OBJECT_FLAT`) says nothing and
    is skipped. Pixels, not ORB descriptors: few spots away from a ruler have a keypoint in both images.

    Spots vote by square cells (`OBJECT_CELL`), and cells alike that touch the agreement, or touch such a cell,
    belong to the object, not to what lies beyond it: an atlas's logo keeps the agreement, but its line of
    small print, too fine for ORB to agree on, held most of the spots alike (243 of 429) between different
    close-ups of one skin, whose pores beyond it differ. A copy's alike cells reach over the picture from its
    agreement: when they are at least as many as the cells left, there is no object apart from the photo."""
    import cv2

    gc, laid, shown, agreeing = placed.candidate, placed.laid, placed.shown, placed.agreeing
    h, w = gc.shape
    away = np.full((h, w), 255, np.uint8)
    for x, y in np.round(agreeing).astype(int).tolist():
        cv2.circle(away, (x, y), round(OBJECT_NEAR * max(h, w)), 0, -1)
    agreed = (away == 0) & (shown > 0)
    away &= cv2.erode(shown, np.ones((2 * OBJECT_PATCH + 3,) * 2, np.uint8))  # whole patches of both
    if np.count_nonzero(away) < OBJECT_AWAY * np.count_nonzero(shown):
        return None
    orb = cv2.ORB_create(nfeatures=300, fastThreshold=7, edgeThreshold=15, patchSize=15)
    spots = [k.pt for g in (gc, laid) for k in orb.detect(g, away)]
    if not spots:
        return 0, 0
    xy = np.unique(np.round(np.float32(spots)).astype(np.int64), axis=0)
    r = OBJECT_PATCH
    xy = xy[(xy[:, 0] >= r) & (xy[:, 1] >= r) & (xy[:, 0] < w - r) & (xy[:, 1] < h - r)]
    if not len(xy):
        return 0, 0
    offsets = np.arange(-r, r + 1)
    rows = (xy[:, 1, None, None] + offsets[None, :, None]).repeat(2 * r + 1, axis=2)
    cols = (xy[:, 0, None, None] + offsets[None, None, :]).repeat(2 * r + 1, axis=1)
    pa, pb = (
        cv2.GaussianBlur(g, (0, 0), OBJECT_BLUR).astype(np.float32)[rows, cols].reshape(len(xy), -1) for g in (gc, laid)
    )
    pa -= pa.mean(axis=1, keepdims=True)
    pb -= pb.mean(axis=1, keepdims=True)
    sa, sb = np.sqrt((pa * pa).mean(axis=1)), np.sqrt((pb * pb).mean(axis=1))
    lo, hi = np.minimum(sa, sb), np.maximum(sa, sb)
    compared = (lo >= OBJECT_FLAT) & (hi <= OBJECT_CONTRAST * lo)
    ncc = (pa * pb).mean(axis=1) / np.maximum(sa * sb, 1e-9)
    # one vote a cell: corners crowd along lettering (243 of 429 spots on one line of a stamp's small print)
    gh, gw = -(-h // OBJECT_CELL), -(-w // OBJECT_CELL)
    at = (xy[compared, 1] // OBJECT_CELL) * gw + xy[compared, 0] // OBJECT_CELL
    votes = np.bincount(at, minlength=gh * gw)
    tested = votes > 0
    same = tested & (2 * np.bincount(at, weights=ncc[compared] >= OBJECT_NCC, minlength=gh * gw) >= votes)
    # the object goes on where cells alike touch its agreement: that small print, left outside, is the stamp's
    pad = np.zeros((gh * OBJECT_CELL, gw * OBJECT_CELL), bool)
    pad[:h, :w] = agreed
    seed = pad.reshape(gh, OBJECT_CELL, gw, OBJECT_CELL).any(axis=(1, 3)).ravel()
    tested, same = tested & ~seed, same & ~seed  # a cell on the agreement's edge joins, it does not vote
    _, label = cv2.connectedComponents((seed | same).reshape(gh, gw).astype(np.uint8), connectivity=8)
    grown = np.isin(label.ravel(), label.ravel()[seed]) & same
    rest = tested & ~grown
    if grown.sum() >= rest.sum():  # a copy: what is alike reaches from the agreement over most of it
        return None
    return int(rest.sum()), int((same & rest).sum())


def _agreement(fq: Features, fc: Features, mirrored: bool, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The keypoint pairs whose descriptors are nearest and near (`_nearest`) and which `affine` lays
    within `RANSAC_PX` of each other: `fq`'s points and `fc`'s (n x 2 each); None under 3."""
    points, desc = (fq.mpoints, fq.mdesc) if mirrored else (fq.points, fq.desc)
    if len(desc) == 0 or len(fc.desc) == 0:
        return None
    src, dst = _nearest(points, desc, fc)
    if len(src) < 3:
        return None
    src = src.astype(np.float64)
    laid = src @ affine[:, :2].T + affine[:, 2]
    agree = np.hypot(*(laid - dst).T) <= RANSAC_PX
    return (src[agree], dst[agree].astype(np.float64)) if agree.sum() >= 3 else None
