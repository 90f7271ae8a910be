"""A photo's bytes as the upright RGB image the model sees, or a one-line reason (`ServeError` with
an HTTP status) why not. Used by `serve` and `predict`, so both read a photo the same way.

Handled correctly, not refused: HEIC/HEIF (pillow-heif), CMYK and greyscale (converted to RGB), 16-bit
grey (levels scaled, not clipped to white), transparency (flattened onto white), EXIF-rotated phone photos
(turned upright): as the export did for the training images (`curate.imaging.to_rgb`).
"""

from __future__ import annotations

import io
import struct
import threading
import warnings
from dataclasses import dataclass

import pillow_heif
from PIL import Image, UnidentifiedImageError

from curate.errors import ServeError
from curate.imaging import UPRIGHT, in_srgb, to_rgb, to_turn
from curate.jpeg_damage import zeroed_run

pillow_heif.register_heif_opener()

# what a phone or a camera sends; Pillow opens many more (EPS through Ghostscript, TGA, PCX, …), none a photo.
# A multi-picture JPEG (MPO) opens through JPEG's opener.
FORMATS = ("JPEG", "PNG", "WEBP", "HEIF", "TIFF", "BMP", "GIF")
# the paper's low-resolution filter: `curate dedupe --min-side`'s default keeps pictures with a shorter side
# below it out of labelling, so no model saw one (a copy, not an import: train reads only the export)
LOW_RES_SIDE = 128


def low_resolution(name: str, size: tuple[int, int], input_size: int) -> str | None:
    """The warning for a picture whose shorter side is below `LOW_RES_SIDE` (or the model's input size when that
    is smaller: a tiny test model's 32 px input is no low resolution): decided all the same, but unreliably."""
    side = min(LOW_RES_SIDE, input_size)
    w, h = size
    if min(w, h) >= side:
        return None
    return f"{name} is {w}×{h} px, below {side} px on its shorter side: its decision is unreliable; use a larger photo"


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 20 * 1024 * 1024  # per request body
    max_pixels: int = 40_000_000  # a decompression bomb is refused before its pixels are decoded


def decode(data: bytes, limits: Limits, draft_size: int | None = None) -> Image.Image:
    """Upright RGB image; `draft_size` lets JPEG decode at a reduced scale (≥ that size) for speed."""
    return decode_sized(data, limits, draft_size)[0]


def for_overlay(data: bytes, img: Image.Image, size: tuple[int, int], limits: Limits, side: int) -> Image.Image:
    """A copy of the photo to draw a Grad-CAM overlay on, its longer side `side` at most (or the photo's own): `img`
    (what the model sees) where that is large enough, else `data` decoded again at that scale. A JPEG decoded for a
    small model is small: `train serve` drew a 400 px photo's overlay at 100 px where `predict` drew it at 400."""
    big = max(img.size) >= min(side, max(size))
    shown = (img if big else decode(data, limits, side)).copy()
    shown.thumbnail((side, side))
    return shown


_PILLOW_LIMIT = threading.Lock()  # Image.MAX_IMAGE_PIXELS is the process's: one open at a time may raise it


def _open(data: bytes, limits: Limits) -> Image.Image:
    """`Image.open` with Pillow's own refusal (at twice `Image.MAX_IMAGE_PIXELS`) above `limits.max_pixels`, for this
    open only: before, `--max-megapixels 150` still refused a 100 MP phone photo as a "decompression bomb", at
    Pillow's 89.5 MP. Every other open in the process keeps Pillow's limit."""
    with _PILLOW_LIMIT:
        saved = Image.MAX_IMAGE_PIXELS
        if saved is not None and limits.max_pixels > saved:
            Image.MAX_IMAGE_PIXELS = limits.max_pixels
        try:
            return Image.open(io.BytesIO(data), formats=FORMATS)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def decode_sized(data: bytes, limits: Limits, draft_size: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """`decode`'s image and the photo's own upright size (a JPEG decoded at reduced scale is smaller)."""
    if not data:  # predict said "not a photo format" where serve said "empty" (`uploads.read_upload`)
        raise ServeError("the file is empty", 400)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pillow's "Corrupt EXIF data": a server log is no place
            # Pillow warns from its own limit on; ours is asked next, by the header's size, before any pixel
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = _open(data, limits)
            w, h = im.size
            if w * h > limits.max_pixels:
                raise ServeError(
                    f"image is {w}×{h} pixels ({w * h / 1e6:.1f} MP); the limit is {limits.max_pixels / 1e6:.1f} MP",
                    413,
                )
            if im.format in ("JPEG", "MPO") and zeroed_run(data) is not None:  # as `curate ingest` refuses it
                raise ServeError("the image is damaged: part of it was never written (a failed copy?)", 422)
            if draft_size and im.format in ("JPEG", "MPO"):  # a phone's multi-picture JPEG is one too
                im.draft("RGB", (draft_size, draft_size))
            im.load()
            # read as curate reads it (`to_turn`): a malformed EXIF tag does not stop the photo (before:
            # exif_transpose raised struct.error, a 500); a TIFF is already upright once loaded (Pillow turns it
            # and drops the tag), and its size was swapped twice
            turn = UPRIGHT.get(to_turn(im))
            upright = im.transpose(turn) if turn is not None else im
            turned = upright.size != im.size
            return to_rgb(in_srgb(upright)), ((h, w) if turned else (w, h))
    except ServeError:
        raise
    except Image.DecompressionBombError:
        raise ServeError(
            f"image is too large to decode safely (decompression bomb); the limit is {limits.max_pixels / 1e6:.1f} MP",
            413,
        ) from None
    except UnidentifiedImageError:
        raise ServeError("not a photo format train reads (JPEG, PNG, WebP, HEIC, TIFF, BMP, GIF)", 415) from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, TypeError, IndexError):
        # a damaged file makes Pillow raise these, a fuzzed TIFF's tags struct.error or TypeError (before: a 500)
        raise ServeError("the image is damaged or truncated", 422) from None
