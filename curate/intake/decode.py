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


ZEROED_RUN = 256  # zero bytes in a row in a JPEG's coded pixels: a block the disk or a copy never wrote
# the code-length counts of JPEG's example Huffman tables (ITU T.81 Annex K.3), which cameras and libjpeg's default
# encoder write: DC luminance and chrominance, then AC luminance and chrominance
_STANDARD_COUNTS = {
    0: {
        bytes([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]),
        bytes([0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]),
    },
    1: {
        bytes([0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D]),
        bytes([0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77]),
    },
}
_SEQUENTIAL = (0xC0, 0xC1)  # baseline and extended sequential, Huffman-coded; any other frame is not asked
_FRAMES = (*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xD0))  # SOF0-15 and DAC (arithmetic), not DHT
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")  # a marker after coded pixels: neither a stuffed 0 nor a restart


def zeroed_run(data: bytes) -> int | None:
    """Where a sequential JPEG with the standard Huffman tables holds `ZEROED_RUN` zero bytes in a row in a scan's
    coded pixels; None when it does not, or when it is not such a JPEG. libjpeg decodes such a stretch without an
    error (Pillow raises nothing; OpenCV prints "Corrupt JPEG data"), as grey blocks: a photo a failed copy or a
    crash left half written was stored as whole.

    Only where zeros cannot be the picture: with the standard tables all-zero bits code a coefficient of -1 again
    and again, never a flat block (the longest zero run in the scikit-image photos at qualities 5-100, enlarged or
    not: 3 bytes). Tables an encoder optimised for the picture (Pillow's `optimize`, jpegoptim) may give the
    commonest symbol, a flat block's, an all-zero code, and a progressive or arithmetic-coded file has runs of its
    own (8,192 and more): none of those is asked. The segments are walked by their lengths, so an EXIF thumbnail's
    scan or a marker's bytes inside metadata are never taken for the picture's."""
    if not data.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None  # not a marker where one must be: no judgement
        marker = data[pos + 1]
        if marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # fill, restart, TEM: no length
            pos += 1 if marker == 0xFF else 2
            continue
        if marker == 0xD9:
            return None
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        segment = data[pos + 4 : end]
        if marker in _FRAMES and marker not in _SEQUENTIAL:  # progressive, lossless, arithmetic: not asked
            return None
        if marker == 0xC4 and not _standard_tables(segment):
            return None
        if marker == 0xDA:
            found = _SCAN_END.search(data, end)
            stop = found.start() if found else len(data)
            at = data.find(b"\0" * ZEROED_RUN, end, stop)
            if at >= 0:
                return at
            end = stop
        pos = end
    return None


def _standard_tables(segment: bytes) -> bool:
    """Whether every Huffman table a DHT segment defines has the standard tables' code lengths (`_STANDARD_COUNTS`)."""
    i = 0
    while i + 17 <= len(segment):
        counts = segment[i + 1 : i + 17]
        if counts not in _STANDARD_COUNTS.get(segment[i] >> 4, ()):
            return False
        i += 17 + sum(counts)
    return True


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
