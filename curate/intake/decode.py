"""Decide whether bytes are an image we keep, and read what the catalogue records.

Every check here is one the stock tools skip: a header-only check saves a
truncated JPEG as valid, and a decompression bomb raises mid-crawl. We decode
the whole first frame (JPEGs at reduced scale, which still reads every byte).
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

from curate.imaging import SWAPS_AXES, exif_orientation
from curate.intake.limits import MAX_BYTES, MAX_PIXELS
from curate.jpeg_damage import ZEROED_RUN, zeroed_run

ImageFile.LOAD_TRUNCATED_IMAGES = False

ACCEPTED_FORMATS = {"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "MPO", "HEIF"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif"}

# EXIF tags (IFD0 / Exif IFD)
_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769
_SERIAL_TAGS = (0xA431, 0xC62F)  # BodySerialNumber, CameraSerialNumber


class Rejected(Exception):
    """Bytes that do not enter the store; the message is the one-line reason (a decoder's own text, libheif's
    ending in a newline, is folded onto one line: it is stored, printed in summaries and in `--json`)."""

    def __init__(self, reason: str):
        super().__init__(" ".join(str(reason).split()).replace(" )", ")"))


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int  # after EXIF orientation
    height: int
    mode: str
    frames: int
    exif_orientation: int | None
    has_exif: bool
    has_gps: bool
    has_camera_serial: bool


def _exif_flags(img: Image.Image) -> tuple[int | None, bool, bool, bool]:
    try:
        exif = img.getexif()
    except Exception:  # malformed EXIF must not reject an otherwise fine photo
        return None, False, False, False
    if not exif:
        return None, False, False, False
    try:
        gps = bool(exif.get_ifd(_GPS_IFD))
    except Exception:
        gps = _GPS_IFD in exif
    serial = any(t in exif for t in _SERIAL_TAGS)
    if not serial:
        try:
            sub = exif.get_ifd(_EXIF_IFD)
            serial = any(t in sub for t in _SERIAL_TAGS)
        except Exception:
            pass
    return exif_orientation(img), True, gps, serial


# the same facts in an XMP packet (Adobe's exif:, exifEX: and aux: schemas; any prefix), which a photo edited and
# exported without EXIF still carries: Lightroom, phone galleries, Photoshop's "Save for Web" with metadata
# a property with a value, as an attribute (exif:GPSLatitude="51,30.2N") or an element (<aux:SerialNumber>SN1<),
# not an empty one; the serials are the camera's, as the EXIF check reads (a lens's serial is not looked for there)
_XMP_VALUE = rb"""(?:\s*=\s*(?:"[^"\s][^"]*"|'[^'\s][^']*')|>\s*[^<\s])"""  # XML allows either quote
_XMP_GPS = re.compile(rb"(?<![A-Za-z])GPS(?:Latitude|Longitude)" + _XMP_VALUE)
_XMP_SERIAL = re.compile(rb"(?<![A-Za-z])(?:Body|Camera)?SerialNumber" + _XMP_VALUE)
_XMP_TIFF_TAG = 700


def _xmp_flags(img: Image.Image) -> tuple[bool, bool]:
    """(GPS, camera serial) in the picture's XMP packet, as Pillow read it (JPEG, WebP: "xmp"; PNG's iTXt chunk;
    TIFF's tag 700). Every copy the toolkit writes drops XMP: this only lets `curate status` count the photo."""
    packet = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp") or b""
    if not packet and hasattr(img, "tag_v2"):
        packet = img.tag_v2.get(_XMP_TIFF_TAG) or b""
    if isinstance(packet, str):
        packet = packet.encode("utf-8", "replace")
    if not isinstance(packet, bytes | bytearray):
        return False, False
    return bool(_XMP_GPS.search(packet)), bool(_XMP_SERIAL.search(packet))


def looks_like_image(head: bytes) -> bool:
    """True when the first bytes carry the signature of a format we accept (Pillow's own per-format checks)."""
    return _signed(head, ACCEPTED_FORMATS) is not None


def not_an_image(head: bytes) -> str:
    """Why a file without an accepted signature is skipped: a format Pillow knows but ingest does not take is
    named (an AVIF was "not an image"), anything else is not an image."""
    Image.init()  # every plugin registered before Image.OPEN is listed
    fmt = _signed(head, [f for f in Image.OPEN if f not in ACCEPTED_FORMATS])
    if fmt is not None:
        return f"unsupported image format {fmt} (ingest takes {', '.join(sorted(ACCEPTED_FORMATS))})"
    return "not an image (no image signature)"


def _signed(head: bytes, formats) -> str | None:
    """The first of `formats` whose Pillow plugin accepts `head` as its signature, or None."""
    Image.init()
    for fmt in formats:
        accept = Image.OPEN.get(fmt, (None, None))[1]
        try:
            if accept is not None and accept(head):
                return fmt
        except Exception:  # a plugin's check must not decide for the others
            continue
    return None


def html_head(head: bytes) -> bool:
    """Whether a file's first bytes begin as an HTML page does (a saved search page, a page --html wrote)."""
    return head.lstrip().lower().startswith((b"<!doctype html", b"<html"))


def too_many_pixels(pixels: int | None, most: int, size: str = "") -> str:
    """Why a picture over the pixel limit is refused, with both counts. Before, a 108 Mpx phone photo was "a
    decompression bomb (pixel count over the safety limit)", which neither named the limit nor said what to do."""
    counted = f"{size}{pixels / 1e6:.1f} Mpx" if pixels else "more pixels"
    return (
        f"too many pixels ({counted}; at most {most / 1e6:.1f} Mpx, Pillow's guard against decompression bombs): "
        "save it smaller"
    )


def inspect(data: bytes, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES) -> ImageInfo:
    """Fully decode the first frame of `data`; raise Rejected with a reason otherwise."""
    if not data:
        raise Rejected("empty file")
    if len(data) > max_bytes:
        raise Rejected(f"file too large ({len(data) / 1e6:.0f} MB > {max_bytes / 1e6:.0f} MB)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data": two lines naming Pillow, not the file
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            counted = re.search(r"\((\d+) pixels\)", str(exc))  # Pillow's "Image size (108000000 pixels) exceeds …"
            raise Rejected(too_many_pixels(int(counted[1]) if counted else None, max_pixels)) from exc
        except UnidentifiedImageError as exc:
            if fmt := _signed(data[:64], ACCEPTED_FORMATS):  # before: a damaged TIFF was "not an image"
                raise Rejected(f"damaged {fmt} (its signature, but a header Pillow cannot read)") from exc
            kind = "HTML page" if html_head(data[:64]) else "not an image"
            raise Rejected(f"{kind} (no known image signature)") from exc
        except Exception as exc:
            if "truncat" in str(exc).lower():
                raise Rejected("truncated image (header incomplete)") from exc
            raise Rejected(f"unreadable image header ({type(exc).__name__}: {exc})") from exc
        with img:
            fmt = img.format or "?"
            if fmt not in ACCEPTED_FORMATS:
                raise Rejected(f"unsupported format {fmt}")
            w, h = img.size
            if w <= 0 or h <= 0:
                raise Rejected(f"invalid size {w}x{h}")
            if w * h > max_pixels:
                raise Rejected(too_many_pixels(w * h, max_pixels, f"{w}x{h} = "))
            frames = getattr(img, "n_frames", 1)
            mode = img.mode
            try:
                if fmt == "JPEG":
                    img.draft(img.mode, (max(1, w // 8), max(1, h // 8)))
                img.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise Rejected(f"decompression bomb ({w}x{h})") from exc
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                msg = str(exc) or type(exc).__name__
                reason = "truncated image" if "truncat" in msg.lower() else f"cannot decode ({msg})"
                raise Rejected(reason) from exc
            except Exception as exc:  # any decoder fault is a reject, never a crash
                raise Rejected(f"cannot decode ({type(exc).__name__}: {exc})") from exc
            if fmt in ("JPEG", "MPO") and (zeroed := zeroed_run(data)) is not None:
                raise Rejected(f"damaged JPEG: {ZEROED_RUN} or more zero bytes from byte {zeroed} (a failed copy?)")
            # after the decode: a PNG's EXIF can follow its pixels, so reading it first decoded them, and the
            # error (malformed EXIF is no reason to reject) swallowed a damaged picture's
            orientation, has_exif, gps, serial = _exif_flags(img)
            xmp_gps, xmp_serial = _xmp_flags(img)
            gps, serial = gps or xmp_gps, serial or xmp_serial
    if orientation in SWAPS_AXES:
        w, h = h, w
    return ImageInfo(fmt, w, h, mode, frames, orientation, has_exif, gps, serial)
