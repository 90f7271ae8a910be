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
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from curate.dedupe.content import ContentBox, content_box
from curate.imaging import DRAFT_FORMATS, open_upright

THUMB = 64  # side of the square grey thumbnail every code is computed from
BLACK = 16  # grey level at or below which a pixel counts as masked (bar, rotation fill)
LOSSLESS = {"PNG", "BMP", "TIFF", "WEBP", "GIF", "HEIF"}
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))  # scipy.ndimage's default structure in 2-D


@dataclass(frozen=True)
class Decoded:
    thumb: np.ndarray  # (THUMB, THUMB) uint8, upright, black areas in-painted
    pixel_sha256: str  # digest of the decoded pixels (see `pixel_digest`)
    masked: float  # fraction of the thumbnail that was in-painted
    box: ContentBox  # where the content is (the thumbnail shows only this part)


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


def inpaint_black(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """Fill near-black pixels from a blurred average of the unmasked ones."""
    from scipy.ndimage import gaussian_filter  # lazy: keeps `curate --help` fast

    a = grey.astype(np.float32)
    # one pixel of dilation (a cross: OpenCV's is a tenth of scipy's cost, the same pixels) swallows
    # the JPEG ringing along a bar's or a corner's edge
    mask = cv2.dilate((a <= BLACK).view(np.uint8), _CROSS) == 0
    masked = 1.0 - float(mask.mean())
    if masked < 0.003 or masked > 0.6:  # nothing to fill, or a genuinely dark photo
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
    content = rgb.crop((box.x0, box.y0, box.x1, box.y1)) if box.cut else rgb
    grey = content.convert("L").resize((thumb, thumb), Image.BOX if min(content.size) >= thumb else Image.BILINEAR)
    arr, masked = inpaint_black(np.asarray(grey))
    return Decoded(np.clip(np.rint(arr), 0, 255).astype(np.uint8), digest, masked, box)


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
    """The content box of a stored original as grey uint8, decoded at about `side` px (verification)."""
    x0, y0, x1, y1 = box
    img = open_upright(data, int(side / max(x1 - x0, y1 - y0, 1e-3))).image.convert("L")
    w, h = img.size
    x0, y0, x1, y1 = box
    img = img.crop(
        (round(x0 * w), round(y0 * h), max(round(x1 * w), round(x0 * w) + 1), max(round(y1 * h), round(y0 * h) + 1))
    )
    return np.asarray(img)
