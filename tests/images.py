"""Real image bytes for tests: photo-like pictures and every bad case intake must survive."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from curate.demo import photo


def encode(img: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg(seed: int, size=(160, 120), **kw) -> bytes:
    return encode(photo(seed, size), "JPEG", quality=90, **kw)


def exif_jpeg(seed: int, orientation: int = 6, gps: bool = True, serial: bool = True, size=(160, 120)) -> bytes:
    """A camera JPEG stored sideways (EXIF orientation) with GPS and a body serial number."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    if gps:
        g = exif.get_ifd(0x8825)
        g[1], g[2], g[3], g[4] = "S", (37.0, 48.0, 30.0), "E", (144.0, 57.0, 45.0)
    if serial:
        exif.get_ifd(0x8769)[0xA431] = "SN-123456"
    return encode(photo(seed, size), "JPEG", quality=90, exif=exif.tobytes())


def truncated_jpeg(seed: int) -> bytes:
    data = jpeg(seed, (320, 240))
    return data[: len(data) // 2]


def html_as_image() -> bytes:
    return b"<!DOCTYPE html><html><head><title>Not found</title></head><body>404</body></html>"


def png_bomb(side: int = 30_000) -> bytes:
    """A tiny PNG that claims side x side pixels (one bit each) — a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    raw = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def cmyk_jpeg(seed: int) -> bytes:
    return encode(photo(seed).convert("CMYK"), "JPEG", quality=90)


def png16(seed: int) -> bytes:
    arr = (np.asarray(photo(seed).convert("L"), np.uint16) * 257).astype(np.uint16)
    return encode(Image.fromarray(arr), "PNG")


def rgba_png(seed: int) -> bytes:
    img = photo(seed).convert("RGBA")
    img.putalpha(128)
    return encode(img, "PNG")


def animated_gif(seed: int, frames: int = 3) -> bytes:
    imgs = [photo(seed + i).convert("P") for i in range(frames)]
    buf = io.BytesIO()
    imgs[0].save(buf, "GIF", save_all=True, append_images=imgs[1:], duration=100, loop=0)
    return buf.getvalue()


def wide_gamut_icc() -> bytes:
    """An ICC v2 display profile with Adobe RGB (1998)'s primaries and gamma (D50-adapted colorants), written
    here: no wide-gamut profile ships with Pillow or this system. A camera or a phone (Display P3) tags photos
    with such a profile; its pixel values mean more saturated colours than the same values in sRGB."""
    import struct

    def xyz(x, y, z):
        return b"XYZ " + bytes(4) + struct.pack(">3i", *(round(v * 65536) for v in (x, y, z)))

    def curve(gamma):
        return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)

    name = b"wide gamut test profile\x00"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(name)) + name + struct.pack(">II", 0, 0) + bytes(3 + 67)
    desc += bytes(-len(desc) % 4)
    tags = [
        (b"desc", desc),
        (b"cprt", b"text" + bytes(4) + b"none\x00" + bytes(3)),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.60974, 0.31111, 0.01947)),
        (b"gXYZ", xyz(0.20528, 0.62567, 0.06087)),
        (b"bXYZ", xyz(0.14919, 0.06322, 0.74457)),
        (b"rTRC", curve(563 / 256)),
        (b"gTRC", curve(563 / 256)),
        (b"bTRC", curve(563 / 256)),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for sig, data in tags:
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = struct.pack(">I4sI4s4s4s", size, b"\x00" * 4, 0x02100000, b"mntr", b"RGB ", b"XYZ ") + bytes(12)
    header += b"acsp" + bytes(24) + struct.pack(">I", 0) + struct.pack(">3i", 63190, 65536, 54061)
    return header + bytes(128 - len(header)) + table + body
