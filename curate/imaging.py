"""Reading pictures the one way every stage does: EXIF orientation, and a stored original decoded upright
at reduced size.

Intake records each image's size after its EXIF orientation; dedupe hashes, the review pages and the
export all read the same tag through `to_turn`, so they agree on which way is up. What people and the model see
is taken to sRGB from an embedded profile first (`in_srgb`). JPEGs are
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
from functools import lru_cache
from typing import TYPE_CHECKING

from PIL import Image
from pillow_heif import register_heif_opener

if TYPE_CHECKING:
    from PIL.ImageCms import ImageCmsProfile, ImageCmsTransform

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


def to_turn(img: Image.Image) -> int | None:
    """The EXIF orientation an opened image's pixels still need (`exif_orientation`): none for a TIFF, which Pillow
    gives upright itself (its size upright once opened, its pixels turned and the tag dropped as it loads). Before,
    such a TIFF was turned twice: exported upside down, or its export refused for a size unlike the catalogue's."""
    return None if img.format == "TIFF" else exif_orientation(img)


@dataclass(frozen=True)
class Upright:
    image: Image.Image  # decoded pixels, turned upright
    format: str  # what the file is ("JPEG", "PNG", ...; "?" when Pillow cannot say)
    reduction: int  # how many times smaller than stored the decoder delivered it (1: full size)
    tables: tuple[tuple[int, ...], ...] = ()  # a JPEG's quantization tables as stored (`curate.dedupe.fidelity`)


WIDE_GREYS = ("I;16", "I;16B", "I;16L", "I")  # Pillow's modes for a 16-bit grey picture (a scope's PNG, a TIFF)


def eight_bit(img: Image.Image) -> Image.Image:
    """A 16-bit or floating-point grey picture as 8-bit grey ("L"), its levels scaled; others as they are.
    Pillow's own conversion clips every level over 255, so a 16-bit photo became white, and rounds a float
    TIFF's 0-1 levels to 0 and 1, so it became black: nothing to compare for dedupe, a blank thumbnail on the
    review sheet, a black image in the export. A float picture has no fixed range: levels up to 1 are taken as
    0-1, up to 255 as 8-bit, higher as 16-bit. Neither has a 32-bit integer one ("I", a TIFF's): levels up to
    255 are 8-bit (before, divided by 256 as 16-bit, a grey photo saved so became black), higher 16-bit, and
    beyond 16 bits scaled by its top."""
    if img.mode in ("F", "I"):
        if img.mode == "F":
            img = _finite(img)
        top = img.getextrema()[1]
        if img.mode == "F" and top <= 1:
            scale = 255.0
        else:
            scale = 1.0 if top <= 255 else 1 / 256 if top <= 65535 else 255 / top
        return img.point(lambda v: v * scale).convert("L")
    return img.point(lambda v: v / 256).convert("L") if img.mode in WIDE_GREYS else img


def _finite(img: Image.Image) -> Image.Image:
    """A float picture with NaN as 0 and each infinity as the nearest finite level: one NaN or infinite level
    made the top level NaN or infinite, and the whole picture black (in the export, and to `train serve`)."""
    import numpy as np

    levels = np.asarray(img, dtype=np.float32)
    finite = np.isfinite(levels)
    if finite.all():
        return img
    low, high = (float(levels[finite].min()), float(levels[finite].max())) if finite.any() else (0.0, 0.0)
    return Image.fromarray(np.nan_to_num(levels, nan=0.0, posinf=high, neginf=low))  # float32: "F"


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB as the export writes it and the model sees it (`train.photos` serves photos the same way):
    transparency flattened onto white, a 16-bit grey picture's levels scaled (`eight_bit`). What people and the
    model see (the export, raters' copies, pages, `train serve`) is first taken to sRGB (`in_srgb`); dedupe
    compares the pixels as stored, so a catalogue's codes stay comparable."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return eight_bit(img).convert("RGB")


def in_srgb(img: Image.Image) -> Image.Image:
    """`img` with the colours its embedded ICC profile means, in sRGB (RGB or RGBA), or as it is without one (or
    with one LittleCMS cannot read). Every copy written from an original drops its profile (`pixels_only`), and
    before, dropping it dropped its colours: a lesion's red from an Adobe RGB or a phone's Display P3 photo came out
    duller (sRGB (220, 40, 60) was exported as (189, 43, 62)); a viewer takes a picture without a profile as sRGB."""
    icc = img.info.get("icc_profile")
    if not isinstance(icc, bytes) or not icc or img.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return img  # a TIFF's profile tag typed as text or a number is no profile
    from PIL import ImageCms

    try:
        out = ImageCms.applyTransform(img, _to_srgb(icc, img.mode))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):  # a profile of another colour space, or damaged
        return img
    out.info = {k: v for k, v in img.info.items() if k != "icc_profile"}
    return out


@lru_cache(maxsize=16)
def _to_srgb(icc: bytes, mode: str) -> ImageCmsTransform:
    """The transform from the profile `icc` to sRGB (RGBA keeps its alpha, the rest becomes RGB), made once per
    profile (a phone gives every photo one)."""
    from PIL import ImageCms

    return ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(icc)), _srgb(), mode, "RGBA" if mode == "RGBA" else "RGB"
    )


@lru_cache(maxsize=1)
def _srgb() -> ImageCmsProfile:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def open_upright(data: bytes, min_side: int | None = None, mode: str = "RGB") -> Upright:
    """Decode the bytes of a stored original, upright. With `min_side`, a JPEG is decoded at the smallest
    DCT scale that keeps at least `min_side` pixels on each side; other formats decode at full size.
    `mode` "L": a JPEG's luma alone (no chroma upsampled, no colour conversion: 40 % less time), for a
    look at grey levels only (a collage's gutters, `curate.dedupe.decode.box_panels`).

    Originals passed intake's checks (size limits included), so Pillow's warnings are silenced here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = Image.open(io.BytesIO(data))
        fmt = img.format or "?"
        stored = img.size
        orientation = to_turn(img)
        tables = tuple(tuple(t) for _, t in sorted((getattr(img, "quantization", None) or {}).items()))
        if min_side and fmt in DRAFT_FORMATS:
            img.draft(mode, (min_side, min_side))
        img.load()
    reduction = round(stored[0] / max(1, img.size[0]))  # the DCT scale: a 389 px side decodes to 195 at 1/2
    op = UPRIGHT.get(orientation or 1)
    img = eight_bit(img)
    return Upright(img.transpose(op) if op is not None else img, fmt, reduction, tables)


def pixels_only(img: Image.Image) -> Image.Image:
    """The same pixels in a fresh image whose `info` is empty. Pillow's writers carry a source's JPEG or GIF
    comment, PNG text, EXIF and ICC profile (whose description is free text) over from `info`, through
    `convert`, `thumbnail` and `blend` alike: whatever a page, an export or an overlay writes goes through here."""
    clean = img.copy()
    clean.info = {}
    return clean


def thumbnail(data: bytes, px: int = 160) -> str:
    """An upright JPEG thumbnail of a stored original as base64, for pages that embed their pictures (the
    dedupe review sheet, the labelling report, the leakage audit). Re-encoded from its pixels alone
    (`pixels_only`): no EXIF (GPS, serials), comment or profile reaches the page."""
    img = pixels_only(to_rgb(in_srgb(open_upright(data, px).image)))
    img.thumbnail((px, px))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return base64.b64encode(buf.getvalue()).decode()


# a match laid "in place" (one whole picture on the other, to this share of its side) whose pixels correlate
# under STAMP_NCC may be a site's stamp on different photos: dedupe (`curate.dedupe.pairs.stamps`) and the
# leakage audit (`curate.export.leakage_match.stamped`) apply one rule, its margins in bench/README.md
IN_PLACE = 0.03
STAMP_NCC = 0.6

# a match whose agreeing keypoints lie in a band along one side of a picture may be a site's banner on different
# photos: dedupe (`curate.dedupe.verify.banded`) and the leakage audit (`curate.export.leakage_match.one_object`)
# apply one rule (`in_band`), its margins in bench/README.md ("one site's templates")
BAND_ACROSS = 0.5  # the band is at least this share of a side long
BAND_DEEP = 0.3  # and at most this share of the other side deep
BAND_OUTER = 0.4  # within this share of the picture from one side


def in_band(points, width: float, height: float) -> bool:
    """Whether `points` (n x 2, x and y in a picture of `width` x `height`) lie in a band along one side of it,
    between their 10th and 90th percentile (a stray agreement or two does not widen it)."""
    import numpy as np

    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) < 3:
        return False
    lo, hi = np.percentile(pts, [10, 90], axis=0) / np.array([max(width, 1.0), max(height, 1.0)])
    return any(
        hi[k] - lo[k] >= BAND_ACROSS
        and hi[1 - k] - lo[1 - k] <= BAND_DEEP
        and (hi[1 - k] <= BAND_OUTER or lo[1 - k] >= 1 - BAND_OUTER)
        for k in (0, 1)
    )


def laid_correlation(a, b, onto, floor: int = 16, side: int = 64) -> float | None:
    """Pixel correlation of two grey pictures (uint8 arrays) once the 2 x 3 transform `onto` (a's pixels onto
    b's) lays `a` on `b`, at `side` px, over the part they share, leaving out pixels at or under `floor` in
    either (a black bar, a rotation's fill). Where that leaves under a tenth of `b`, the pixels lit in either
    are compared: two dark photos under one stamp (a star field, a fundus rim) whose lit parts hardly meet
    are unlike, not incomparable. None when even those are under a tenth of `b`.

    Both dedupe (`curate.dedupe.verify.in_place_correlation`) and the leakage audit ask it of a match laid
    in place: different photos under one site's stamp share keypoints there, but not their pixels."""
    import cv2
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    fa, fb = side / max(a.shape), side / max(b.shape)
    small_a = cv2.resize(
        a, (max(1, round(a.shape[1] * fa)), max(1, round(a.shape[0] * fa))), interpolation=cv2.INTER_AREA
    )
    small_b = cv2.resize(
        b, (max(1, round(b.shape[1] * fb)), max(1, round(b.shape[0] * fb))), interpolation=cv2.INTER_AREA
    )
    t = (
        np.diag([small_b.shape[1] / b.shape[1], small_b.shape[0] / b.shape[0]])
        @ np.asarray(onto, np.float64).reshape(2, 3)
        @ np.diag([a.shape[1] / small_a.shape[1], a.shape[0] / small_a.shape[0], 1.0])
    )
    laid, inside = lay(small_a, t, small_b.shape)
    lit = inside & (laid > floor) & (small_b > floor)
    if lit.sum() < 0.1 * lit.size:  # lit parts that hardly meet: dark photos (stars, a fundus rim) compared
        lit = inside & ((laid > floor) | (small_b > floor))  # where either is lit, else "too little"
    if lit.sum() < 0.1 * lit.size:
        return None
    return pearson(laid[lit], small_b[lit])


def lay(a, t, shape: tuple[int, ...], inverse: bool = False):
    """(`a` as float32 laid by the 2 x 3 transform `t` on a picture of `shape`, which of its pixels `a` covers,
    its resampled edge left out); `inverse`: `t` maps the target's pixels onto `a`'s, as OpenCV's ECC gives it.
    One way of laying for `laid_correlation` and dedupe's `curate.dedupe.verify.unlike_away`."""
    import cv2
    import numpy as np

    size, flags = (shape[1], shape[0]), cv2.WARP_INVERSE_MAP if inverse else 0
    laid = cv2.warpAffine(np.asarray(a, np.float32), t, size, flags=cv2.INTER_LINEAR | flags)
    inside = cv2.warpAffine(np.ones(np.shape(a)[:2], np.uint8), t, size, flags=cv2.INTER_NEAREST | flags)
    return laid, cv2.erode(inside, np.ones((3, 3), np.uint8)).astype(bool)


def pearson(x, y) -> float:
    """Pearson correlation of two arrays of pixels (flattened alike); 0 when either is flat."""
    import numpy as np

    x, y = np.asarray(x, np.float32).ravel(), np.asarray(y, np.float32).ravel()
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / max(np.sqrt(float((x * x).sum()) * float((y * y).sum())), 1e-6))
