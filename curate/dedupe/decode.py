"""Read a stored original once, cheaply, into what every hashing method needs.

JPEGs are decoded at reduced scale and turned upright by their EXIF
orientation, as the catalogue's width/height are (`curate.imaging.open_upright`). Large
solid-black areas (anonymisation bars, the corners a small rotation leaves)
are in-painted from their surroundings so that they do not dominate the
low frequencies the hashes look at. Borders, frames and padding are cut
away first (`curate.dedupe.content`), so every code describes the content box.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from curate.dedupe.content import ContentBox, content_box
from curate.imaging import DRAFT_FORMATS, open_upright

THUMB = 64  # side of the square grey thumbnail every code is computed from
BLACK = 16  # grey level at or below which a pixel counts as masked (bar, rotation fill)
LOSSLESS = {"PNG", "BMP", "TIFF", "WEBP", "GIF", "HEIF"}
FILL_TOL = 6  # grey levels a corner's fill may differ from its corner pixel (`rotation_fill`)
FILL_STD = 3.0  # and its spread: a flat colour (JPEG noise beside a textured photo: up to 2.2)
FILL_FIT = 0.9  # share of its enclosing rectangle a rotated picture fills
FILL_LEAST = 0.3  # and of the canvas (a 45-degree turn of a 2:1 picture: 0.44; a fundus tile's rim: 0.16)
STOP_FIT = 0.9  # a round field of view: its ellipse and the field overlap this much (`field_stop`; a square and
# the disc inside it: 0.79)
STOP_AXIS = 1.05  # and the ellipse is no wider than this times the picture's longer side (turned copies: 1.1-5.5)
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))  # scipy.ndimage's default structure in 2-D


@dataclass(frozen=True)
class Decoded:
    thumb: np.ndarray  # (THUMB, THUMB) uint8, upright, black areas in-painted
    pixel_sha256: str  # digest of the decoded pixels (see `pixel_digest`)
    masked: float  # fraction of the thumbnail that was in-painted
    box: ContentBox  # where the content is (the thumbnail shows only this part)
    whole: np.ndarray | None = None  # the whole picture's thumbnail, made the same way, when the box was cut


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
    found = _corner_fill(grey)
    if found is None:
        return None
    hull, outside = found
    _, (rw, rh), angle = cv2.minAreaRect(hull)
    area = cv2.contourArea(hull)
    h, w = grey.shape
    if not 3 <= angle % 90 <= 87 or area < FILL_FIT * rw * rh or area < FILL_LEAST * h * w:
        return None
    return outside


def field_stop(grey: np.ndarray) -> np.ndarray | None:
    """The fill around a round field of view (a dermatoscope's, a microscope's or an endoscope's: the
    corners one flat colour, black mostly, the rest an ellipse, clipped or not by the picture's sides), as
    a mask of `grey`; None when the picture has none.

    A frame the content box cannot cut, like `rotation_fill`'s: every photo through one dermatoscope has
    it at the same place, and its edge gives SIFT keypoints that agree between different photos (two
    110 px copies of different lesions were "same" on 35 of them), so `curate.dedupe.verify.features`
    takes no keypoint on or near it. The ellipse is fitted to the boundary off the picture's sides and
    must hold the field (`STOP_FIT` intersection over union, `FILL_LEAST` of the canvas) and lie within the
    picture (`STOP_AXIS`). Measured on the corpora's 1,758 pictures at 160 px: the retina photo and its
    copies have one (fill 0.23), no other picture does; photos through a dermatoscope 0.32."""
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
    """Fill near-black pixels, and those of the mask `also` (`rotation_fill`), from a blurred average
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
    rgb = img.convert("RGB")
    pixels = np.asarray(rgb)
    digest = pixel_digest(img, tag, pixels)
    box = content_box(pixels)
    content, masked = _thumbnail(rgb.crop((box.x0, box.y0, box.x1, box.y1)) if box.cut else rgb, thumb)
    # a tone change can move where the box cuts into a smooth photo: the whole picture is what still
    # matches then (`curate.dedupe.whole`)
    return Decoded(content, digest, masked, box, _thumbnail(rgb, thumb)[0] if box.cut else None)


def _thumbnail(rgb: Image.Image, thumb: int) -> tuple[np.ndarray, float]:
    """The square grey thumbnail the codes are computed from, black areas in-painted, and the share in-painted."""
    grey = np.asarray(rgb.convert("L").resize((thumb, thumb), Image.BOX if min(rgb.size) >= thumb else Image.BILINEAR))
    arr, masked = inpaint_black(grey, rotation_fill(grey))
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8), masked


def parse_box(text: str | None) -> tuple[float, float, float, float]:
    """Stored content box fractions "x0,y0,x1,y1" (the whole picture when absent)."""
    try:
        x0, y0, x1, y1 = (float(v) for v in (text or "").split(","))
    except ValueError:
        return (0.0, 0.0, 1.0, 1.0)
    return (x0, y0, x1, y1)


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


def _upright_grey(data: bytes, least: int) -> np.ndarray:
    grey = np.array(open_upright(data, least).image.convert("L"))
    grey.flags.writeable = False  # kept by `Decodes` and handed out again: nobody may change it
    return grey


class Decodes:
    """Grey pictures decoded for verification, kept for the next look at them, up to `budget` bytes (the
    least recently used go first). One picture is decoded for its thumbnails' union, for SIFT at 160 px
    and again at 320 px; a phone photo's JPEG at its DCT scale costs 15-25 ms each time, the same pixels.
    Keyed by the picture's digest and the decoded size, so what it returns is exactly what a decode would."""

    def __init__(self, budget: int = 512 * 2**20):
        from collections import OrderedDict
        from threading import Lock

        self.budget, self.used, self.hits, self.misses = budget, 0, 0, 0
        self._kept: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = Lock()

    def box(self, name: str, data: bytes, box: tuple[float, float, float, float], side: int) -> np.ndarray:
        """`work_grey(data, box, side)` of the picture `name` (its digest), decoded only when no earlier look
        decoded it at that scale."""
        least = _least(box, side)
        key = (name, _decoded_size(data, least))
        with self._lock:
            if (found := self._kept.get(key)) is not None:
                self._kept.move_to_end(key)
                self.hits += 1
                return _cut(found, box)
        grey = _upright_grey(data, least)
        with self._lock:
            self.misses += 1
            if key not in self._kept and grey.nbytes <= self.budget:
                self._kept[key] = grey
                self.used += grey.nbytes
                while self.used > self.budget:
                    self.used -= self._kept.popitem(last=False)[1].nbytes
        return _cut(grey, box)


def _decoded_size(data: bytes, least: int) -> tuple[int, int]:
    """The size `open_upright(data, least)` decodes at, read from the header (a JPEG's DCT scale)."""
    with Image.open(io.BytesIO(data)) as img:
        if img.format in DRAFT_FORMATS:
            img.draft("RGB", (least, least))
        return img.size
