"""What a copy took away from its photo or drew onto it, measured once per picture when it is hashed, for the
representative rule (`curate.dedupe.cluster.representative`): the copy a cluster sends to labelling and export
should be the photo, not a journal's grey print of it nor a teaching figure with a ring and an arrow drawn on it.

Pixels, resolution and arrival order cannot tell them apart: a grey copy or an annotated one has the pixels of its
photo, and whichever arrived first won the tie. On `bench/dedupe.py --retouched --photos` (skin photos, each with
four edited copies) the photo was its cluster's representative in 1 of 120 clusters, an annotated copy in 40,
a grey one in 5. Three measures, each of a picture alone, compared only between members of one cluster:

- `colour`: the colour left once what the brightness explains is taken out (the chroma's spread about a
  quadratic fit on luma, YCrCb units). A grey copy has none (0.00 on every grey copy of both benchmark corpora);
  a sepia print is a tint of brightness and has little (0.8-1.0), but so do photos of plain skin (0.87 the
  least), so only grey is told apart: under `GREY` while another member has `COLOURED` or more.
- `drawn`: the share of pixels in a drawing's pure colours (HSV saturation and value both `PURE` or more): a
  marker's ring and arrow, a sticker. Photos have almost none (at most 0.003 % on both corpora, tone edits
  included); an annotated copy 0.04-1.2 %, a sticker 2 %, an app filter's boosted colours up to 30 %. A member
  with more than `DRAWN_RATIO` times the least of the members with as many pixels or more, plus `DRAWN_MARGIN`,
  is not chosen while one with less is (a shrunk copy of a vivid photo has fewer pure pixels, not fewer marks).
- `tint`: the mean chroma (Cr, Cb). A camera's warm cast moved it 24-34 units from its photo on the skin corpus, an
  app's filter 16-44; a crop, a re-encode, sharpening, denoising or an enlargement at most 4.5 (v6's tone edits up
  to 18 and a black bar 11: edits too). Which of two members was changed no measure of one picture says; a third
  does: a member over `TINT_FAR` from every member that has another within `TINT_NEAR` is passed over
  (`recoloured`). On that corpus a cast represented 35 clusters and a filter 13; now none, and the photo 60 of
  120 instead of 27, no photo losing its place on any corpus (bench/README.md).

A fourth needs no pixels: a copy compressed again, at the same size and in the same format, is a smaller file (heavy
JPEG at quality 12, re-saved: about a third of its photo's bytes). Among members of one format and source priority
with as many pixels (`SAME_PIXELS`) and no frame, one with under 1/`RECOMPRESSED` of the most bytes per pixel is
passed over: on the retouched skin photos the heavily compressed copy represented 25 clusters once the grey and
ringed copies were passed over. Not across formats (a WebP is smaller than its JPEG re-save), and not at a lower
ratio: lettering is bytes, and at 1.5 a watermarked and a captioned copy represented v6 clusters (at 1.3, three).
difPy keeps the largest file outright (bench/README.md).

A fifth needs no pixels either, and works across formats: the quality a JPEG was saved at, read off the
quantization tables in its header (`quality`; a JPEG or a phone's MPO; a PNG or BMP counts as 100, other formats
are unknown). A copy saved at quality 10 has the pixels of its photo and a file of a tenth of its bytes, but the
photo was a PNG, so the bytes rule, within one format, never compared them: on `bench/unseen_edits.py` such
copies, arriving first, represented 3 of their 7 clusters. Among members of one source priority with as many
pixels, one at `POOR` or under, with another that is its picture at least `QUALITY_GAP` better, is passed over
(`poorly_saved`, `curate.dedupe.cluster._not_poorly_saved`).

The measures of pixels are OpenCV's colour conversions, one NumPy least-squares fit and a mean, on the pixels the
hash step decoded anyway.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from curate.imaging import DRAFT_FORMATS

FIT_PIXELS = 4096  # pixels the colour fit takes at most (every k-th): a whole picture's statistic
INSET = 0.1  # colour is measured this share of each side inside the box: a frame's seam is left at its edge
GREY = 0.3  # colour left under this: a grey picture
COLOURED = 0.8  # and it loses only to a member with this much or more
PURE = 230  # HSV saturation and value (0-255) from which a pixel is a drawing's pure colour
RECOMPRESSED = 1.8  # under 1/this of the most bytes per pixel (its format, source priority): compressed again
DRAWN_RATIO = 1.5
DRAWN_MARGIN = 0.0002  # 0.02 %: a few pixels of a picture decoded at 128-256 px
TINT_NEAR = 4.0  # mean chroma (YCrCb units) within this of another member's: the colours two members agree on
TINT_FAR = 12.0  # further than this from every such member: colours changed (`recoloured`)
POOR = 50  # a JPEG saved at this quality or under (`quality`) is a poor copy
QUALITY_GAP = 25  # when a member of its source priority and as many pixels was saved this much better
LOSSLESS_FILES = {"PNG", "BMP"}  # quality 100: nothing was compressed away (a WebP or TIFF may be lossy or not)
# The IJG (libjpeg) luminance table at quality 50 (the JPEG standard's Annex K.1), row by row, which encoders scale
_IJG_LUMA = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)


def measure(rgb: np.ndarray) -> tuple[float, float]:
    """(colour, drawn) of an RGB uint8 picture (its content box) as decoded for hashing: a marker's stroke is a
    pixel or two wide there, and shrinking the picture first would blend it into the skin beside it; the colour
    fit takes every k-th pixel, at most `FIT_PIXELS`, away from the box's edge (`INSET`)."""
    if rgb.size == 0:
        return 0.0, 0.0
    rgb = np.ascontiguousarray(rgb)
    pure = cv2.inRange(cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV), (0, PURE, PURE), (255, 255, 255))
    drawn = cv2.countNonZero(pure) / pure.size
    ycc = _inner_ycc(rgb)
    y = ycc[:, 0] / 255.0
    light = np.stack([np.ones_like(y), y, y * y], 1)
    fit, *_ = np.linalg.lstsq(light, ycc[:, 1:], rcond=None)
    left = ycc[:, 1:] - light @ fit
    return round(float(np.sqrt((left**2).sum(1).mean())), 3), round(drawn, 6)


def tint(rgb: np.ndarray) -> tuple[float, float]:
    """The picture's mean chroma (Cr, Cb less their grey 128), inside `INSET` as `measure` takes it: a colour
    cast or an app's filter moves it, a crop, re-encode or sharpening barely (`recoloured`)."""
    if rgb.size == 0:
        return 0.0, 0.0
    cr, cb = _inner_ycc(np.ascontiguousarray(rgb))[:, 1:].mean(0) - 128.0
    return round(float(cr), 2), round(float(cb), 2)


def _inner_ycc(rgb: np.ndarray) -> np.ndarray:
    """YCrCb of every k-th pixel (at most `FIT_PIXELS`) `INSET` inside the picture, as float64 rows."""
    h, w = rgb.shape[:2]
    inner = rgb[round(h * INSET) : h - round(h * INSET), round(w * INSET) : w - round(w * INSET)]
    ycc = cv2.cvtColor(np.ascontiguousarray(inner if inner.size else rgb), cv2.COLOR_RGB2YCrCb).reshape(-1, 3)
    return ycc[:: max(1, len(ycc) // FIT_PIXELS)].astype(np.float64)


def agreed(tints: list[tuple[float, float] | None]) -> list[tuple[float, float]]:
    """Of a cluster's members' tints (None: unknown), those within `TINT_NEAR` of another's: the colours two
    members agree on, which `recoloured` measures every member against (computed once a cluster)."""
    known = [t for t in tints if t is not None]
    return [t for k, t in enumerate(known) if any(_apart(t, o) <= TINT_NEAR for j, o in enumerate(known) if j != k)]


def recoloured(tint: tuple[float, float] | None, agreeing: list[tuple[float, float]]) -> bool:
    """Whether a member with `tint` had its colours changed (a cast, a filter): over `TINT_FAR` from each of
    `agreeing` (`agreed`), when there are any. Two members alone never tell which was changed."""
    return tint is not None and bool(agreeing) and all(_apart(tint, t) > TINT_FAR for t in agreeing)


def _apart(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def bytes_per_pixel(size_bytes: int | None, pixels: float) -> float | None:
    """A file's bytes per pixel; None when unknown."""
    return None if not size_bytes or pixels <= 0 else size_bytes / pixels


def recompressed(per_pixel: float | None, most: float) -> bool:
    """Whether a file with `per_pixel` bytes per pixel was compressed again, against `most` (the most of an
    unframed member of its format and source priority with as many pixels)."""
    return per_pixel is not None and per_pixel * RECOMPRESSED < most


def grey_beside_colour(colour: float | None, others: list[float | None]) -> bool:
    """Whether a member with `colour` is a grey copy in a cluster where members with colour are at least as
    many as grey ones: a grey photo's copies stay grey, and one copy's colour (a frame's seam, a page's
    link) does not make the photo a copy."""
    grey = sum(c is not None and c < GREY for c in others)
    coloured = sum(c is not None and c >= COLOURED for c in others)
    return colour is not None and colour < GREY and coloured >= max(grey, 1)


def drawn_over(drawn: float | None, least: float) -> bool:
    """Whether a member with `drawn` carries more of a drawing's colours than `least` (the least of the members
    with as many pixels or more)."""
    return drawn is not None and drawn > least * DRAWN_RATIO + DRAWN_MARGIN


def quality(file_format: str, tables: tuple[tuple[int, ...], ...]) -> int | None:
    """The quality (1-100) a JPEG was saved at, read off its first (luminance) quantization table: the IJG
    quality whose scaled table has the nearest sum (a camera's or an editor's own tables land near the IJG
    quality they match). A PNG or BMP is 100; anything else None (unknown). Pillow reads the tables but names no
    quality, and no maintained library estimates one from them (ImageMagick's `identify` does, as a program)."""
    if file_format in LOSSLESS_FILES:
        return 100
    if file_format not in DRAFT_FORMATS or not tables or len(tables[0]) != 64:  # a phone's MPO is a JPEG
        return None
    total = sum(tables[0])
    sums = _IJG_SUMS[max(tables[0]) > 255]
    return min(range(1, 101), key=lambda q: (abs(sums[q - 1] - total), -q))


def _ijg_sum(q: int, most: int) -> int:
    """The sum of the IJG luminance table libjpeg writes at quality `q` (its scaling, clamped to 1-`most`)."""
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return sum(min(most, max(1, (v * scale + 50) // 100)) for row in _IJG_LUMA for v in row)


# baseline tables (8-bit entries: Pillow, most cameras), and 16-bit ones (libjpeg's cjpeg under quality 25)
_IJG_SUMS = tuple(tuple(_ijg_sum(q, most) for q in range(1, 101)) for most in (255, 32767))


def poorly_saved(saved: int | None, best: int) -> bool:
    """Whether a member saved at quality `saved` is a poor copy beside `best` (the best quality of a member of its
    source priority with as many pixels): at `POOR` or under, and `QUALITY_GAP` or more below it."""
    return saved is not None and saved <= POOR and best - saved >= QUALITY_GAP
