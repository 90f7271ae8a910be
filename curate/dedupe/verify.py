"""Geometric verification: is a hash candidate the same photo, or a look-alike?

Hashes compare low frequencies, which a shared frame, a plain skin
background or a similar lighting make alike. This stage asks for evidence
those cannot fake: SIFT keypoints (OpenCV) inside each picture's content box,
matched with Lowe's ratio test, and a similarity transform (rotation, scale,
shift) found by RANSAC that many matches agree on; or, when that fits only a
band of the picture (`SQUEEZE_FROM` up to `SAME_INLIERS` matches agree), a
squeeze (`_squeezed`: a copy resized to another aspect
ratio, down to `SQUEEZE` along one of its sides, then turned and shifted) that
`SQUEEZE_GAIN` times as many agree on. Mirrored copies are matched against the
flipped picture. A match counts as the same photo only if

* at least `SAME_INLIERS` matches agree on one transform, or at least `FEW_INLIERS` that are
  `FEW_SHARE` of the keypoints of the picture with fewer (a blurred, small or smooth picture has
  few keypoints to agree: 17 of 53 is stronger evidence than 20 of 500),
* they are spread over the shared area (at least `SAME_CELLS` of a 4 x 4 grid:
  a shared watermark, logo or one lesion's edge is not the whole photo; one fewer
  when `MOST_SHARE` of the keypoints agree: then the agreement is the picture, as
  with a fundus tile that is mostly black), and
  not along one line (`SAME_SPREAD`: a caption or watermark burned into two
  different photos gives a transform that dozens of its keypoints agree on), and
* the transform lays one content box over most of the other
  (`SAME_COVER` of the smaller one: two different crops of one large photo
  overlap too little; when its keypoints agree as a review needs, spread as a
  "same" needs, such a pair is "different" for "too little overlap", parts of
  one photo, which `overlap_only` tells the clustering), and the shared area is at least `SAME_SHARE` of the
  larger one (a small detail cut from a big photo is a different picture), or
  holds `HELD` of the larger one's keypoints (the rest is blurred padding: `_held`), and
* the agreement is not one object's alone (`one_object`: a clinic's ruler beside
  different lesions agrees along the ruler while, away from it, the keypoints on
  the same spots are unlike; a colour chart holds most of a close-up's keypoints,
  and away from it the pixels are unlike, `unlike_away`; such a pair goes to review).

No keypoint is taken on or near a round field of view's edge (a dermatoscope's, `features`): it is
the same on every photo through one, and two small copies of different lesions agreed on it.

The squeeze, measured on `bench/dedupe.py`'s corpora: every pair it made "same" or "review" is a true
pair (v6 7, `--edits` 32, `--augmented` 9); pairs of different photos that fit a squeeze (up to 44
matches) were a whole photo against a tile of it, a detail under `REVIEW_SHARE` of the larger, so
"different"; on `--edits` the squeezed + cropped copies went from 37 to 39 of 39 found. It is tried
451 times on v6's 4,266 pairs, 0.3 s of CPU.

Pairs just short of these (`REVIEW_*`), and pairs whose hash correlation is
high but whose pictures have too few keypoints to decide, are "to review":
never merged, listed first for the steward. Any other pair where a picture has
under `MIN_KEYPOINTS` keypoints is "different" but `untestable`: no evidence
either way, which the no-chaining rule does not hold against a join
(`curate.dedupe.pairs.complete`). Margins measured on the benchmark
are in README (dedupe section) and bench/README.md.

Before any of this, `thumb_correlation` settles the overwhelming cases: a
re-encode, resize, tone change, mirror or quarter-turn of the same content box
has its 64 x 64 grey thumbnails nearly equal pixel for pixel (Pearson
correlation, best of the eight flips and quarter-turns). From `ACCEPT_NCC`
the pair is the same photo without local features, so smooth pictures that
give SIFT too few keypoints are still found. Measured on `bench/dedupe.py`'s
1,105-file corpus (4,537 hash candidates): the strongest pair of *different*
photos reaches 0.925 (two tiles of one fundus photo; close-ups on plain skin
0.923), so 0.95 leaves a margin of 0.025; 608 of 1,232 true candidate pairs
pass it and skip SIFT. Pictures whose content box could not be cut (a note
on the code) never take this shortcut: their frame would make them alike; nor
do those whose thumbnail is over `MOST_INPAINTED` in-painted (a black surround
and a rotation's corners, `curate.dedupe.decode`): two fundus-rim tiles turned
opposite ways on grey, two thirds invented, correlated 0.98. On the v5 corpus
the true pairs that take the shortcut are at most 0.445 in-painted, that pair
0.675.
A picture known to have under `MIN_KEYPOINTS` keypoints (`pairs.Verifier.smooth`)
needs `SMOOTH_NCC`: nothing else can contradict its thumbnail, and two different
fundus-corner tiles, once captioned, warped or shrunk, correlated up to 0.960
(a probe of the re-posts in `tests/photo_corpus.py`), while the tone copy of a
fundus tile in the benchmark correlates 0.969 with its cropped copy: margins of
0.005 and 0.004, thin and measured; such pairs between 0.95 and 0.965 go to
review. Two pictures of one shape whose boxes were cut differently (a tone change of
a smooth photo moves where the cut into its plain background falls) are
compared with `view_correlation` on the smallest box holding both
(`pairs.Verifier`): over all 56,016 such pairs of the 1,055-file corpus
(both boxes cut: 11,670; one: 44,346), different photos reach 0.837 (margin
0.11 to `ACCEPT_NCC`) and the 23 copies that pass score 0.990-1.000.
Near the threshold (under `NEAR_NCC`) the thumbnails are not taken alone when local
features can speak: a pair whose local features find no match at 160 px and again
at 320 px, both pictures with all `N_FEATURES` keypoints there, is "review" (the
stages disagree; `denies`). Two different close-ups under one site's vignette
correlated 0.951 (3 of 152 and of 500 keypoints agreeing); of the 80 true pairs
between 0.95 and 0.965 on v6, `--edits` and `--templates`, local features deny 1
(a blurred copy against a low-contrast one, 4 and 8 keypoints agreeing).

SIFT looks twice, cheaply first (`triage`): at `COARSE` = 160 px (14 ms of
CPU per picture against 44 ms at `WORK` = 320 px) the same rule settles
"same", and fewer than `COARSE_REJECT` = 5 consistent matches settle
"different", as do `REVIEW_INLIERS` or more that lay one box on too little of
the other (`triage`); everything else is looked at again at 320 px. A "review" at
160 px stands when 320 px finds less (a small or blurred picture enlarged to
320 px loses matches). A mirror image's features are the picture's own,
rearranged (`mirrored`): no second extraction.

Margins, measured on `bench/dedupe.py`'s corpus (1,055 files; 3,906 candidates
from both proposals, 3,326 left undecided by the thumbnails, 647 of them
true): different photos that pass every rule but the count of matches reach
10 matches at 160 px (0.07 of the fewer keypoints) and 10 at 320 px (0.05),
against 20, or 12 that are 0.12 of the fewer keypoints (`FEW_*`): margins of
2 matches and 0.05; those over only 3 cells reach 10 matches and 0.05, against
`MOST_SHARE` = 0.5. The weakest true pair that 320 px rescues has 6 matches at
160 px, so none is rejected there (margin 1; 4 sent 188 more pairs of
different photos to 320 px, none of them rescued). A content box can cut into a
smooth photo (a plain background is as flat as padding), so two copies' boxes
may be different parts of one picture; when the boxes' overlap falls short,
the whole pictures' overlap under the same transform is taken (a mirrored,
cropped copy of a moon tile: 33 % of the larger box, 83 % of the picture).
When the smaller box is instead the detail (`detail_region`: a dark app's screenshot cut into a star
field's black sky and kept 84 x 78 px of its middle; 55 keypoints agreed over 14 of 16 cells on 26 % of
the photo), that box is cut again around where the other picture lies in its photo and looked at once
more (`pairs.Verifier._recut`); only a full "same" whose agreement spans `SAME_SHARE` of the new box
counts. On v6 it turned 11 "review" pairs into "same", all true (app_screenshot 24 → 25 of 25), and
changed no pair on `--crops`, `--screens`, `--templates`, `--collages`, `--stamped`, `--rulers`,
`--edits` or the skin and held-out photo corpora; verification CPU +10 %.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

import cv2
import numpy as np

from curate.dedupe.cluster import COLLAGE, STAMPED
from curate.dedupe.decode import BLACK, THUMB, field_stop
from curate.imaging import IN_PLACE, in_band, laid_correlation, lay

WORK = 320  # longest side (px) of the content box the features are taken from
COARSE = 160  # longest side of the first, cheap look (`triage`)
COARSE_REJECT = 5  # fewer consistent matches than this at COARSE: different, without the look at WORK
N_FEATURES = 500
TONE_CLIP = 2.0  # CLAHE's clip limit: how far a tile's contrast is raised (`evened`)
TONE_TILES = 4  # CLAHE's tiles along each side
CONTRAST = 0.01  # SIFT's default (0.04) finds too few keypoints on smooth skin
RATIO = 0.8  # Lowe's ratio test
RANSAC_PX = 5.0  # reprojection tolerance at WORK scale
SQUEEZE = 0.65  # a copy squeezed to no less than this along one side is looked for (`_squeezed`)
SQUEEZE_AXIS = 0.985  # and squeezed along its own sides: cos 10 degrees
SQUEEZE_GAIN = 1.5  # the squeeze is taken when this many times the similarity's matches agree on it
SQUEEZE_FROM = 8  # and only looked for when this many agree on the similarity (a band of the copy fits it)
SAME_INLIERS = 20
SAME_CELLS = 4
FEW_INLIERS = 12  # pictures with few keypoints (blur, small, smooth): this many agreeing suffice when they
FEW_SHARE = 0.12  # are at least this share of the fewer keypoints (module docstring: margins)
MOST_SHARE = 0.5  # when this share of the fewer keypoints agrees, one cell fewer than SAME_CELLS will do
SAME_COVER = 0.70
SAME_SHARE = 0.40
HELD = 0.85  # or the overlap holds this share of the larger picture's keypoints (`_held`: blurred padding)
SAME_SPREAD = 0.025  # matches spread across the shared area, not along one line of text (`_spread`)
REVIEW_SHARE = 0.20
RECUT_INSIDE = 0.9  # a detail's box is cut again if the other picture, laid on it, lies this much in its photo
REVIEW_INLIERS = 10
REVIEW_COVER = 0.45
PLACED_PX = 64  # longest side (px) of the picture kept beside its features (`in_place_correlation`)
MIN_KEYPOINTS = 25  # fewer than this in either picture: not enough texture to decide
SQUARE = 0.03  # a transform whose turn or shear terms are over this share of its scale is not square (`shows`)
REVIEW_CORR = 0.95  # hash correlation that sends an undecidable pair to review
BOTH_CORR = 0.90  # from this hash correlation, the other orientation is tried when the hash's one fails
ACCEPT_NCC = 0.95  # thumbnail correlation that is the same photo without local features (module docstring)
MOST_INPAINTED = 0.5  # a thumbnail in-painted over more than this share takes no shortcut (module docstring)
SMOOTH_NCC = 0.965  # the same when a picture has under MIN_KEYPOINTS keypoints (`pairs.Verifier.smooth`)
NEAR_NCC = 0.965  # under this, local features are asked too, and "different" at both looks is "review" (`denies`)
SMALL_THUMB = 32  # a thumbnail-sized copy's thumbnails are compared at this side too (`coarser`)
SMALL_NCC = 0.96  # from this correlation there, the pair is the same photo (`coarser`: margins)
PART_DROP = 0.05  # and with a quarter of them, or their light, left out it falls by less (`part_correlation`)
OBJECT_OUTSIDE = 0.5  # `one_object` asks when this share of b's keypoints in the shared area lie away from it
OBJECT_MARGIN = 0.05  # "away": outside the agreeing keypoints' hull widened by this share of the side
OBJECT_TESTED = 15  # decided on this many keypoints away from it with one of the other picture's on their spot
OBJECT_AGREE = 0.2  # under this share of those spots alike (`OBJECT_DESC`): the agreement is one object's
OBJECT_MOST = 0.2  # unless its keypoints' hull covers this share of the picture or more: a photo's (`_object_spots`)
OBJECT_DESC = 250  # SIFT descriptor distance (uint8 values) under which two keypoints on one spot are alike
OBJECT_CELLS = 10  # a "same" at COARSE px over fewer cells, not cleared by `one_object`, is looked at at WORK px
OBJECT_SURE = 0.35  # spots alike under this share leave a compact agreement to the pixels (`one_object`)
UNLIKE_GREY = 24  # laid in place, grey levels (of 255) past which two pixels are unlike (`unlike_away`)
UNLIKE_SHIFT = 2  # PLACED_PX pixels a pixel may lie off its place and still be alike (`unlike_away`)
UNLIKE_THIN = 2  # unlike strokes narrower than 2 * this + 1 PLACED_PX pixels are left out (`unlike_away`)
UNLIKE_MARGIN = 0.08  # the object: its agreeing keypoints' hull widened by this share of the side (`unlike_away`)
UNLIKE_REST = 0.15  # the rest is asked when it is at least this share of b (`unlike_away`)
UNLIKE_SHARE = 0.04  # of the rest unlike past this share: the agreement is one object's (`one_object`)
WHITE = 240  # grey level at or above which a pixel counts as fill, like `BLACK` (`unlike_away`)
ECC_DRIFT = 2.0  # PLACED_PX pixels the refined transform may move the agreement by (`_refined`)

STOP_MARGIN = 0.04  # no keypoint within this share of the side of a field stop's fill (`features`)
PANEL_INSIDE = 0.9  # a match this much inside one panel of a collage is the panel's (`paneled`)
PANEL_MOST = 0.75  # a panel is at most this share of its collage (a photo beside a strip is the photo)
PANEL_SPANNED = 0.3  # a "same" with a collage covers at least this share of each of its panels (`paneled`)

SAME, REVIEW, DIFFERENT = "same", "review", "different"
ONE_OBJECT = "near the threshold: matches on one object only"  # how a review by `one_object` begins
UNLIKE_SAID = "of the pixels away from it unlike"  # a review by `one_object` on its pixels says (`pixels_said`)
PANEL = COLLAGE  # how a review by `paneled` begins


@dataclass(frozen=True)
class Features:
    points: np.ndarray  # (n, 2) float32 keypoint positions in the working picture
    desc: np.ndarray | None  # (n, 128) uint8 SIFT descriptors, strongest keypoint first
    width: int  # of the working picture (the content box at WORK scale)
    height: int
    whole: tuple[float, float, float, float] | None = None  # the whole picture in these coordinates (box cut)
    small: np.ndarray | None = None  # the working picture at `PLACED_PX` px, as it is (`in_place_correlation`)
    panels: tuple[tuple[float, float, float, float], ...] = ()  # a collage's panels in these coordinates (`paneled`)

    def rect(self, whole: bool = False) -> tuple[float, float, float, float]:
        """The content box (0, 0, width, height), or with `whole` the whole picture around it."""
        return (self.whole or (0.0, 0.0, self.width, self.height)) if whole else (0.0, 0.0, self.width, self.height)


@dataclass(frozen=True)
class Geometry:
    inliers: int = 0
    matches: int = 0
    cells: int = 0  # grid cells (of 16) of the shared area holding an inlier
    cover: float = 0.0  # share of the smaller content box covered by the other, once aligned
    share: float = 0.0  # the shared area as a share of the larger content box
    mirrored: bool = False
    spread: float = 0.0  # the inliers' spread across their narrower axis (`_spread`)
    transform: tuple[float, ...] | None = None  # a's (mirrored: its mirror image's) working pixels onto b's, 2 x 3
    spot: tuple[float, float, float, float] | None = None  # the agreeing keypoints' bounding box in b's pixels
    held: float = 0.0  # a "detail": share of the larger picture's keypoints the overlap holds (`_held`)


@dataclass(frozen=True)
class Verdict:
    decision: str  # same | review | different
    reason: str
    geometry: Geometry
    untestable: bool = False  # "different" only for want of texture: a picture has under MIN_KEYPOINTS keypoints
    in_place: float | None = None  # a "same" laid in place: the pixels' correlation (`in_place_correlation`)
    unasked: bool = False  # a "same" on part of the pictures, too few keypoints away from it to ask (`one_object`)
    shows: tuple[float, float] | None = None  # a "same": what each picture shows of the other's box (`shows`)


_SIFT = None


def _sift():
    global _SIFT
    if _SIFT is None:
        _SIFT = cv2.SIFT_create(nfeatures=N_FEATURES, contrastThreshold=CONTRAST)
    return _SIFT


def evened(grey: np.ndarray) -> np.ndarray:
    """`grey` with its contrast evened out locally (OpenCV's CLAHE, `TONE_CLIP` on `TONE_TILES` square
    tiles), for a second look (`features(even=True)`; `curate.dedupe.pairs.Verifier`).

    SIFT's contrast threshold is absolute: a darkened, flattened or greyed copy keeps fewer keypoints
    than its original (a dark copy of scikit-image's cell: 18 at 160 px against its photo's 319), and two
    such copies of one photo share too few to be verified. Evened out, each tile spreads over the whole
    range whatever tone curve it had. Not the first look: on a nearly textureless picture (a fundus tile,
    a plain sky) evening raises JPEG noise into keypoints (16 of 20 such pictures went from under
    `MIN_KEYPOINTS` to 48-302), which no copy shares, and "too little texture to compare" was lost."""
    clahe = cv2.createCLAHE(clipLimit=TONE_CLIP, tileGridSize=(TONE_TILES, TONE_TILES))  # one a call: it keeps state
    return clahe.apply(np.ascontiguousarray(grey))


def features(grey: np.ndarray, side: int = WORK, even: bool = False) -> Features:
    """SIFT features of a grey uint8 picture (already cut to its content box), resized to `side`;
    `even`: of the picture with its contrast evened out (`evened`). No keypoint is taken on or near a
    round field of view's fill (`curate.dedupe.decode.field_stop`, `STOP_MARGIN`): its edge is the
    dermatoscope's, the same on every photo taken through it."""
    h, w = grey.shape[:2]
    f = side / max(h, w, 1)
    if abs(f - 1) > 0.05:  # small pictures are enlarged too: SIFT needs some pixels per feature
        grey = cv2.resize(
            grey,
            (max(1, round(w * f)), max(1, round(h * f))),
            interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC,
        )
    h, w = grey.shape[:2]
    stop = field_stop(grey) if grey.ndim == 2 and min(h, w) > 2 else None
    if stop is not None:
        margin = 2 * max(1, round(STOP_MARGIN * max(h, w))) + 1
        stop = cv2.erode((~stop).view(np.uint8) * np.uint8(255), np.ones((margin, margin), np.uint8))
    kps, desc = _sift().detectAndCompute(evened(grey) if even else np.ascontiguousarray(grey), stop)
    order = np.argsort([-k.response for k in kps], kind="stable")  # strongest first: `local` takes a prefix
    pts = np.array([k.pt for k in kps], np.float32).reshape(-1, 2)[order]
    f = PLACED_PX / max(h, w, 1)
    small = cv2.resize(grey, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    # OpenCV's SIFT values are whole numbers 0-255 in float32: a quarter of the memory as uint8
    return Features(pts, None if desc is None else desc[order].astype(np.uint8), w, h, small=small)


_MIRROR_BINS = (
    np.arange(128).reshape(4, 4, 8)[::-1][..., (-np.arange(8)) % 8].reshape(-1)
)  # descriptor value k of a mirrored keypoint comes from value _MIRROR_BINS[k] of the original


def mirrored(f: Features) -> Features:
    """The features of the picture's mirror image, without looking at it again.

    A SIFT descriptor is a 4 x 4 grid of 8-bin gradient histograms in the keypoint's own frame;
    mirroring the picture mirrors that frame, which reverses the grid's rows and negates every
    gradient angle (bin o becomes bin -o). Measured against OpenCV's descriptors of the flipped
    picture: the same keypoints (373 of 387; positions x -> width - 0.5 - x, OpenCV's doubled first
    octave), descriptors equal to 3e-5 relative error. Saves a second extraction per picture."""
    if f.desc is None:
        return f
    pts = f.points.copy()
    pts[:, 0] = f.width - 0.5 - pts[:, 0]
    whole = None if f.whole is None else (f.width - f.whole[2], f.whole[1], f.width - f.whole[0], f.whole[3])
    small = None if f.small is None else np.ascontiguousarray(f.small[:, ::-1])
    panels = tuple((f.width - x1, y0, f.width - x0, y1) for x0, y0, x1, y1 in f.panels)
    return Features(pts, mirrored_descriptors(f.desc), f.width, f.height, whole, small, panels)


def mirrored_descriptors(desc: np.ndarray) -> np.ndarray:
    """The descriptors of the same keypoints in the mirror image (`mirrored`)."""
    return np.ascontiguousarray(desc[:, _MIRROR_BINS])


def _unit(t: np.ndarray) -> np.ndarray:
    t = t.astype(np.float32)
    t = t - t.mean()
    return t / max(float(np.linalg.norm(t)), 1e-6)


def _turns(t: np.ndarray) -> list[np.ndarray]:
    """A square picture's eight flips and quarter-turns."""
    turns = [t, t[::-1], t[:, ::-1], t[::-1, ::-1]]
    return turns + [x.T for x in turns]


def _best_turn(ta: np.ndarray, tb: np.ndarray) -> tuple[int, float]:
    """Which of `ta`'s eight flips and quarter-turns (`_turns`) correlates best with `tb`, and how much."""
    ub = _unit(tb)
    scores = [float((t * ub).sum()) for t in _turns(_unit(ta))]
    best = int(np.argmax(scores))
    return best, scores[best]


def thumb_correlation(ta: np.ndarray, tb: np.ndarray) -> float:
    """Pixel correlation of two square grey thumbnails, the best of `ta`'s eight flips and quarter-turns."""
    return _best_turn(ta, tb)[1]


def coarser(t: np.ndarray) -> np.ndarray:
    """A square grey thumbnail at `SMALL_THUMB` px (area average), for a pair with a thumbnail-sized copy
    (`curate.dedupe.pairs.Verifier._thumbnail_sized`).

    A copy shrunk to about 110 px and saved at JPEG quality 30-45 has 8 px blocks that, at `THUMB` px, are
    as strong as a smooth close-up's detail: three such copies of skin close-ups correlated 0.962-0.967
    with their photos, and 0.896-0.922 with a quarter or the light left out, so neither the shortcut nor
    SIFT (17-57 keypoints) found them. Averaged to 32 px the blocks are gone: 0.984-0.987 (0.949-0.971 with
    a part left out). Measured on `bench/dedupe.py`'s corpora over every pair with a file under 128 px on its
    longer side (v6: 45 such files; `--photos` of skin close-ups: 28): different photos reach 0.911 at 32 px
    on v6 and 0.932 on skin (0.900 and 0.921 at 64 px), against `SMALL_NCC` = 0.96: margins of 0.028 below
    and 0.024 above. Only for such files: with every picture whose content box is under 128 px, a fundus
    tile's resized copy reached 0.950 against another tile of the photo."""
    return cv2.resize(np.ascontiguousarray(t), (SMALL_THUMB, SMALL_THUMB), interpolation=cv2.INTER_AREA)


def part_correlation(ta: np.ndarray, tb: np.ndarray, turn: bool = True, smooth: bool = False) -> float:
    """The lowest pixel correlation of two grey pictures of one size with a part of them left out: the top,
    bottom, left or right quarter, each part's mean its own, or their light (`unlit`; `smooth`: for a picture
    with too few keypoints to compare). `ta` is taken in the flip or quarter-turn where it correlates best
    with `tb`, unless `turn` is False (`view_correlation`'s crops).

    A copy correlates alike in every part and without its light. A part shared by different photos does not:
    a site's banner across the foot of every picture it serves (a gradient, a logo and lettering, which no
    band rule cuts) lifted different close-ups on plain skin, which correlate up to 0.93 anyway, to
    0.95-0.99; left out, they fell back by 0.05 or more (`PART_DROP`). A site's vignette, darkened corners
    on every picture, lifted them the same way (0.95-0.98), and no quarter of the pictures is free of it;
    with the light taken out they fell by 0.08-0.13. The copies that take the shortcut on `bench/dedupe.py`'s
    corpus fall by under 0.04 at 95 %, the rest go on to local features."""
    ua, ub = ta.astype(np.float32), tb.astype(np.float32)
    if turn:
        ua = _turns(ua)[_best_turn(ua, ub)[0]]
    n, m = ub.shape
    q, r = n // 4, m // 4
    parts = ((slice(0, n - q), slice(None)), (slice(q, None), slice(None)))
    parts += ((slice(None), slice(0, m - r)), (slice(None), slice(r, None)))
    least = min(float((_unit(ua[p]) * _unit(ub[p])).sum()) for p in parts)
    return min(least, float((_unit(unlit(ua, smooth)) * _unit(unlit(ub, smooth))).sum()))


@cache
def _light(n: int, m: int, smooth: bool) -> tuple[np.ndarray, np.ndarray]:
    """The light surfaces `unlit` fits on an n x m picture, one per column, and their pseudo-inverse."""
    y, x = np.mgrid[0:n, 0:m].astype(np.float64)
    x, y = x / max(m - 1, 1) - 0.5, y / max(n - 1, 1) - 0.5
    r2 = x * x + y * y
    surfaces = (x * x, y * y, x * y) if smooth else (r2, r2 * r2)
    basis = np.stack([np.ones_like(x), x, y, *surfaces], -1).reshape(n * m, -1)
    return basis, np.linalg.pinv(basis)


def unlit(t: np.ndarray, smooth: bool = False) -> np.ndarray:
    """A grey picture less the light that fits it best (least squares): a slope and a vignette centred on the
    picture (1, x, y, r², r⁴), how a lamp and a lens light every photo alike. For a `smooth` picture, whose
    thumbnail is all the evidence there is, any quadratic surface (1, x, y, x², y², xy): two different tiles
    of a fundus photo's rim, a lit corner on black, correlated 0.970-0.985 and fell by 0.077-0.097 (their
    copies by 0.04-0.17: those go on to local features, and to review when those cannot tell)."""
    basis, inverse = _light(*t.shape, smooth)
    v = t.reshape(-1).astype(np.float64)
    return (v - basis @ (inverse @ v)).reshape(t.shape).astype(np.float32)


def view_correlation(ta: np.ndarray, tb: np.ndarray) -> float:
    """Pixel correlation of two grey crops of the same part of two pictures of one shape, at `THUMB` px square
    (`view_thumbnails`), as they are (no flips: the part is the same only in the pictures' own orientation)."""
    return float((_unit(ta) * _unit(tb)).sum())


def view_thumbnails(ga: np.ndarray, gb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two crops of one part of two pictures at `THUMB` px square, as `view_correlation` compares them."""
    size = (THUMB, THUMB)
    return cv2.resize(ga, size, interpolation=cv2.INTER_AREA), cv2.resize(gb, size, interpolation=cv2.INTER_AREA)


def _cells(points: np.ndarray, w: int, h: int) -> int:
    if len(points) == 0:
        return 0
    gx = np.clip((points[:, 0] / max(w, 1) * 4).astype(int), 0, 3)
    gy = np.clip((points[:, 1] / max(h, 1) * 4).astype(int), 0, 3)
    return len(set(zip(gx.tolist(), gy.tolist(), strict=False)))


def _spread(points: np.ndarray, w: float, h: float) -> float:
    """Standard deviation of the inliers along their narrower principal axis, in units of the shared
    area's sides: about 0.29 for matches all over it, under 0.05 for one line of text across it."""
    if len(points) < 3:
        return 0.0
    p = points / np.array([max(w, 1.0), max(h, 1.0)], np.float32)
    return float(np.sqrt(max(np.linalg.eigvalsh(np.cov(p.T))[0], 0.0)))


def _intersect(mapped: np.ndarray, rect: tuple[float, float, float, float]) -> tuple[float, np.ndarray | None]:
    """Area and corners of the overlap of a convex quadrilateral with the box `rect` (x0, y0, x1, y1).

    `cv2.intersectConvexConvex` returns an empty overlap when edges nearly coincide (a copy aligned
    to 1e-5 px of its original, e.g. an anonymisation bar on an otherwise untouched photo); then
    the box is taken half a pixel wider (at most 0.3 % more overlap at WORK px)."""
    x0, y0, x1, y1 = rect
    for pad in (0.0, 0.5):
        box = np.array(
            [[x0 - pad, y0 - pad], [x1 + pad, y0 - pad], [x1 + pad, y1 + pad], [x0 - pad, y1 + pad]], np.float32
        )
        area, inter = cv2.intersectConvexConvex(mapped, box)
        if inter is not None and len(inter) >= 3 and area > 0:
            return float(area), inter.reshape(-1, 2)
    return 0.0, None


def _cover(m: np.ndarray, a: Features, b: Features, whole: bool = False) -> tuple[float, float, np.ndarray]:
    """Share of the smaller box and of the larger box covered, and the overlap's bounding box in b's frame;
    with `whole`, of the whole pictures around the content boxes."""
    rb = b.rect(whole)
    mapped = (_corners(a.rect(whole)).astype(np.float32) @ m[:, :2].T + m[:, 2]).astype(np.float32)
    area, inter = _intersect(mapped, rb)
    area_a = abs(cv2.contourArea(mapped))
    smaller, larger = sorted((area_a, float((rb[2] - rb[0]) * (rb[3] - rb[1]))))
    if inter is None or smaller <= 0:
        return 0.0, 0.0, np.array(rb, np.float32)
    area = min(area, smaller)
    return area / smaller, area / larger, np.array([*inter.min(0), *inter.max(0)], np.float32)


def ratio_matches(da: np.ndarray, db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into a, into b) of the matches passing Lowe's ratio test: the nearest descriptor of b
    (Euclidean) is nearer than `RATIO` times the second nearest.

    What `cv2.BFMatcher(NORM_L2).knnMatch(k=2)` returns, as one matrix product: BFMatcher computes
    the distances without BLAS, 6.5 ms per pair of 500-descriptor pictures against 1.1 ms here
    (CPU time, one thread), and most candidates are different photos that need only this. The
    distance matrix is built in place (2.6 ms with a temporary per step; on the whole benchmark run no
    faster measurably); exact either way, since SIFT's whole-number descriptors (norm about 512) keep
    every product and sum under 2**24."""
    if len(da) == 0 or len(db) < 2:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    fa, fb = da.astype(np.float32), db.astype(np.float32)
    d2 = fa @ fb.T
    d2 *= -2
    d2 += np.einsum("ij,ij->i", fb, fb)  # squared distance less |a|^2, which ranks nothing
    rows = np.arange(len(da))
    near = d2.argmin(1)
    own = np.einsum("ij,ij->i", fa, fa)
    d1 = d2[rows, near] + own
    d2[rows, near] = np.inf
    second = d2.min(1) + own
    keep = np.sqrt(np.maximum(d1, 0)) < RATIO * np.sqrt(np.maximum(second, 0))
    return np.flatnonzero(keep), near[keep]


def _similarity(pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """The rotation, scale and shift from `pa` to `pb` that most matches agree on (RANSAC), and which agree."""
    m, mask = cv2.estimateAffinePartial2D(
        pa, pb, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=2000, confidence=0.995
    )
    if m is None or mask is None:
        return None, np.zeros(len(pa), bool)
    return m, mask.ravel().astype(bool)


def _squeezed(pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """The squeeze (one side scaled more than the other, along either picture's sides), rotation and shift
    from `pa` to `pb` that most matches agree on (RANSAC over affine maps), and which agree; None when the
    best map is a shear, a mirror or squeezed beyond `SQUEEZE`."""
    m, mask = cv2.estimateAffine2D(
        pa, pb, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=1000, confidence=0.995
    )
    if m is None or mask is None:
        return None, np.zeros(len(pa), bool)
    u, sv, vt = np.linalg.svd(m[:, :2])
    # a picture resized to another aspect ratio: its own sides are the axes of the squeeze (the right
    # singular vectors for a copy squeezed then turned, the left ones for one turned then squeezed)
    along = max(np.abs(vt).max(1).min(), np.abs(u).max(0).min())
    if np.linalg.det(m[:, :2]) <= 0 or sv[1] < SQUEEZE * sv[0] or along < SQUEEZE_AXIS:
        return None, np.zeros(len(pa), bool)
    return m, mask.ravel().astype(bool)


def _plausible(m: np.ndarray) -> bool:
    """Whether a transform's scale is one a copy could have (a fifth to five times)."""
    return 0.2 <= float(np.hypot(m[0, 0], m[1, 0])) <= 5.0


def _match_one(a: Features, b: Features, mirrored: bool) -> Geometry:
    if a.desc is None or b.desc is None or len(a.points) < 3 or len(b.points) < 3:
        return Geometry(mirrored=mirrored)
    qa, qb = ratio_matches(a.desc, b.desc)
    good = len(qa)
    if good < 3:
        return Geometry(matches=good, mirrored=mirrored)
    pa, pb = a.points[qa], b.points[qb]
    m, keep = _similarity(pa, pb)
    if m is not None and not _plausible(m) and (~keep).sum() >= 3:
        # a degenerate fit (dozens of matches onto one spot, where SIFT put several keypoints: scale 0)
        # outvotes the real transform; it is looked for again among the other matches (a sheared copy
        # against a turned one: 97 matches on one spot, then 51 that agree at scale 1.13)
        rest = np.flatnonzero(~keep)
        m, again = _similarity(pa[rest], pb[rest])
        keep = np.zeros(len(pa), bool)
        keep[rest[again]] = True
    fitted = int(keep.sum()) if m is not None and _plausible(m) else 0
    if good >= FEW_INLIERS and SQUEEZE_FROM <= fitted < SAME_INLIERS:
        # a copy forced into another aspect ratio: one similarity fits only a band of it
        m2, keep2 = _squeezed(pa, pb)
        if m2 is not None and _plausible(m2) and keep2.sum() >= max(FEW_INLIERS, SQUEEZE_GAIN * fitted):
            m, keep = m2, keep2
    if m is None or not _plausible(m):
        return Geometry(matches=good, mirrored=mirrored)
    cover, share, (x0, y0, x1, y1) = _cover(m, a, b)
    if (a.whole or b.whole) and not (cover >= SAME_COVER and share >= SAME_SHARE):
        # a content box cut into a smooth photo (a plain background taken for padding) makes a copy
        # look like a detail of its original: the whole pictures overlap as they really do
        cover, share = max(
            (cover, share), _cover(m, a, b, whole=True)[:2], key=lambda c: min(c[0] / SAME_COVER, c[1] / SAME_SHARE)
        )
    inl = pb[keep] - np.array([x0, y0], np.float32)
    cells, spread = _cells(inl, x1 - x0, y1 - y0), _spread(inl, x1 - x0, y1 - y0)
    spot = (*pb[keep].min(0).tolist(), *pb[keep].max(0).tolist()) if keep.any() else None
    held = _held(m, a, b) if cover >= SAME_COVER and REVIEW_SHARE <= share < SAME_SHARE else 0.0
    t = tuple(m.ravel().tolist())
    return Geometry(int(keep.sum()), good, cells, cover, share, mirrored, spread, t, spot, held)


def _held(m: np.ndarray, a: Features, b: Features) -> float:
    """Share of the less covered picture's keypoints inside the other picture laid on it by `m` (a onto b).
    A photo re-posted centred on a blurred enlargement of itself (social media padding it to 16:9) is 32-42 %
    of the padded picture, a "detail" by `SAME_SHARE`, but the blur around it has few keypoints: 94-99 % lie
    on the photo. Different photos sent to review as a detail of one another: at most 50 % (`HELD`)."""
    back = cv2.invertAffineTransform(m)
    on_b = _corners(a.rect()) @ m[:, :2].T + m[:, 2]  # a laid on b
    on_a = _corners(b.rect()) @ back[:, :2].T + back[:, 2]
    covered_b = _intersect(on_b.astype(np.float32), b.rect())[0] / max(b.width * b.height, 1)
    covered_a = _intersect(on_a.astype(np.float32), a.rect())[0] / max(a.width * a.height, 1)
    f, quad = (b, on_b) if covered_b < covered_a else (a, on_a)
    if not len(f.points):
        return 0.0
    edges = np.roll(quad, -1, axis=0) - quad  # a convex quadrilateral: inside is one side of all four edges
    cross = edges[None, :, 0] * (f.points[:, None, 1] - quad[None, :, 1]) - edges[None, :, 1] * (
        f.points[:, None, 0] - quad[None, :, 0]
    )
    inside = (cross >= 0).all(axis=1) | (cross <= 0).all(axis=1)
    return float(inside.mean())


def match(a: Features, a_flipped, b: Features, mirrored: bool | None = None, both: bool = True) -> Geometry:
    """The better of matching `a` and its mirror image against `b`; `a_flipped` is the mirror
    image's features, or a function computing them (only called when it is tried).

    `mirrored` is the hash search's orientation (None: unknown), tried first; the other one is
    tried only when that fails and `both` is set. SIFT is rotation-invariant, so only the
    mirror matters, and most candidates are different photos: one matching instead of two
    (and no mirror features) roughly halves the verification time."""

    def one(flip: bool) -> Geometry:
        return (
            _match_one(a_flipped() if callable(a_flipped) else a_flipped, b, True) if flip else _match_one(a, b, False)
        )

    first = one(bool(mirrored))
    if (first.inliers >= SAME_INLIERS and first.cover >= SAME_COVER) or (mirrored is not None and not both):
        return first
    return max(first, one(not mirrored), key=lambda g: (g.inliers, g.cover))


def decide(g: Geometry, corr: float, keypoints: tuple[int, int]) -> Verdict:
    """The documented rule (module docstring) on one pair's evidence."""
    said = f"{g.inliers} matching keypoints over {g.cells}/16 cells, {g.cover:.0%} overlap, {g.share:.0%} of the larger"
    enough = g.inliers >= SAME_INLIERS or (g.inliers >= FEW_INLIERS and g.inliers >= FEW_SHARE * min(keypoints))
    cells = SAME_CELLS - (g.inliers >= MOST_SHARE * min(keypoints))  # most of a picture agrees: not a detail of it
    shared = g.share >= SAME_SHARE or g.held >= HELD  # the rest of the larger is padding or blur: not a detail
    said += f", {g.held:.0%} of its keypoints inside" if g.share < SAME_SHARE and g.held >= HELD else ""
    if enough and g.cells >= cells and g.cover >= SAME_COVER and shared and g.spread >= SAME_SPREAD:
        return Verdict(SAME, said, g)
    if g.inliers >= REVIEW_INLIERS and g.cover >= REVIEW_COVER and g.share >= REVIEW_SHARE:
        why = (
            "few matching keypoints"
            if not enough
            else "matches bunched in one area"
            if g.cells < cells
            else "partial overlap"
            if g.cover < SAME_COVER
            else "one is a detail of the other"
            if not shared
            else "matches along one line (a shared caption or watermark?)"
        )
        return Verdict(REVIEW, f"near the threshold: {why} ({said})", g)
    if min(keypoints) < MIN_KEYPOINTS and corr >= REVIEW_CORR:
        return Verdict(
            REVIEW, f"hashes agree (correlation {corr:.3f}) but the pictures have too little texture to verify", g
        )
    if 0 < min(keypoints) < MIN_KEYPOINTS:
        return Verdict(
            DIFFERENT, f"too little texture to compare ({min(keypoints)} keypoints, {g.inliers} agree)", g, True
        )
    if overlap_only(g):
        return Verdict(DIFFERENT, f"too little overlap ({said})", g)
    return Verdict(DIFFERENT, f"no geometric match ({g.inliers} keypoints agree)", g)


def detail_only(g: Geometry) -> bool:
    """Whether a pair fails only for being a detail: keypoints agree as a "same" needs (`SAME_INLIERS`, over
    `SAME_CELLS`, not along one line) on a transform that lays one box within the other (`SAME_COVER`) but
    over under `SAME_SHARE` of the larger (`detail_region`)."""
    return (
        g.inliers >= SAME_INLIERS
        and g.cells >= SAME_CELLS
        and g.spread >= SAME_SPREAD
        and g.cover >= SAME_COVER
        and g.share < SAME_SHARE
    )


def detail_region(g: Geometry, fa: Features, fb: Features) -> tuple[bool, np.ndarray, np.ndarray] | None:
    """When a pair fails only for being a detail (`detail_only`) and the smaller picture's content box was cut
    into its photo (`Features.whole`) while the other picture, laid on it by the match, falls within that
    photo (`RECUT_INSIDE` of it): (whether the smaller is `fa`, and the region of its photo the other covers,
    its low and high corners in its pixels). The box, not the photo, was then the detail: a dark app's
    screenshot cut into a star field's black sky and kept its middle (`Verifier._recut` looks again)."""
    if g.transform is None or not detail_only(g):
        return None
    m = np.array(g.transform, np.float64).reshape(2, 3)
    if abs(np.linalg.det(m[:, :2])) * fa.width * fa.height < fb.width * fb.height:  # fa is the smaller
        inv = cv2.invertAffineTransform(m)
        small, f, quad = True, fa, _corners(fb.rect()) @ inv[:, :2].T + inv[:, 2]
        if g.mirrored:  # fa's mirror image's pixels -> fa's own
            quad[:, 0] = fa.width - quad[:, 0]
    else:
        small, f, quad = False, fb, _corners(fa.rect()) @ m[:, :2].T + m[:, 2]
    if f.whole is None:
        return None
    inside, _ = _intersect(quad.astype(np.float32), f.whole)
    d1, d2 = quad[2] - quad[0], quad[3] - quad[1]  # a convex quadrilateral's area: half its diagonals' cross
    area = abs(float(d1[0] * d2[1] - d1[1] * d2[0])) / 2
    if area <= 0 or inside < RECUT_INSIDE * area:
        return None
    return small, np.maximum(quad.min(0), f.whole[:2]), np.minimum(quad.max(0), f.whole[2:])


def shows(g: Geometry, a: Features, b: Features) -> tuple[float, float] | None:
    """(the share of b's content box a's whole picture covers, and of a's box b's whole picture covers), laid
    on each other by the match (`a`: a's mirror image's features when the match is mirrored), or None without a
    transform. A crop of a photo shows under all of the photo, while the photo shows all of it
    (`curate.dedupe.cluster.representative`: an enlarged crop has more pixels and passed for the photo). Whole
    pictures, not boxes, are laid: a photo whose plain edge was cut as a band still shows all of its copy. Only for a
    match square to the pictures' sides (`SQUARE`, about 2 degrees): a copy turned in place has fill in its corners,
    and beside it an augmented dataset's full copies looked like crops (turned copies then represented 11 of 77
    clusters on `bench/dedupe.py --augmented`, against 1)."""
    if g.transform is None:
        return None
    m = np.array(g.transform, np.float64).reshape(2, 3)
    if abs(np.linalg.det(m[:, :2])) < 1e-9 or abs(m[0, 1]) + abs(m[1, 0]) > SQUARE * (abs(m[0, 0]) + abs(m[1, 1])):
        return None  # turned or sheared: its fill's corners would count as what the other does not show
    inv = cv2.invertAffineTransform(m)
    out = []
    for t, f, onto in ((m, a, b), (inv, b, a)):
        quad = (_corners(f.rect(whole=True)) @ t[:, :2].T + t[:, 2]).astype(np.float32)
        x0, y0, x1, y1 = onto.rect()
        area, _ = _intersect(quad, (x0, y0, x1, y1))
        out.append(round(min(1.0, area / max((x1 - x0) * (y1 - y0), 1e-9)), 3))
    return out[0], out[1]


def overlap_only(g: Geometry) -> bool:
    """Whether a pair fails for its overlap: as many keypoints agree as a review needs (`REVIEW_INLIERS`), over
    `SAME_CELLS` of the shared area and not along one line, on a transform that lays one picture over too little of
    the other (under `SAME_COVER`). Two crops of one photo that share a third of themselves (a crop of each end of a
    wide photo) are such a pair: different pictures, parts of one photo (`curate.dedupe.pairs.complete`); on
    `bench/dedupe.py --crops` they agree on 11-66 keypoints."""
    return g.inliers >= REVIEW_INLIERS and g.cells >= SAME_CELLS and g.spread >= SAME_SPREAD and g.cover < SAME_COVER


def denies(v: Verdict, keypoints: tuple[int, int], least: int = MIN_KEYPOINTS) -> bool:
    """Whether a look's verdict contradicts the thumbnails' "same": "different" between two pictures with
    `least` keypoints or more each (with fewer, the thumbnail is the better evidence)."""
    return v.decision == DIFFERENT and not v.untestable and min(keypoints) >= least


def detail(g: Geometry) -> bool:
    """Whether a "different" rests on `REVIEW_INLIERS` or more matches: they fix where the pictures overlap, and
    it is too little of them (one a detail of the other, a partial overlap), which more pixels do not move."""
    return g.inliers >= REVIEW_INLIERS


def triage(g: Geometry, corr: float, keypoints: tuple[int, int]) -> Verdict | None:
    """The verdict of the coarse look (features at `COARSE` px) when it settles the pair, else None:
    the same rule's "same", or "different" with fewer than `COARSE_REJECT` consistent matches, or with
    `REVIEW_INLIERS` or more: then the matches fix where the pictures overlap, and it is too little of
    them (a tile of a larger photo, a partial overlap), which more pixels do not move (701 such pairs
    on six of `bench/dedupe.py`'s corpora, all of different photos, all "different" at `WORK` px too).
    Everything else (review, or a few matches that might grow at full size) is looked at at `WORK`."""
    v = decide(g, corr, keypoints)
    if v.decision == SAME:
        return Verdict(SAME, f"{v.reason} (at {COARSE} px)", g)
    if v.decision == DIFFERENT and not v.untestable and (g.inliers < COARSE_REJECT or detail(g)):
        return v
    return None


def paneled(v: Verdict, a: Features, b: Features) -> Verdict:
    """`v`, or "review" when either picture is a collage (`curate.dedupe.decode.panels`: several photos side
    by side in one figure) and the matches lie inside one of its panels, or, for a "same", over some of its
    panels but not all: the photo and the collage are not one picture, though one holds the other, so they
    are never merged and the steward decides (crop the panel out, or keep one). A two-panel collage gave
    a photo 49-56 % of the larger picture ("same" by `decide`), a four-panel one 20-25 % ("different" with
    up to 143 matches), and a figure of four tiles of one photo 41 % of it over two panels ("same"). One
    panel is asked whatever `v` says, on `REVIEW_INLIERS` or more matches covering `REVIEW_COVER` of the
    smaller and `REVIEW_SHARE` of the panel. A black bar across one photo looks like a gutter, but a copy
    without it matches on both sides: every panel `PANEL_SPANNED`, "same" stands. `a` is as matched (its
    mirror image when the geometry is mirrored)."""
    g = v.geometry
    if g.transform is None or g.spot is None or g.inliers < REVIEW_INLIERS or not (a.panels or b.panels):
        return v
    m = np.array(g.transform, np.float64).reshape(2, 3)
    back = cv2.invertAffineTransform(m)
    spot_b = _corners(g.spot)
    sides = (
        (b, spot_b.astype(np.float32), a, m),
        (a, (spot_b @ back[:, :2].T + back[:, 2]).astype(np.float32), b, back),
    )
    for f, spot, other, onto in sides:
        panel = _holding(spot, f)
        if panel is None:
            continue
        laid = (_corners(other.rect()) @ onto[:, :2].T + onto[:, 2]).astype(np.float32)
        inter, _ = _intersect(laid, panel)
        smaller, larger = sorted((abs(cv2.contourArea(laid)), (panel[2] - panel[0]) * (panel[3] - panel[1])))
        if smaller > 0 and inter / smaller >= REVIEW_COVER and inter / larger >= REVIEW_SHARE:
            return _collage(v, f"{g.inliers} matching keypoints inside 1 of its {len(f.panels)} panels")
    for f, spot, _, _ in sides if v.decision == SAME else ():
        spanned = sum(_intersect(spot, p)[0] >= PANEL_SPANNED * (p[2] - p[0]) * (p[3] - p[1]) for p in f.panels)
        if f.panels and spanned < len(f.panels):
            return _collage(v, f"{g.inliers} matching keypoints over {spanned} of its {len(f.panels)} panels")
    return v


def _corners(rect) -> np.ndarray:
    """The four corners of `rect` (x0, y0, x1, y1), clockwise from the top left."""
    x0, y0, x1, y1 = rect
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def _collage(v: Verdict, said: str) -> Verdict:
    return replace(v, decision=REVIEW, reason=f"{PANEL} ({said})", untestable=False, unasked=False)


def _holding(spot: np.ndarray, f: Features) -> tuple[float, float, float, float] | None:
    """The panel of `f` holding `PANEL_INSIDE` of the quadrilateral `spot`, when it is at most `PANEL_MOST`
    of the picture; else None."""
    area = abs(cv2.contourArea(spot))
    for panel in f.panels if area > 0 else ():
        small = (panel[2] - panel[0]) * (panel[3] - panel[1]) <= PANEL_MOST * f.width * f.height
        if small and _intersect(spot, panel)[0] >= PANEL_INSIDE * area:
            return panel
    return None


def one_object(v: Verdict, a: Features, b: Features, coarse: bool = False, agreement=...) -> Verdict:
    """`v`, or "review" when its "same" rests on one object both pictures show while the rest of them,
    which has texture, differs (`_object_spots`). A clinic's measuring ruler laid beside different
    patients' lesions gives dozens of keypoints that agree on one transform, spread along it far enough
    to pass every rule of `decide` (`bench/dedupe.py --rulers`: 240 pairs of different photos in
    clusters before). A squeezed or warped copy is asked again under the affine and the perspective map
    its ratio matches fit best, since a similarity lays only a band of it. Spots are `RANSAC_PX` wide at
    `WORK` px; alike under `OBJECT_DESC`. Margins (bench/README.md, "one clinic's ruler"): different
    lesions beside the ruler have at most 0.115 of their spots alike on `--rulers` and 0.154 beside a
    ruler 1.3-1.8 times as large, hence `OBJECT_AGREE` = 0.2; of 3,757 true "same" verdicts on the other
    corpora 14 fall under it (noisy, blurred and small copies), none of them a copy's only way into its
    cluster. Thumbnail-sized pictures are not asked (`curate.dedupe.pairs.Verifier._tiny`).

    At `WORK` px, a "same" on a compact agreement (`_compact`) whose keypoints away from it could not be
    asked, or were alike under `OBJECT_SURE` (grainy skin's spots are alike by chance: 20-28 % beside one
    colour chart, a true copy's 38-49 %), is asked by its pixels (`unlike_away`): over `UNLIKE_SHARE` of
    them unlike is one object's agreement, "review".

    A "same" that could not be asked, its agreement on part of the pictures (away from it too few
    keypoints to tell, or under `OBJECT_CELLS` cells), is marked `unasked`: at `COARSE` px plain skin
    has few keypoints, and photos beside a large ruler, or at 1,024 px, were "same" there on 13-22
    matches, so the look at `WORK` px asks again (`curate.dedupe.pairs.Verifier`). With `coarse` (that
    look), spots alike never clear a partial agreement: blurred plain skin has look-alike descriptors.
    `agreement`: `_agreement(v, a, b)` when the caller has it already (`objects`), None included."""
    g = v.geometry
    found = _agreement(v, a, b) if agreement is ... else agreement
    if found is None:
        return v
    m, qa, qb, mapped, inlier = found
    agreeing = b.points[qb][inlier]
    x0, y0, x1, y1 = (float(c) for c in _cover(m, a, b)[2])
    px, py = b.points[:, 0], b.points[:, 1]
    da, db = a.desc.astype(np.float32), b.desc.astype(np.float32)
    found = _object_spots(
        agreeing,
        b.points,
        (px >= x0) & (px <= x1) & (py >= y0) & (py <= y1),
        _maps(mapped, a, qa, qb, b),
        lambda i, j: np.sqrt(((db[i] - da[j]) ** 2).sum(1)) < OBJECT_DESC,
        RANSAC_PX * max(b.width, b.height) / WORK,
        (b.width, b.height),
    )
    asked = found is not None and found[0] >= OBJECT_TESTED
    if asked and found[1] < OBJECT_AGREE * found[0]:
        said = f"{found[1]} of {found[0]} keypoints away from it alike"
        return Verdict(REVIEW, f"{ONE_OBJECT} (a ruler or label both show?); {said}; {v.reason}", g)
    if not coarse and (not asked or found[1] < OBJECT_SURE * found[0]) and _compact(agreeing, b):
        share = unlike_away(m, a, b, agreeing)
        if share is not None and share > UNLIKE_SHARE:
            said = f"{share:.0%} {UNLIKE_SAID}: a colour chart or label both show?"  # early: reasons are cut
            return Verdict(REVIEW, f"{ONE_OBJECT} ({said}); {v.reason}", g)
    # only the look at COARSE px is asked again; its spots alike are not to be trusted
    return replace(v, unasked=coarse and (found is not None or g.cells < OBJECT_CELLS))


def pixels_said(reason: str | None) -> bool:
    """Whether a review's reason is `one_object`'s on the pixels away from the agreement (`unlike_away`), also
    once stored marked as a stamp's (`curate.dedupe.pairs.stamps`: `STAMPED` before it, cut to 200 characters)."""
    said = (reason or "").removeprefix(STAMPED)
    return said.startswith(ONE_OBJECT) and UNLIKE_SAID in said


def _compact(agreeing: np.ndarray, b: Features) -> bool:
    """Whether the agreeing keypoints' hull is under `OBJECT_MOST` of b: an object's, not a photo's."""
    spots = np.asarray(agreeing, np.float32).reshape(-1, 2)
    return len(spots) >= 3 and cv2.contourArea(cv2.convexHull(spots)) < OBJECT_MOST * b.width * b.height


def unlike_away(m: np.ndarray, a: Features, b: Features, agreeing: np.ndarray) -> float | None:
    """Share of the pictures' shared area away from an agreement whose pixels, `a` laid on `b` at
    `PLACED_PX` px, are unlike; None when that area, its black and white fill left out, is under
    `UNLIKE_REST` of b, or a picture has no small copy. `m`: a's working pixels onto b's (2 x 3);
    `agreeing`: b's agreeing keypoints (n x 2).

    Why pixels: a 24-patch colour chart beside different close-ups on plain skin holds most of their
    keypoints, so `_object_spots` has too few away from it to ask, and the "same" stood (`bench/dedupe.py
    --charts`: 41 false pairs in clusters). Away from the chart one picture shows its lesion where the
    other shows skin. What a copy's edits do there is left out: pixels at or under `BLACK` or at or over
    `WHITE` in either (bars, frames, a rotation's fill), a tone change (a trimmed linear fit of b's grey
    on a's), a transform fitted on one corner of a smooth photo (refined by OpenCV's ECC, `_refined`,
    and `UNLIKE_SHIFT` px of play), lettering and drawn rings (strokes under `UNLIKE_THIN`). Measured on
    every corpus of `bench/dedupe.py` (bench/README.md, "Since 2026-12-07: the pixels away from a colour chart"):
    true pairs asked 0.000 against their photo (28), at most 0.032 between two copies (92) but for an app's
    filter against an annotated crop (0.076, 0.110) and stickers against a noisy copy (0.052); different
    pictures beside one chart 220 of 307 over `UNLIKE_SHARE`. Unlike in either picture: a lesion on one
    where the other shows skin. Not seen: a faint lesion, one outside the part both show, differences in
    thin lines only (a brick wall's mortar against skin), dark photos (their pixels are fill)."""
    ta, tb = a.small, b.small
    if ta is None or tb is None:
        return None
    h, w = tb.shape[:2]
    to_small = np.diag([w / b.width, h / b.height])
    onto = to_small @ m @ np.linalg.inv(np.diag([ta.shape[1] / a.width, ta.shape[0] / a.height, 1.0]))
    spots = np.asarray(agreeing, np.float64).reshape(-1, 2) @ to_small.T
    back = cv2.invertAffineTransform(onto).astype(np.float32)
    share = _unlike_share(back, ta, tb, spots)
    if share is None or share <= UNLIKE_SHARE:  # ECC takes most of the 9 ms a pair: only where it matters
        return share
    again = _unlike_share(_refined(back, ta, tb, spots), ta, tb, spots)
    return share if again is None else again


def _unlike_share(back: np.ndarray, ta: np.ndarray, tb: np.ndarray, spots: np.ndarray) -> float | None:
    """`unlike_away` with `back` (b's small pixels onto a's) laying small picture `ta` on `tb`; `spots`: the
    agreement in `tb`'s pixels."""
    h, w = tb.shape[:2]
    laid, inside = lay(ta, back, tb.shape, inverse=True)
    shape = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(shape, np.round(cv2.convexHull(spots.astype(np.float32))).astype(np.int32), 1)
    k = 2 * max(1, round(UNLIKE_MARGIN * max(w, h))) + 1
    on_it = cv2.dilate(shape, np.ones((k, k), np.uint8)) > 0
    laid, own = cv2.GaussianBlur(laid, (0, 0), 1.0), cv2.GaussianBlur(tb.astype(np.float32), (0, 0), 1.0)
    kept = inside & (laid > BLACK) & (own > BLACK) & (laid < WHITE) & (own < WHITE)
    away = kept & ~on_it
    if away.sum() < max(1.0, UNLIKE_REST * w * h):
        return None
    gain, offset = _tone(laid[kept], own[kept])
    laid = gain * laid + offset
    play = np.ones((2 * UNLIKE_SHIFT + 1,) * 2, np.uint8)
    off = np.maximum(_outside(own, laid, play), _outside(laid, own, play))
    unlike = ((off > UNLIKE_GREY) & away).astype(np.uint8)
    unlike = cv2.morphologyEx(unlike, cv2.MORPH_OPEN, np.ones((2 * UNLIKE_THIN + 1,) * 2, np.uint8))
    return float(unlike.sum() / away.sum())


def _outside(x: np.ndarray, y: np.ndarray, play: np.ndarray) -> np.ndarray:
    """How far each pixel of `x` lies outside the range of `y`'s pixels within `play` of it (0 inside)."""
    return np.maximum(np.maximum(x - cv2.dilate(y, play), cv2.erode(y, play) - x), 0)


def _refined(back: np.ndarray, ta: np.ndarray, tb: np.ndarray, spots: np.ndarray) -> np.ndarray:
    """`back` (b's small pixels onto a's, 2 x 3 float32) refined on the pixels by OpenCV's ECC (affine), or
    `back` itself when ECC does not converge or moves the agreeing `spots` by over `ECC_DRIFT` px. A transform
    that keypoints on one corner of a smooth photo fitted lays the far side a few pixels off, whose edges then
    read as unlike (a turned canvas against its shared-frame copy, v6: 0.246 unrefined, 0.000 refined)."""
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
    try:
        _, fit = cv2.findTransformECC(
            tb.astype(np.float32), ta.astype(np.float32), back.copy(), cv2.MOTION_AFFINE, criteria, None, 3
        )
    except cv2.error:
        return back
    moved = (spots @ fit[:, :2].T + fit[:, 2]) - (spots @ back[:, :2].T + back[:, 2])
    return fit if np.isfinite(fit).all() and np.abs(moved).max() <= ECC_DRIFT else back


def _tone(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(gain, offset) of y ~ gain * x + offset by least squares, fitted on every pixel and then twice again
    on the 70 % it fits best: a copy's tone change, not the part where the pictures differ. The gain is
    kept to 0.3-3, its offset fitted to it."""
    fit = np.ones(len(x), bool)
    gain, offset = 1.0, float(np.mean(y - x)) if len(x) else 0.0
    for _ in range(3):
        fx, fy = x[fit], y[fit]
        spread = float(fx.var()) if len(fx) >= 10 else 0.0
        if spread < 1e-6:
            break
        gain = float(((fx - fx.mean()) * (fy - fy.mean())).mean() / spread)
        offset = float(fy.mean() - gain * fx.mean())
        off = np.abs(gain * x + offset - y)
        fit = off <= np.quantile(off, 0.7)
    clipped = float(np.clip(gain, 0.3, 3.0))
    if clipped != gain and fit.any():  # the offset that goes with the gain kept
        offset = float(y[fit].mean() - clipped * x[fit].mean())
    return clipped, offset


def _agreement(v: Verdict, a: Features, b: Features):
    """(transform, a's and b's ratio-matched keypoints, a's keypoints laid on b, which matches agree) of a
    "same" found by local features; None for any other verdict or under 3 matches."""
    g = v.geometry
    if v.decision != SAME or g.transform is None or a.desc is None or b.desc is None:
        return None
    m = np.array(g.transform, np.float64).reshape(2, 3)
    qa, qb = ratio_matches(a.desc, b.desc)
    if len(qa) < 3:
        return None
    mapped = a.points @ m[:, :2].T + m[:, 2]
    return m, qa, qb, mapped, np.hypot(*(mapped[qa] - b.points[qb]).T) < RANSAC_PX


def objects(v: Verdict, a: Features, b: Features, coarse: bool = False, ask: bool = True) -> Verdict:
    """`v` after `one_object` (with `ask`) and `banded`, on one ratio matching of the pair's descriptors."""
    found = _agreement(v, a, b)
    return banded(one_object(v, a, b, coarse, found) if ask else v, a, b, found)


def banded(v: Verdict, a: Features, b: Features, agreement=...) -> Verdict:
    """`v`, or "review" when its "same" agrees only in a band along one side of both pictures: long, shallow,
    in the outer part (`curate.imaging.in_band`, the leakage audit's rule too). A news site's banner
    across the foot of every photo it serves (a gradient, a logo and its lettering: no band rule cuts it)
    gave different photos 30-190 agreeing keypoints on it, over 4-6 cells, and on plain skin the banner holds
    most keypoints, so `one_object` had nothing away from it to ask. A copy agrees where the photo is, or,
    squeezed to another aspect ratio, in a band that the affine map its matches fit best widens to the rest.
    `agreement`: `_agreement(v, a, b)` when the caller has it already (`objects`), None included."""
    found = None if v.decision != SAME else _agreement(v, a, b) if agreement is ... else agreement
    if found is None or found[4].sum() < 3:
        return v
    _, qa, qb, _, inlier = found
    if not (in_band(b.points[qb][inlier], b.width, b.height) and in_band(a.points[qa][inlier], a.width, a.height)):
        return v
    pa, pb = a.points[qa].astype(np.float32), b.points[qb].astype(np.float32)
    if len(qa) >= 6:  # a squeezed copy: a similarity lays only a band of it, an affine map the rest too
        m, kept = cv2.estimateAffine2D(pa, pb, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=2000)
        if m is not None and kept.sum() >= 3 and not in_band(pb[kept.ravel() > 0], b.width, b.height):
            return v
    return Verdict(REVIEW, f"{ONE_OBJECT} (a site's banner along one side both show?); {v.reason}", v.geometry)


def _maps(mapped: np.ndarray, a: Features, qa: np.ndarray, qb: np.ndarray, b: Features):
    """`a`'s keypoints laid on `b`: by the verdict's transform (`mapped`), then by the affine and the
    perspective map the ratio matches fit best (RANSAC), each computed only when asked for."""
    yield mapped
    pa, pb = a.points[qa].astype(np.float32), b.points[qb].astype(np.float32)
    if len(qa) >= 6:
        m, _ = cv2.estimateAffine2D(pa, pb, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=2000)
        if m is not None:
            yield a.points @ m[:, :2].T + m[:, 2]
    if len(qa) >= 8:
        h, _ = cv2.findHomography(pa, pb, cv2.RANSAC, RANSAC_PX, maxIters=2000)
        if h is not None:
            yield cv2.perspectiveTransform(a.points.reshape(-1, 1, 2).astype(np.float64), h).reshape(-1, 2)


def _object_spots(
    agreeing, points, inside, laid_maps, alike, radius: float, size: tuple[int, int]
) -> tuple[int, int] | None:
    """(spots tested, spots alike) away from a match's agreement, under the first map with `OBJECT_TESTED`
    spots of which `OBJECT_AGREE` are alike, else under the map whose spots were most alike; None when the
    agreement covers the pictures' keypoints, or `OBJECT_MOST` of b (`one_object`): an object both show is
    smaller (a ruler across a photo: at most 0.10 of it on `--rulers`), while a copy of a close-up under a
    heavy vignette, whose corners' pores it darkened into JPEG noise (none of 104-213 keypoints there alike),
    agrees over 0.2-0.4 of it (`bench/dedupe.py --templates`).

    `agreeing`: b's agreeing keypoints (n x 2); `points`: all of b's keypoints, `inside`: which of them lie
    in the shared area; `laid_maps`: the other picture's keypoints laid on b, one array per map tried (the
    match's own first; later ones computed only when asked for); `alike(i, j)`: which b keypoints i are alike
    the other's keypoints j (descriptor distance); `radius`: px that make a spot; `size`: b's width and height.

    Guided matching: once the transform is known, every keypoint of b away from the agreeing ones that has
    a keypoint of the other picture on its spot is asked whether that one is alike, with no ratio test. A
    copy's spots agree even where an edit cost the ratio test its matches; a ruler's match leaves a
    different lesion on the spots. Asked only when `OBJECT_OUTSIDE` of b's keypoints lie away from the
    agreement (a copy's agreement covers the photo); a map with `OBJECT_TESTED` spots or more decides."""
    agreeing, points = np.asarray(agreeing, np.float32).reshape(-1, 2), np.asarray(points, np.float32).reshape(-1, 2)
    if len(agreeing) < 3 or not inside.any():
        return None
    hull = cv2.convexHull(agreeing)
    if cv2.contourArea(hull) >= OBJECT_MOST * size[0] * size[1]:
        return None
    margin = OBJECT_MARGIN * max(size)
    near = np.array([cv2.pointPolygonTest(hull, (float(x), float(y)), True) >= -margin for x, y in points], bool)
    away = np.flatnonzero(inside & ~near)
    if len(away) < OBJECT_OUTSIDE * inside.sum():
        return None
    best = (0, 0)
    for onto in laid_maps:
        onto = np.asarray(onto, np.float32).reshape(-1, 2)
        close = np.hypot(points[away, None, 0] - onto[None, :, 0], points[away, None, 1] - onto[None, :, 1]) <= radius
        i, j = np.nonzero(close)
        tested = np.unique(i)
        found = np.unique(i[alike(away[i], j)]) if len(i) else tested
        spots = (len(tested), len(found))
        if spots[0] >= OBJECT_TESTED and spots[1] >= OBJECT_AGREE * spots[0]:
            return spots  # alike where it was asked: the photo, not one object
        best = max(best, spots, key=lambda t: (t[0] >= OBJECT_TESTED, t[1] / max(t[0], 1), t[0]))
    return best


def in_place_correlation(g: Geometry, a: Features, b: Features) -> float | None:
    """For a transform that lays `a`'s whole picture on `b`'s (corners within `IN_PLACE` of the side:
    re-encodes, tone changes, a bar, a sticker, a watermark added, and also two different photos of one
    size under a stock site's stamp, whose keypoints agree only on the stamp), the pixels' correlation
    once laid over each other (`curate.imaging.laid_correlation`, at `PLACED_PX` px, near-black left out);
    None for any other transform, or with under a tenth of the picture to compare.

    On its own it does not separate: a sticker leaves a true copy at 0.36, and stamped different photos
    reach 0.46 (bench/README.md, `--stamped`). What does is three or more pictures all laid in place
    below `curate.imaging.STAMP_NCC` with each other (`curate.dedupe.pairs.stamps`)."""
    if g.transform is None or a.small is None or b.small is None:
        return None
    m = np.array(g.transform, np.float64).reshape(2, 3)
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.rect(whole=True), b.rect(whole=True)
    corners = np.array([[ax0, ay0], [ax1, ay0], [ax1, ay1], [ax0, ay1]]) @ m[:, :2].T + m[:, 2]
    target = np.array([[bx0, by0], [bx1, by0], [bx1, by1], [bx0, by1]])
    if np.abs(corners - target).max() > IN_PLACE * max(bx1 - bx0, by1 - by0):
        return None
    ta, tb = a.small, b.small
    onto = (
        np.diag([tb.shape[1] / b.width, tb.shape[0] / b.height])
        @ m
        @ np.diag([a.width / ta.shape[1], a.height / ta.shape[0], 1.0])
    )  # a's small picture onto b's
    return laid_correlation(ta, tb, onto, BLACK, PLACED_PX)
