"""Normalise one original into the exported JPEG (and its ROI crop), as the paper prepared them.

EXIF orientation applied, RGB in sRGB (`curate.imaging.in_srgb`, `to_rgb`), resized to a fixed size by a named policy,
baseline JPEG with fixed encoder settings and *no* metadata: the pixels are copied into a fresh image, so no EXIF,
GPS, XMP, ICC profile or comment can travel along. JPEGs are decoded at reduced size
(`Image.draft`) when the output needs fewer pixels than the original has. Unlike
`curate.imaging.open_upright`, the pixels are cropped and resized in stored orientation and only the
small result is turned upright (the same picture at a fraction of the cost); the orientation is read
and mapped by the same `curate.imaging` helpers.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image

from curate.imaging import DRAFT_FORMATS, SWAPS_AXES, UPRIGHT, in_srgb, pixels_only, to_rgb, to_turn

JPEG_QUALITY = 90
PAD_FILL = (0, 0, 0)
REDUCING_GAP = 2.0


@dataclass(frozen=True)
class ImageSpec:
    size: tuple[int, int] = (320, 320)
    policy: str = "stretch"
    roi_margin: float = 0.1  # fraction of the box's width/height added on each side
    quality: int = JPEG_QUALITY

    def as_dict(self) -> dict:
        return {
            "image_size": list(self.size),
            "resize_policy": self.policy,
            "roi_margin": self.roi_margin,
            "jpeg_quality": self.quality,
            "jpeg_subsampling": "4:2:0",
            "resample": "bicubic (reducing_gap 2)",
        }


def union_box(boxes: list[list[float]]) -> tuple[float, float, float, float] | None:
    """One region covering every lesion box (the paper crops one ROI per image)."""
    boxes = [b for b in boxes if len(b) == 4 and b[2] > b[0] and b[3] > b[1]]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def roi_region(
    box: tuple[float, float, float, float], margin: float, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """The box grown by `margin` on each side, snapped outward to whole pixels and clipped to the image."""
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    r = (
        max(0, math.floor(x0 - mx)),
        max(0, math.floor(y0 - my)),
        min(width, math.ceil(x1 + mx)),
        min(height, math.ceil(y1 + my)),
    )
    if r[2] - r[0] < 1 or r[3] - r[1] < 1:
        return None
    return r


def fit(img: Image.Image, size: tuple[int, int], policy: str) -> Image.Image:
    """Resize `img` to exactly `size` by `policy`."""
    if policy == "stretch":
        # reducing_gap: box-reduce by an integer factor first, then bicubic; same look, far less work.
        return img.resize(size, Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP)
    if policy == "center-crop":
        scale = max(size[0] / img.width, size[1] / img.height)
        cw, ch = size[0] / scale, size[1] / scale
        box = ((img.width - cw) / 2, (img.height - ch) / 2, (img.width + cw) / 2, (img.height + ch) / 2)
        return img.resize(size, Image.Resampling.BICUBIC, box=box, reducing_gap=REDUCING_GAP)
    if policy == "pad":
        ratio = min(size[0] / img.width, size[1] / img.height)
        inner = (max(1, round(img.width * ratio)), max(1, round(img.height * ratio)))
        out = Image.new("RGB", size, PAD_FILL)
        out.paste(
            img.resize(inner, Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP),
            ((size[0] - inner[0]) // 2, (size[1] - inner[1]) // 2),
        )
        return out
    raise ValueError(f"unknown resize policy {policy!r}")


def encode(img: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    """Baseline JPEG with fixed settings from a fresh pixel copy: no metadata, identical bytes every time."""
    clean = pixels_only(img)
    buf = io.BytesIO()
    clean.save(buf, format="JPEG", quality=quality, subsampling="4:2:0", optimize=False, progressive=False)
    return buf.getvalue()


def _draft_request(stored: tuple[int, int], full: tuple[int, int], need: tuple[float, float]) -> tuple[int, int]:
    """Size to ask `draft` for (in stored axes) so the oriented decode has at least `need` pixels across
    the full image."""
    scale = min(1.0, max(need[0] / full[0], need[1] / full[1]))
    return (max(1, math.ceil(stored[0] * scale)), max(1, math.ceil(stored[1] * scale)))


def _box_through(
    op: Image.Transpose, box: tuple[float, float, float, float], w: float, h: float
) -> tuple[float, float, float, float]:
    """Where `box` of a w x h image lands after `op`."""
    x0, y0, x1, y1 = box
    T = Image.Transpose
    return {
        T.FLIP_LEFT_RIGHT: (w - x1, y0, w - x0, y1),
        T.FLIP_TOP_BOTTOM: (x0, h - y1, x1, h - y0),
        T.ROTATE_180: (w - x1, h - y1, w - x0, h - y0),
        T.TRANSPOSE: (y0, x0, y1, x1),
        T.ROTATE_90: (y0, w - x1, y1, w - x0),
        T.ROTATE_270: (h - y1, x0, h - y0, x1),
        T.TRANSVERSE: (h - y1, w - x1, h - y0, w - x0),
    }[op]


_INVERSE = {
    Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270,
    Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
}


def stored_box(
    box: tuple[float, float, float, float], orientation: int | None, full: tuple[int, int]
) -> tuple[float, float, float, float]:
    """A box in displayed (oriented) pixels, mapped to the stored pixel grid."""
    op = UPRIGHT.get(orientation or 1)
    if op is None:
        return box
    return _box_through(_INVERSE.get(op, op), box, *full)


def _fit_stored(img: Image.Image, spec: ImageSpec, op: Image.Transpose | None) -> Image.Image:
    """Resize in stored orientation (cheap), then turn the small result upright."""
    size = spec.size if op is None or op not in _SWAPS else (spec.size[1], spec.size[0])
    out = fit(img, size, spec.policy)
    return out.transpose(op) if op is not None else out


_SWAPS = {Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270}


def prepare(
    original: str | bytes,
    spec: ImageSpec,
    region: tuple[int, int, int, int] | None,
    expected: tuple[int, int] | None = None,
) -> tuple[bytes, bytes | None]:
    """(exported JPEG, ROI JPEG of `region` or None) from the original's path or its bytes (the export reads
    them once, to check their SHA-256 too). `region` is in pixels of the oriented original.

    `expected` is the oriented size the catalogue recorded; a file that disagrees raises ValueError,
    since its boxes would then point at the wrong pixels. The pixels are decoded at reduced scale
    where the output allows, and cropped and resized in stored orientation before being turned
    upright (same result as orienting first, at a fraction of the cost).
    """
    with Image.open(io.BytesIO(original) if isinstance(original, bytes) else original) as im:
        stored = im.size
        orientation = to_turn(im)
        full = (stored[1], stored[0]) if orientation in SWAPS_AXES else stored
        if expected is not None and tuple(expected) != full:
            raise ValueError(
                f"oriented size {full[0]}x{full[1]} differs from the catalogue's {expected[0]}x{expected[1]}"
            )
        if im.format in DRAFT_FORMATS:
            # Enough pixels for the whole image at output size, and for the ROI region at output size.
            need = (float(spec.size[0]), float(spec.size[1]))
            if region:
                rw, rh = region[2] - region[0], region[3] - region[1]
                need = (max(need[0], spec.size[0] * full[0] / rw), max(need[1], spec.size[1] * full[1] / rh))
            im.draft("RGB", _draft_request(stored, full, need))
        im.load()
        img = to_rgb(in_srgb(im))
        op = UPRIGHT.get(orientation or 1)
        main = encode(_fit_stored(img, spec, op), spec.quality)
        if not region:
            return main, None
        sbox = stored_box(region, orientation, full)
        fx, fy = img.size[0] / stored[0], img.size[1] / stored[1]
        x0, y0 = round(sbox[0] * fx), round(sbox[1] * fy)
        x1, y1 = max(x0 + 1, round(sbox[2] * fx)), max(y0 + 1, round(sbox[3] * fy))
        return main, encode(_fit_stored(img.crop((x0, y0, x1, y1)), spec, op), spec.quality)
