"""Turning an upload into an upright RGB image, or a one-line reason (a `ServeError` with its HTTP
status) why not. Bytes stay in memory: nothing here touches the disk.

Handled correctly, not refused: HEIC/HEIF (pillow-heif), CMYK and greyscale (converted to RGB),
EXIF-rotated phone photos (turned upright, as the export did for the training images).
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import AsyncIterator

import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException, MultiPartParser

from curate.errors import ServeError

pillow_heif.register_heif_opener()


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 20 * 1024 * 1024   # per request body
    max_pixels: int = 40_000_000        # a decompression bomb is refused before its pixels are decoded


async def limited(stream: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """The request body, refusing (413) as soon as it passes `max_bytes`."""
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > max_bytes:
            raise ServeError(f"upload is larger than {max_bytes // (1024 * 1024)} MB", 413)
        yield chunk


async def read_upload(headers: Headers, stream: AsyncIterator[bytes], limits: Limits, field: str = "file") -> bytes:
    """The bytes of multipart field `field`, parsed in memory (spool limit = body limit, so
    starlette never rolls the upload over to a temporary file)."""
    length = headers.get("content-length")
    if length and length.isdigit() and int(length) > limits.max_bytes:
        raise ServeError(f"upload is larger than {limits.max_bytes // (1024 * 1024)} MB", 413)
    if not headers.get("content-type", "").startswith("multipart/form-data"):
        raise ServeError("send the photo as multipart/form-data in a field named 'file'", 415)
    parser = MultiPartParser(headers, limited(stream, limits.max_bytes), max_files=1, max_fields=4)
    parser.spool_max_size = limits.max_bytes + 1
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ServeError(f"malformed multipart upload: {exc}", 400) from None
    try:
        upload = form.get(field)
        if upload is None or isinstance(upload, str):
            raise ServeError(f"no file in field '{field}'", 400)
        data = await upload.read()
    finally:
        await form.close()
    if not data:
        raise ServeError("the uploaded file is empty", 400)
    return data


def decode(data: bytes, limits: Limits, draft_size: int | None = None) -> Image.Image:
    """Upright RGB image; `draft_size` lets JPEG decode at a reduced scale (≥ that size) for speed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > limits.max_pixels:
                raise ServeError(f"image is {w}×{h} pixels ({w * h / 1e6:.0f} MP); the limit is "
                                 f"{limits.max_pixels / 1e6:.0f} MP", 413)
            if draft_size and im.format == "JPEG":
                im.draft("RGB", (draft_size, draft_size))
            im.load()
            upright = ImageOps.exif_transpose(im)
            return upright.convert("RGB")
    except ServeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ServeError("image is too large to decode safely (decompression bomb)", 413) from None
    except UnidentifiedImageError:
        raise ServeError("not an image this server can read (JPEG, PNG, WebP, HEIC, TIFF, BMP, GIF)", 415) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ServeError(f"the image is damaged or truncated ({type(exc).__name__})", 422) from None
