"""A photo shown inside a screen or on a page: the box the content box is cut to where no band is left to peel.

A chat app's screenshot lays a photo in a bubble among message bubbles, a header and an input bar; a printed page
holds it under a heading above lines of text, and a photo of the page shows it in perspective on a desk. Neither
is a band of one colour on a side (`curate.dedupe.content`), so the box kept the app or the page, and pictures of
one app or one template around different photos were merged on its keypoints: on `bench/unseen_edits.py`, seven
screenshots of one light chat app (21 false pairs) and five photographed pages (10), with 0 and 1 of 7 such
copies found with their photo.

What such a picture has and a photo does not: flat surroundings drawn around a picture with straight, sharp
sides. On the picture shrunk to `SIDE` px, a pixel is flat where its 3 x 3 morphological gradient, after a
`BLUR` (a desk's grain, a print's noise, JPEG's ringing), spans `EDGES` grey levels or fewer; the surroundings are
the flat pixels joined to the picture's edge, and the inset is the largest region they leave (`_region`) when:
- it keeps off the edge on every side, holds `LEAST` to `MOST` of the picture, and is at most `LONGEST` times
  as long as wide (a ruler is longer);
- its convex hull is a quadrilateral (`cv2.approxPolyDP`, `QUAD_EPS`) it overlaps by `SOLID` or more;
- its sides are sharp: the unblurred gradient is `STEP` or more near `SHARP` of each side's points and
  `SHARP_MEAN` of all (a lesion on plain skin is left by its skin as a photo is by a screen, but its edge fades:
  on the corpora such blobs step on at most half their sides' points);
- it is not a block of text: under `LETTERING` of its pixels are the surroundings' grey (the paper between the
  lines is; a photo's pixels are not);
- its surroundings are drawn or printed, and it is no smoother than they (`_drawn_around`): a colour card, a
  patient's label or a hard shadow on a close-up's skin has straight, sharp sides too, but skin's grain around it.
A second threshold (`EDGES`) lets a faint outline through, a light bubble around the photo. A page filling the
picture has no surroundings joined to its edge, only its paper: a third pass takes the largest flat part, if it
holds `PAPER` of the picture, as surroundings too. Once a region is found, the same search runs inside it with the
flat pixels `PAGE_RIM` px in from its outline as surroundings (a page's own edge is a line, its paper inside); a
region found there (the photo on the page) is kept when under `PAGE_TOUCH` of its outline lies in that rim (a
photo's own plain border would). The box is the rows and columns the region fills to `FILLED` of its most: a
photo in perspective without the page's corners, a title or a time stamp joined to one side left out.

`curate.dedupe.content` asks for the inset only where no band is left to peel, and peels the inset's own bands
after (a bubble's margin). A probe's 157 pictures with a rectangle in them (cards, labels, shadows, rulers and
bandages on skin, monitors, books, paintings, tiles): only a painting, a window, a book or a product on a plain
wall, table or backdrop is cut to, as its every copy is. On the 11,204 pictures of `bench/dedupe.py`'s corpora
(scikit-image's photos and tiles, skin photos, close-ups on plain skin, dermatoscope photos, every edit and
template) no content box changes. The rule is OpenCV's morphology, connected components and polygon approximation;
only the tests of shape are ours: no library answers "a photo shown inside a screen or on a page".
"""

from __future__ import annotations

import cv2
import numpy as np

SIDE = 256  # px: the longer side the picture is searched at (shrunk by area: noise averages out)
BLUR = 0.8  # Gaussian sigma (px at SIDE) before the gradient: a table's grain, a print's noise, JPEG's ringing
EDGES = (6, 16)  # grey levels a 3 x 3 neighbourhood may span and still be flat: first, then if nothing was found
QUAD_EPS = 0.03  # share of the hull's perimeter the quadrilateral may stray from it
SOLID = 0.9  # the region and its quadrilateral overlap by at least this much (intersection over union)
LEAST = 0.08  # the inset holds at least this share of the picture (a sticker, an avatar: less)
MOST = 0.85  # and at most this share (a photo in a thin frame the band rule cuts)
LONGEST = 4.0  # and its longer side is at most this many times its shorter (a ruler beside a lesion: longer)
STEP = 20  # grey levels across a side, unblurred, where the photo meets its surroundings (`_sharp`)
SHARP = 0.4  # share of each side's points that step so at least
SHARP_MEAN = 0.75  # and of all four sides' points (photos in a screen or on a page: 0.87 and more)
SAMPLES = 32  # points looked at along each side, from a tenth to nine tenths of it (corners round off)
LETTERING = 0.4  # share of a region's pixels in its surroundings' grey that makes it a block of text (measured:
GROUND_TOL = 12  # text 0.56, photos 0.05-0.18), within this many grey levels of their median
PAPER = 0.15  # share of the picture the largest flat part holds to be a page's paper (`_region`'s `paper`)
PAGE_RIM = 5  # px at SIDE in from a found region's outline whose flat pixels are a page's paper
PAGE_TOUCH = 0.2  # share of a photo's outline on a page that may lie in that rim (pages 0-0.14; insides of photos
# found in a chat, their own plain border taken for paper, 0.26 and more)
SURROUNDED = 0.15  # share of the picture the surroundings hold at least (around the photos found: 0.30 and more)
GRAIN = 4  # grey levels the surroundings' unblurred 3 x 3 gradient spans at most at the median (`_drawn_around`)
GRAIN_GAP = 3  # px at SIDE between the region's outline and the pixels it is compared with, either way
FILLED = 0.5  # the box's rows and columns are those the region fills to this share of its fullest
_KERNEL = np.ones((3, 3), np.uint8)
_NEAR = np.ones((5, 5), np.uint8)  # the step may lie two pixels either side of the region's outline


def inset(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) in `rgb`'s pixels of the photo shown inside it (module docstring), or None."""
    h, w = rgb.shape[:2]
    if min(h, w) < 16:
        return None
    if rgb.ndim == 3:
        rgb = np.ascontiguousarray(rgb[..., :3]) if rgb.shape[2] >= 3 else rgb[..., 0]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    scale = min(1.0, SIDE / max(h, w))
    if scale < 1.0:
        grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    grey = np.ascontiguousarray(grey, np.uint8)
    steps = cv2.morphologyEx(grey, cv2.MORPH_GRADIENT, _KERNEL)
    near = cv2.dilate(steps, _NEAR)
    gradient = cv2.morphologyEx(cv2.GaussianBlur(grey, (0, 0), BLUR), cv2.MORPH_GRADIENT, _KERNEL)
    whole = np.ones(grey.shape, bool)
    for edge, paper in [(e, 0.0) for e in EDGES] + [(EDGES[-1], PAPER)]:
        flat = gradient <= edge
        if (found := _region(flat, (steps, near), grey, whole, paper=paper)) is not None:
            page = _region(flat, (steps, near), grey, found, PAGE_RIM)  # a photo on a page: the paper is around it
            mask = found if page is None else page
            x0, x1 = _filled(np.count_nonzero(mask, axis=0))
            y0, y1 = _filled(np.count_nonzero(mask, axis=1))
            f = 1.0 / scale
            return int(x0 * f), int(y0 * f), min(w, int(np.ceil(x1 * f))), min(h, int(np.ceil(y1 * f)))
    return None


def _region(
    flat: np.ndarray,
    gradients: tuple[np.ndarray, np.ndarray],
    grey: np.ndarray,
    within: np.ndarray,
    rim_px: int = 1,
    paper: float = 0.0,
) -> np.ndarray | None:
    """The inset among the pixels `within` (the whole picture, or a region found in it) as a boolean mask, or None
    (module docstring). `flat`: the flat pixels; `gradients`: the unblurred gradient, and it dilated (`_sharp`);
    `grey`: the picture. The surroundings are the flat pixels joined to the rim `rim_px` wide inside the edge of
    `within`, and with `paper` the largest flat part if it holds that much."""
    kernel = np.ones((2 * rim_px + 1, 2 * rim_px + 1), np.uint8)
    rim = within & ~cv2.erode(within.view(np.uint8), kernel, borderValue=0).view(bool)
    flat = (flat & within).view(np.uint8)
    count, parts = cv2.connectedComponents(flat, connectivity=4)
    joined = np.zeros(count, bool)  # a lookup by label: np.isin sorts, at ten times the cost
    joined[parts[rim]] = True
    if paper and count > 1:  # a page filling the picture: its paper, the largest flat part, is around the photo
        sizes = np.bincount(parts.ravel(), minlength=count)
        largest = 1 + int(np.argmax(sizes[1:]))
        joined[largest] |= sizes[largest] >= paper * np.count_nonzero(within)
    joined[0] = False  # not flat
    around = joined[parts] | ~within | rim  # the surroundings: flat and joined to the edge
    if np.count_nonzero(around & within) < SURROUNDED * np.count_nonzero(within):
        return None  # a photo's own few flat pixels at its edge: nothing drawn around a picture
    rest = (~around).view(np.uint8)
    if rim_px > 1:  # on a page, lettering is lines: a title over the photo is not part of it
        rest = cv2.morphologyEx(rest, cv2.MORPH_OPEN, kernel)
    count, regions, stats, _ = cv2.connectedComponentsWithStats(rest, connectivity=8)
    if count < 2:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh, area = (int(v) for v in stats[k])
    if not LEAST <= area / np.count_nonzero(within) <= MOST or max(bw, bh) > LONGEST * min(bw, bh):
        return None  # the cheap test first: the others look at every pixel around the region
    region = regions == k
    outside = cv2.dilate(region.view(np.uint8), _KERNEL).view(bool) & ~region  # the pixels just around it
    if not outside.any():
        return None
    if np.count_nonzero(outside & rim) > (0 if rim_px == 1 else PAGE_TOUCH * np.count_nonzero(outside)):
        return None  # the picture's own content reaches its edge: no surroundings on every side
    ground = np.median(grey[outside])  # lettering is mostly its paper between the strokes and lines; a photo is not
    if np.count_nonzero(np.abs(grey[region].astype(np.int16) - ground) <= GROUND_TOL) >= LETTERING * area:
        return None
    steps, near = gradients
    if not _drawn_around(region, flat.view(bool), steps):
        return None
    outline, _ = cv2.findContours(region.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(max(outline, key=cv2.contourArea))
    quad = cv2.approxPolyDP(hull, QUAD_EPS * cv2.arcLength(hull, True), True)
    if len(quad) != 4 or _overlap(region, quad) < SOLID:
        return None
    sides = _sharp(near, quad.reshape(4, 2))
    if sides.min() < SHARP or sides.mean() < SHARP_MEAN:
        return None  # a soft edge: a lesion fading into its skin, not a photo laid on a screen
    return region


def _drawn_around(region: np.ndarray, flat: np.ndarray, steps: np.ndarray) -> bool:
    """Whether the flat pixels around `region` (`GRAIN_GAP` px and more from it) are drawn or printed, and the
    region no smoother than they: their unblurred 3 x 3 gradient `steps` is `GRAIN` grey levels or less at the
    median (an app's screen 0, a photographed page's paper 2-4; skin 6-8), and the region's own flat pixels
    reach their upper quartile. A colour card, a patient's label or a shadow lying on the skin of a close-up
    has sharp, straight sides too, but skin's grain around it, and is printed flat or smoother than the skin:
    taken for the photo, different lesions beside one card were merged on it (a probe: 42 false pairs)."""
    gap = np.ones((2 * GRAIN_GAP + 1, 2 * GRAIN_GAP + 1), np.uint8)
    around = flat & ~cv2.dilate(region.view(np.uint8), gap).view(bool)
    if not around.any() or np.median(steps[around]) > GRAIN:
        return False
    inside = flat & cv2.erode(region.view(np.uint8), gap).view(bool)
    return not inside.any() or np.percentile(steps[inside], 75) >= np.percentile(steps[around], 75)


def _filled(counts: np.ndarray) -> tuple[int, int]:
    """First and past-last index where `counts` (a mask's pixels per column or row) reach `FILLED` of their most:
    the box inside a photo laid in perspective (a page's corners are no part of it), less a title or a time
    stamp joined to one side."""
    full = np.flatnonzero(counts >= FILLED * counts.max())
    return int(full[0]), int(full[-1]) + 1


def _overlap(region: np.ndarray, quad: np.ndarray) -> float:
    """Intersection over union of the boolean mask `region` and the filled quadrilateral `quad`."""
    filled = np.zeros(region.shape, np.uint8)
    cv2.fillConvexPoly(filled, quad, 1)
    inside = filled.view(bool)
    return np.count_nonzero(region & inside) / max(np.count_nonzero(region | inside), 1)


def _sharp(near: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(4,) the share of `SAMPLES` points along each side of the quadrilateral `corners` (4, 2: x, y) where
    `near` (the unblurred gradient, dilated) is `STEP` or more."""
    t = np.linspace(0.1, 0.9, SAMPLES)[:, None]
    h, w = near.shape
    out = np.empty(4)
    for i in range(4):
        p, q = corners[i].astype(np.float64), corners[(i + 1) % 4].astype(np.float64)
        pts = np.rint(p + (q - p) * t).astype(np.int64)
        out[i] = (near[pts[:, 1].clip(0, h - 1), pts[:, 0].clip(0, w - 1)] >= STEP).mean()
    return out
