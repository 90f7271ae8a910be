"""Reading pictures the one way every stage does: EXIF orientation, and a stored original decoded upright
at reduced size.

Intake records each image's size after its EXIF orientation; dedupe hashes, the review pages and the
export all read the same tag through `exif_orientation`, so they agree on which way is up. JPEGs are
decoded at reduced scale with Pillow's `draft` (the DCT does the downscaling, so most of the decoding
work is skipped) when the caller needs fewer pixels than the original has.

HEIC/HEIF phone photos open through the pillow-heif plug-in, registered here, where every stage that
reads an original imports this module (not in `curate/__init__`, which would cost `curate --help` ~0.08 s).
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass

from PIL import Image
from pillow_heif import register_heif_opener

register_heif_opener()

ORIENTATION_TAG = 0x0112
DRAFT_FORMATS = ("JPEG", "MPO")  # formats whose decoder can downscale while decoding

# EXIF orientation -> the transpose that displays the stored pixels upright (what ImageOps.exif_transpose does).
UPRIGHT: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SWAPS_AXES = frozenset({5, 6, 7, 8})  # orientations that turn by 90 degrees: width and height trade places


def exif_orientation(img: Image.Image) -> int | None:
    """The EXIF orientation (1-8) of an opened image; None when absent, out of range or the EXIF is malformed
    (a broken EXIF block must not stop an otherwise fine photo)."""
    try:
        value = img.getexif().get(ORIENTATION_TAG)
    except Exception:  # Pillow raises many kinds on a malformed EXIF block
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else None


@dataclass(frozen=True)
class Upright:
    image: Image.Image  # decoded pixels, turned upright
    format: str  # what the file is ("JPEG", "PNG", ...; "?" when Pillow cannot say)
    reduction: int  # how many times smaller than stored the decoder delivered it (1: full size)


def open_upright(data: bytes, min_side: int | None = None) -> Upright:
    """Decode the bytes of a stored original, upright. With `min_side`, a JPEG is decoded at the smallest
    DCT scale that keeps at least `min_side` pixels on each side; other formats decode at full size.

    Originals passed intake's checks (size limits included), so Pillow's warnings are silenced here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = Image.open(io.BytesIO(data))
        fmt = img.format or "?"
        stored = img.size
        orientation = exif_orientation(img)
        if min_side and fmt in DRAFT_FORMATS:
            img.draft("RGB", (min_side, min_side))
        img.load()
    reduction = stored[0] // max(1, img.size[0])
    op = UPRIGHT.get(orientation or 1)
    return Upright(img.transpose(op) if op is not None else img, fmt, reduction)


def thumbnail(data: bytes, px: int = 160) -> str:
    """An upright JPEG thumbnail of a stored original as base64, for pages that embed their pictures (the
    dedupe review sheet, the labelling report, the leakage audit). Re-encoded: no EXIF (GPS, serials)
    reaches the page."""
    img = open_upright(data, px).image.convert("RGB")
    img.thumbnail((px, px))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return base64.b64encode(buf.getvalue()).decode()
