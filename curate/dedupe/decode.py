"""Read a stored original once, cheaply, into what every hashing method needs.

JPEGs are decoded at reduced scale and turned upright by their EXIF
orientation, as the catalogue's width/height are (`curate.imaging.open_upright`). Large
solid-black areas (anonymisation bars, the corners a small rotation leaves)
are in-painted from their surroundings so that they do not dominate the
low frequencies the hashes look at. Borders, frames and padding are cut
away first (`curate.dedupe.content`), so every code describes the content box;
a picture turned on a larger canvas is turned back upright (`turned_back`).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from curate.dedupe import fidelity
from curate.dedupe.content import ContentBox, content_box
from curate.dedupe.kept import Kept
from curate.imaging import DRAFT_FORMATS, open_upright, to_rgb

THUMB = 64  # side of the square grey thumbnail every code is computed from
BLACK = 16  # grey level at or below which a pixel counts as masked (bar, rotation fill)
LOSSLESS = {"PNG", "BMP", "TIFF", "WEBP", "GIF", "HEIF"}
FILL_TOL = 6  # grey levels a corner's fill may differ from its corner pixel (`rotation_fill`)
FILL_STD = 3.0  # and its spread: a flat colour (JPEG noise beside a textured photo: up to 2.2)
FILL_FIT = 0.9  # share of its enclosing rectangle a rotated picture fills
FILL_LEAST = 0.3  # and of the canvas (a 45-degree turn of a 2:1 picture: 0.44; a fundus tile's rim: 0.16)
TURN_INSET = 1.0  # thumbnail pixels a picture turned back is cut inside each of its edges (`turned_back`)
STOP_FIT = 0.9  # a round field of view: its ellipse and the field overlap this much (`field_stop`; a square and
# the disc inside it: 0.79)
STOP_AXIS = 1.05  # and the ellipse is no wider than this times the picture's longer side (turned copies: 1.1-5.5)
GUTTER_TOL = 8  # grey levels a gutter's pixels may differ from its colour (`panels`)
GUTTER_SHARE = 0.98  # share of a gutter line's pixels within GUTTER_TOL
GUTTER_MOST = 0.3  # a gutter is at most this share of the side thick
EDGE_SHARE = 0.75  # beside a gutter, a line with under this share in its colour (a photo's edge, `_edge`)
EDGE_LINES = 4  # within this many lines of it
GUTTER_SAMPLES = 32  # pixels a line's colour is the median of
PANEL_LEAST = 0.2  # each panel at least this share of the side
PANEL_STD = 8.0  # and not flat
PANEL_PX = 200  # pictures whose longer side is shorter are not searched for panels (too small for a figure)
PANEL_SIDE = 512  # panels are searched on the content box decoded at about this side (`box_panels`)
PANEL_DECODED = 384  # or on the picture as decoded for its codes, when its box is this large already
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))  # scipy.ndimage's default structure in 2-D


@dataclass(frozen=True)
class Decoded:
    thumb: np.ndarray  # (THUMB, THUMB) uint8, upright, black areas in-painted
    pixel_sha256: str  # digest of the decoded pixels (see `pixel_digest`)
    masked: float  # fraction of the thumbnail that was in-painted
    box: ContentBox  # where the content is (the thumbnail shows only this part)
    whole: np.ndarray | None = None  # the whole picture's thumbnail, made the same way, when the box was cut
    panels: tuple[tuple[float, float, float, float], ...] = ()  # a collage's panels, fractions (`box_panels`)
    colour: float = 0.0  # colour the brightness does not explain, inside the box (`curate.dedupe.fidelity`)
    drawn: float = 0.0  # share of a drawing's pure colours inside the box (`curate.dedupe.fidelity`)
    turned: float = 1.0  # share of the box a picture turned on a canvas covers (`turned_back`); 1.0: not turned
    tint: tuple[float, float] = (0.0, 0.0)  # mean chroma inside the box (`curate.dedupe.fidelity.tint`)
    quality: int | None = None  # the file's compression quality (`curate.dedupe.fidelity.quality`); None: unknown


def pixel_digest(img: Image.Image, tag: str, rgb: np.ndarray | None = None) -> str:
    """SHA-256 of the decoded pixels, their size and mode (`rgb`: `img` already as RGB pixels, reused
    when that is the mode digested).

    Two files with this digest equal show the same picture: a PNG and a BMP or
    TIFF of the same pixels, or a JPEG re-saved with other metadata. JPEGs are
    digested at the reduced scale they were decoded at (tag says which), so a
    JPEG never pixel-matches a lossless file; that pair is a near-duplicate.
    """
    mode = "RGBA" if ("A" in img.getbands() or "transparency" in img.info) else "RGB"
    h = hashlib.sha256(f"{tag}|{mode}|{img.width}x{img.height}|".encode())
    h.update(np.ascontiguousarray(rgb) if mode == "RGB" and rgb is not None else img.convert(mode).tobytes())
    return h.hexdigest()


def rotation_fill(grey: np.ndarray) -> np.ndarray | None:
    """The fill around a picture rotated within a larger canvas (a re-post or a dataset's augmented
    copy turned by 20-40 degrees, the corners white, grey or black), as a mask of `grey`; None when
    the picture is not one.

    A frame the content box cannot cut: the corners are triangles, not bands. Left in, they are
    what the thumbnail shows, and different photos turned by similar angles correlated 0.95-0.97
    on thumbnails (17 clusters of different photos in a probe of 77 such copies). The signature is
    strict: all four corners one flat colour, the same (`FILL_TOL`, `FILL_STD`), and the rest a
    rectangle (`FILL_FIT` of its smallest enclosing rectangle, `FILL_LEAST` of the canvas) turned by
    3-87 degrees. A plain background around a round subject (the moon) is not a rectangle; a photo
    merely turned a few degrees without a larger canvas leaves an octagon (its black corners are
    in-painted as black areas). Measured on the corpora's 177 photos, tiles, close-ups and skin
    photos: none as stored, halved, mirrored, cropped or framed has one; turned on a white canvas all
    do, on a grey one 173 (a smooth grey photo on grey is cut into by the content box first), on a
    black one 151 (a dark photo's background joins the fill; its black is in-painted anyway)."""
    found = _turned(grey)
    return None if found is None else found[1]


def _turned(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """`rotation_fill`'s test: the convex hull of the turned picture and the fill's mask, or None."""
    found = _corner_fill(grey)
    if found is None:
        return None
    hull, outside = found
    _, (rw, rh), angle = cv2.minAreaRect(hull)
    area = cv2.contourArea(hull)
    h, w = grey.shape
    if not 3 <= angle % 90 <= 87 or area < FILL_FIT * rw * rh or area < FILL_LEAST * h * w:
        return None
    return hull, outside


def turned_back(rgb: Image.Image, grey: np.ndarray) -> Image.Image | None:
    """The picture that `rgb` holds turned on a larger canvas (`rotation_fill`, found on `grey`, its square
    thumbnail), turned upright again and cut out of the canvas, `TURN_INSET` inside its edges; None when `rgb`
    is not such a picture.

    In-painting the corners (`_inpainted`) keeps them from making different turned photos alike, but leaves
    the photo turned: its thumbnail then matches no other picture's, and a smooth close-up (10-17 keypoints)
    had nothing else to be found by (`bench/dedupe.py --photos`: two of 25 turned copies). Turned back, such
    a copy's thumbnail correlated 0.992-0.996 with its photo's, in one of the eight flips and quarter-turns
    every comparison tries (the rectangle's sides are known, not which of them was the top). The rectangle is
    fitted to the hull mapped onto `rgb`'s own pixels, so a squashed thumbnail does not shear it; the hull is
    known to a thumbnail's pixel, hence the inset (cut 0.5, 0.75, 1, 1.25 or 1.5 thumbnail pixels inside, 11,
    21, 22, 21 and 16 of the skin benchmark's 25 turned copies reached 0.95 with their photos; of v6's 24,
    mostly textured tiles, 9, 6, 5, 2 and 2: a thumbnail of texture shifts with a pixel's error, and local
    features find those as before). Over every turned copy of the benchmark's v6 and skin corpora, a different
    photo reaches 0.871 and 0.909 against `verify.ACCEPT_NCC` = 0.95."""
    found = _turned(grey)
    if found is None:
        return None
    hull = found[0].reshape(-1, 2).astype(np.float32)
    scale = np.array([rgb.width / grey.shape[1], rgb.height / grey.shape[0]], np.float32)
    (cx, cy), (rw, rh), angle = cv2.minAreaRect((hull + 0.5) * scale - 0.5)
    cut = 2 * TURN_INSET * float(scale.mean())
    p0, p1, p2, _ = cv2.boxPoints(((cx, cy), (rw - cut, rh - cut), angle))
    w, h = float(np.linalg.norm(p2 - p1)), float(np.linalg.norm(p0 - p1))
    if min(w, h) < 2:
        return None
    upright = cv2.getAffineTransform(np.float32([p1, p2, p0]), np.float32([[0, 0], [w, 0], [0, h]]))
    size = (max(1, round(w)), max(1, round(h)))
    return Image.fromarray(cv2.warpAffine(np.asarray(rgb.convert("RGB")), upright, size, flags=cv2.INTER_LINEAR))


def field_stop(grey: np.ndarray) -> np.ndarray | None:
    """The fill around a round field of view (a dermatoscope's, a microscope's or an endoscope's: the
    corners one flat colour, black mostly, the rest an ellipse, clipped or not by the picture's sides), as
    a mask of `grey`; None when the picture has none.

    A frame the content box cannot cut, like `rotation_fill`'s: every photo through one dermatoscope has
    it at the same place, and its edge gives SIFT keypoints that agree between different photos (two
    110 px copies of different lesions were "same" on 35 of them), so `curate.dedupe.verify.features`
    takes no keypoint on or near it, and a thumbnail is in-painted over it (`_inpainted`). The ellipse is
    fitted to the boundary off the picture's sides and must hold the field (`STOP_FIT` intersection over
    union, `FILL_LEAST` of the canvas) and lie within the picture (`STOP_AXIS`). Measured on the
    corpora's 1,758 pictures at 160 px: the retina photo and its copies have one (fill 0.23), no other
    picture does; photos through a dermatoscope 0.32."""
    h, w = grey.shape
    dx, dy = max(1, w // 25), max(1, h // 25)  # a field stop's corners reach further in than this
    inward = [int(grey[y, x]) for x, y in ((dx, dy), (w - 1 - dx, dy), (dx, h - 1 - dy), (w - 1 - dx, h - 1 - dy))]
    if max(inward) - min(inward) > FILL_TOL or abs(inward[0] - int(grey[0, 0])) > FILL_TOL:  # most photos: 0.01 ms
        return None
    found = _corner_fill(grey)
    if found is None:
        return None
    _, outside = found
    # the edge halfway between the fill's colour and the field's: JPEG ringing stops a flood short of it
    fill, field_level = float(np.median(grey[outside])), float(np.median(grey[~outside]))
    if abs(field_level - fill) < 2 * FILL_TOL:
        return None
    seen = (grey > (fill + field_level) / 2) if field_level > fill else (grey < (fill + field_level) / 2)
    points = cv2.findNonZero(seen.view(np.uint8))
    if points is None:
        return None
    edge = cv2.convexHull(points).reshape(-1, 2)
    curved = edge[(edge[:, 0] > 0) & (edge[:, 0] < w - 1) & (edge[:, 1] > 0) & (edge[:, 1] < h - 1)]
    if len(curved) < 8:  # too few points off the sides to fit (a rectangle's hull has four corners)
        return None
    ellipse = cv2.fitEllipse(curved.reshape(-1, 1, 2))
    if max(ellipse[1]) > STOP_AXIS * max(h, w):  # a turned or warped rectangle's octagon fits a far larger one
        return None
    field = np.zeros((h, w), np.uint8)
    cv2.ellipse(field, ellipse, 1, -1)
    union = np.count_nonzero(seen | (field > 0))
    if seen.sum() < FILL_LEAST * h * w or np.count_nonzero(seen & (field > 0)) < STOP_FIT * union:
        return None
    return field == 0


def _corner_fill(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Where all four corners' one flat colour reaches (`FILL_TOL`, `FILL_STD`): the convex hull of the
    rest and the fill's mask; None when the corners differ or are not flat."""
    h, w = grey.shape
    corners = ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1))
    colours = [int(grey[y, x]) for x, y in corners]
    if max(colours) - min(colours) > FILL_TOL:  # one canvas, one colour
        return None
    fill = np.zeros((h + 2, w + 2), np.uint8)
    for x, y in corners:
        if fill[y + 1, x + 1]:
            continue
        corner = np.zeros_like(fill)
        flags = 4 | cv2.FLOODFILL_FIXED_RANGE | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
        cv2.floodFill(grey.copy(), corner, (x, y), 0, FILL_TOL, FILL_TOL, flags)
        if grey[corner[1:-1, 1:-1] > 0].std() > FILL_STD:
            return None
        fill |= corner
    points = cv2.findNonZero((fill[1:-1, 1:-1] == 0).view(np.uint8))
    if points is None:
        return None
    hull = cv2.convexHull(points)  # where the fill reached into the picture (its own flat colour), no matter
    inside = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(inside, hull, 1)
    return hull, inside == 0


def inpaint_black(grey: np.ndarray, also: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Fill near-black pixels, and those of the mask `also` (`rotation_fill`, `field_stop`), from a blurred average
    of the other pixels."""
    from scipy.ndimage import gaussian_filter  # lazy: keeps `curate --help` fast

    a = grey.astype(np.float32)
    # one pixel of dilation (a cross: OpenCV's is a tenth of scipy's cost, the same pixels) swallows
    # the JPEG ringing along a bar's or a corner's edge
    black = (a <= BLACK) if also is None else (a <= BLACK) | also
    mask = cv2.dilate(black.view(np.uint8), _CROSS) == 0
    masked = 1.0 - float(mask.mean())
    if masked < 0.003 or (masked > 0.6 and also is None):  # nothing to fill, or a genuinely dark photo
        return a, 0.0
    m = mask.astype(np.float32)
    sigma = max(a.shape) / 12
    fill = gaussian_filter(a * m, sigma) / np.maximum(gaussian_filter(m, sigma), 1e-3)
    return np.where(mask, a, fill), masked


def decode(data: bytes, thumb: int = THUMB) -> Decoded:
    """Decode `data` (bytes of a stored original) into a `Decoded`."""
    up = open_upright(data, thumb * 2)  # DCT scaling; keeps at least 2x the thumbnail
    img = up.image
    tag = (
        "lossless"
        if up.format in LOSSLESS
        else f"JPEG:{up.reduction}"
        if up.format in DRAFT_FORMATS
        else f"{up.format}:full"
    )
    rgb = to_rgb(img)  # transparency onto white, as every page, rater and export shows it
    pixels = np.asarray(rgb)
    digest = pixel_digest(img, tag, pixels)
    box = content_box(pixels)
    content, masked, turned = _thumbnail(rgb.crop((box.x0, box.y0, box.x1, box.y1)) if box.cut else rgb, thumb)
    # a tone change can move where the box cuts into a smooth photo: the whole picture is what still
    # matches then (`curate.dedupe.whole`)
    found = box_panels(data, box, rgb) if max(box.x1 - box.x0, box.y1 - box.y0) * up.reduction >= PANEL_PX else ()
    inside = pixels[box.y0 : box.y1, box.x0 : box.x1]
    colour, drawn = fidelity.measure(inside)
    whole = _thumbnail(rgb, thumb)[0] if box.cut else None
    quality = fidelity.quality(up.format, up.tables)
    return Decoded(content, digest, masked, box, whole, found, colour, drawn, turned, fidelity.tint(inside), quality)


def grey_thumbnail(grey: np.ndarray, thumb: int = THUMB) -> np.ndarray:
    """A grey picture's square thumbnail as `_thumbnail` makes it (black areas in-painted), from pixels already
    decoded: a collage's panel (`curate.dedupe.collage`)."""
    return _inpainted(cv2.resize(np.ascontiguousarray(grey), (thumb, thumb), interpolation=cv2.INTER_AREA))[0]


def _thumbnail(rgb: Image.Image, thumb: int) -> tuple[np.ndarray, float, float]:
    """The square grey thumbnail the codes are computed from, black areas in-painted, the share in-painted, and
    the share of `rgb` the picture covers; of a picture turned on a canvas, the picture turned back (`turned_back`),
    which covers only part of its canvas: the rest is fill, no more the photo than a frame is
    (`curate.dedupe.cluster._unframed`)."""
    grey = _square(rgb, thumb)
    turned = 1.0
    if (back := turned_back(rgb, grey)) is not None:
        turned = min(1.0, back.width * back.height / max(rgb.width * rgb.height, 1))
        grey = _square(back, thumb)
    return (*_inpainted(grey), round(turned, 4))


def _square(rgb: Image.Image, thumb: int) -> np.ndarray:
    return np.asarray(rgb.convert("L").resize((thumb, thumb), Image.BOX if min(rgb.size) >= thumb else Image.BILINEAR))


def _inpainted(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """A thumbnail's black areas and rotation fill, or else a round field of view's fill when not black,
    in-painted (`inpaint_black`), as uint8, and the share in-painted. A profile picture's or a forum's
    round crop has white corners, and the avatars of different dark photos correlated 0.93-0.98 on them
    (a probe: three clusters of different photos)."""
    fill = rotation_fill(grey)
    if fill is None and (stop := field_stop(grey)) is not None and np.median(grey[stop]) > BLACK:
        fill = stop  # a black one is in-painted as black already
    arr, masked = inpaint_black(grey, fill)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8), masked


def read_box(text) -> tuple[float, float, float, float]:
    """Stored content box fractions "x0,y0,x1,y1", strictly: ValueError saying why when `text` is not
    four numbers inside the picture (`curate.dedupe.run.cache_fault` turns it into a reason)."""
    if not isinstance(text, str):
        raise ValueError(f"is {type(text).__name__}, not text")
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not four numbers") from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise ValueError(f"{text[:40]!r} is not inside the picture")
    return (x0, y0, x1, y1)


def parse_box(text: str | None) -> tuple[float, float, float, float]:
    """Stored content box fractions (`read_box`); the whole picture when absent or unusable."""
    try:
        return read_box(text)
    except ValueError:
        return (0.0, 0.0, 1.0, 1.0)


def panels_text(found: tuple[tuple[float, float, float, float], ...]) -> str | None:
    """Panels as stored: "x0,y0,x1,y1;..." (fractions of the whole picture), None for a single photo."""
    return ";".join(",".join(f"{v:.4f}" for v in box) for box in found) or None


def parse_panels(text: str | None) -> tuple[tuple[float, float, float, float], ...]:
    """Stored panels (`panels_text`); () when absent or unreadable (a single photo, as before panels were kept)."""
    boxes = [parse_box(part) for part in (text or "").split(";") if part]
    return tuple(boxes) if len(boxes) >= 2 and (0.0, 0.0, 1.0, 1.0) not in boxes else ()


def box_side(width: int, height: int, box: tuple[float, float, float, float]) -> float:
    """The longer side, in stored pixels, of content box `box` (fractions) of a `width` x `height` picture."""
    x0, y0, x1, y1 = box
    return max(width * (x1 - x0), height * (y1 - y0))


def work_grey(data: bytes, box: tuple[float, float, float, float], side: int) -> np.ndarray:
    """The content box of a stored original as grey uint8 (read-only), decoded at about `side` px
    (verification; `Decodes.box` decodes a picture once for several looks)."""
    return _cut(_upright_grey(data, _least(box, side)), box)


def _least(box: tuple[float, float, float, float], side: int) -> int:
    """The side a picture is decoded at for its `box` to have about `side` px."""
    x0, y0, x1, y1 = box
    return int(side / max(x1 - x0, y1 - y0, 1e-3))


def _cut(grey: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    x0, y0, x1, y1 = box
    h, w = grey.shape
    return grey[
        round(y0 * h) : max(round(y1 * h), round(y0 * h) + 1), round(x0 * w) : max(round(x1 * w), round(x0 * w) + 1)
    ]


def _grey(img: Image.Image) -> Image.Image:
    """Grey levels of the picture as `to_rgb` shows it: converted straight to L, a transparent PNG kept the
    pixels under its alpha, which no page, rater or export shows, and matched the photo hidden there."""
    return img if img.mode == "L" else to_rgb(img).convert("L")


def _upright_grey(data: bytes, least: int) -> np.ndarray:
    grey = np.array(_grey(open_upright(data, least).image))
    grey.flags.writeable = False  # kept by `Decodes` and handed out again: nobody may change it
    return grey


class Decodes:
    """Grey pictures decoded for verification, kept for the next look at them, up to `budget` bytes (the
    least recently used go first: `curate.dedupe.kept`). One picture is decoded for its thumbnails' union,
    for SIFT at 160 px and again at 320 px; a phone photo's JPEG at its DCT scale costs 15-25 ms each time,
    the same pixels. Keyed by the picture's digest and the decoded size, so what it returns is exactly what
    a decode would."""

    def __init__(self, budget: int = 512 * 2**20):
        self._kept: Kept[np.ndarray] = Kept(budget, lambda grey: grey.nbytes)

    budget = property(lambda self: self._kept.budget)
    used = property(lambda self: self._kept.used)
    hits = property(lambda self: self._kept.hits)
    misses = property(lambda self: self._kept.misses)

    def box(self, name: str, data: bytes, box: tuple[float, float, float, float], side: int) -> np.ndarray:
        """`work_grey(data, box, side)` of the picture `name` (its digest), decoded only when no earlier look
        decoded it at that scale."""
        least = _least(box, side)
        return _cut(self._kept.get((name, _decoded_size(data, least)), lambda: _upright_grey(data, least)), box)


def _decoded_size(data: bytes, least: int) -> tuple[int, int]:
    """The size `open_upright(data, least)` decodes at, read from the header (a JPEG's DCT scale)."""
    with Image.open(io.BytesIO(data)) as img:
        if img.format in DRAFT_FORMATS:
            img.draft("RGB", (least, least))
        return img.size


def panels(grey: np.ndarray) -> tuple[tuple[int, int, int, int], ...]:
    """The panels of a collage (several photos side by side or in a grid, split by flat gutters: a web
    page's or an atlas's figure), as boxes (x0, y0, x1, y1) of `grey`; () when the picture is one photo.

    A collage is a frame the content box cannot cut, inside the picture: a photo and a collage holding it
    agree on one panel's keypoints, 49-56 % of a two-panel collage, which `curate.dedupe.verify` took for
    "same", and 20-25 % of a four-panel one, taken for "different" (`curate.dedupe.verify.paneled`). Cut
    along rows, then each band along columns, or the other way round (the way finding more panels wins):
    a gutter is a run of interior lines each `GUTTER_SHARE` within `GUTTER_TOL` grey levels of one colour,
    at most `GUTTER_MOST` of the side thick, with a photo's edge on both sides (`_edge`), and every panel it
    leaves is at least `PANEL_LEAST` of the side (a caption strip is no panel) and not flat. Measured in
    bench/README.md ("collages"): every figure of the benchmark's 18 found, 15 with the right count; among
    2,524 pictures of its other corpora, three "collages": two photos with a black bar across, one ruler photo.

    Why hand-written: OpenCV's line and contour finders see edges, not a flat band that spans the picture
    between two unrelated photos; the rule is a few numpy lines over rows and columns, as the content box's."""
    grey = np.asarray(grey)
    if grey.ndim != 2 or max(grey.shape) < PANEL_PX or min(grey.shape) < PANEL_PX // 4:
        return ()
    if not any(_flat(lines)[0][1:-1].any() for lines in (grey, grey.T)):  # no gutter anywhere: most photos
        return ()
    best: list[tuple[int, int, int, int]] = []
    for rows_first in (True, False):
        g = grey if rows_first else grey.T
        found = [(x0, y0, x1, y1) for y0, y1 in _bands(g) for x0, x1 in _bands(np.ascontiguousarray(g[y0:y1].T))]
        if not rows_first:
            found = [(y0, x0, y1, x1) for x0, y0, x1, y1 in found]
        if len(found) > len(best):
            best = found
    return tuple(best) if len(best) >= 2 else ()


def _bands(lines: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of the stretches of `lines` (each row one line) between gutters (`panels`); the
    whole when there is none."""
    n = len(lines)
    flat, colour = _flat(lines)
    spans, start, k = [], 0, 0
    while k < n:
        end = k
        while end < n and flat[end] and abs(int(colour[end]) - int(colour[k])) <= GUTTER_TOL:
            end += 1
        if end == k:
            k += 1
            continue
        if (
            k > 0
            and end < n
            and end - k <= GUTTER_MOST * n
            and _edge(lines, k - 1, -1, colour[k])
            and _edge(lines, end, 1, colour[k])
        ):
            spans.append((start, k))
            start = end
        k = end
    spans.append((start, n))
    while len(spans) > 1:  # a stretch too thin for a panel joins its thinner neighbour, gutter and all
        k = min(range(len(spans)), key=lambda i: spans[i][1] - spans[i][0])
        if spans[k][1] - spans[k][0] >= PANEL_LEAST * n:
            break
        sizes = [spans[j][1] - spans[j][0] if 0 <= j < len(spans) else n for j in (k - 1, k + 1)]
        lo = k - 1 if sizes[0] <= sizes[1] else k
        spans[lo : lo + 2] = [(spans[lo][0], spans[lo + 1][1])]
    if len(spans) == 1:
        return spans
    return [(s, e) for s, e in spans if float(lines[s:e].std()) >= PANEL_STD]


def _flat(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n,) whether each of `lines` (each row one line) is a gutter's (`GUTTER_SHARE` of its pixels within
    `GUTTER_TOL` of one colour), and (n,) that colour: the median of `GUTTER_SAMPLES` of its pixels, since
    on a gutter's line any pixel has it."""
    colour = np.median(lines[:, :: max(1, lines.shape[1] // GUTTER_SAMPLES)], axis=1).astype(np.int16)
    near = cv2.absdiff(lines, colour.astype(lines.dtype)[:, None].repeat(lines.shape[1], 1)) <= GUTTER_TOL
    return near.mean(axis=1) >= GUTTER_SHARE, colour


def _edge(lines: np.ndarray, k: int, step: int, colour: float) -> bool:
    """Whether a photo's edge is beside a gutter of `colour` ending at line `k`: within `EDGE_LINES` lines
    from it (a gutter's own edge is blended over a line or two), one line with under `EDGE_SHARE` of
    its pixels in the gutter's colour. Plain skin fading into a lesion stays that colour for longer."""
    for j in range(k, k + step * EDGE_LINES, step):
        if 0 <= j < len(lines) and (np.abs(lines[j].astype(np.int16) - int(colour)) <= GUTTER_TOL).mean() < EDGE_SHARE:
            return True
    return False


def box_panels(
    data: bytes, box: ContentBox, decoded: Image.Image | None = None
) -> tuple[tuple[float, float, float, float], ...]:
    """`panels` of a stored original's content box, as fractions (x0, y0, x1, y1) of the whole picture: on
    `decoded` (the picture as `decode` has it) when its box is `PANEL_DECODED` px or more (a phone photo at
    1/8 scale: a second decode would double the entropy decoding, 20 ms), else decoded again, luma only, at
    about `PANEL_SIDE` px (a web figure's gutter is a few pixels of a thousand: at the thumbnails' scale it is
    blended away)."""
    fx0, fy0, fx1, fy1 = box.fractions()
    if decoded is not None and max(box.x1 - box.x0, box.y1 - box.y0) >= PANEL_DECODED:
        grey = np.asarray(decoded.convert("L"))[box.y0 : box.y1, box.x0 : box.x1]
    else:
        least = _least((fx0, fy0, fx1, fy1), PANEL_SIDE)
        grey = _cut(np.asarray(_grey(open_upright(data, least, "L").image)), (fx0, fy0, fx1, fy1))
    h, w = grey.shape
    sx, sy = (fx1 - fx0) / w, (fy1 - fy0) / h
    return tuple((fx0 + x0 * sx, fy0 + y0 * sy, fx0 + x1 * sx, fy0 + y1 * sy) for x0, y0, x1, y1 in panels(grey))
