"""Every bad input intake must reject with a one-line reason, and every odd-but-valid one it must keep."""

import io
import json

import images as I
import pytest
from PIL import Image, PngImagePlugin

from curate.intake.decode import Rejected, inspect


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (I.truncated_jpeg(1), "truncated image"),
        (I.html_as_image(), "HTML page"),
        (b"GIF89a" + b"\0" * 20, "damaged GIF (its signature, but a header Pillow cannot read)"),  # "not an image"
        (b"\xff\xd8\xff\xe0garbage-after-a-jpeg-signature", "truncated image"),
        (I.png_bomb(), "decompression bomb"),
        (b"%PDF-1.4\n" + b"0" * 100, "not an image"),
    ],
    ids=["zero-byte", "truncated", "html-as-jpeg", "gif-header-only", "jpeg-magic-then-junk", "png-bomb", "pdf"],
)
def test_bad_bytes_are_rejected_with_a_reason(data, reason):
    with pytest.raises(Rejected) as exc:
        inspect(data)
    assert reason in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "data, fmt, mode, frames",
    [
        (I.cmyk_jpeg(2), "JPEG", "CMYK", 1),
        (I.png16(3), "PNG", "I;16", 1),
        (I.rgba_png(4), "PNG", "RGBA", 1),
        (I.animated_gif(5), "GIF", "P", 3),
        (I.encode(I.photo(6), "WEBP"), "WEBP", "RGB", 1),
        (I.encode(I.photo(7), "TIFF"), "TIFF", "RGB", 1),
        (I.encode(I.photo(8), "BMP"), "BMP", "RGB", 1),
    ],
    ids=["cmyk", "16-bit", "alpha", "animated-gif", "webp", "tiff", "bmp"],
)
def test_unusual_but_valid_images_are_kept(data, fmt, mode, frames):
    info = inspect(data)
    assert (info.format, info.mode, info.frames) == (fmt, mode, frames)
    assert (info.width, info.height) == (160, 120)


def test_heic_is_read_through_the_plugin():
    pytest.importorskip("pillow_heif")
    assert inspect(I.encode(I.photo(9), "HEIF")).format == "HEIF"


def test_exif_rotation_and_privacy_flags():
    info = inspect(I.exif_jpeg(1, orientation=6))
    # stored 160x120 sideways; displayed 120x160
    assert (info.width, info.height, info.exif_orientation) == (120, 160, 6)
    assert info.has_gps and info.has_camera_serial and info.has_exif
    plain = inspect(I.exif_jpeg(1, orientation=1, gps=False, serial=False))
    assert (plain.width, plain.height) == (160, 120)
    assert not plain.has_gps and not plain.has_camera_serial


@pytest.mark.parametrize(
    "module", ["curate.intake.decode", "curate.dedupe.decode", "curate.export.images", "curate.imaging", "train.photos"]
)
def test_heic_opens_wherever_the_toolkit_opens_images(tmp_path, module):
    """Not only at intake: every module that reads originals (dedupe, export, the review pages) or uploads
    (`train predict`, `train serve`) opens HEIC by itself, in a fresh interpreter."""
    import subprocess
    import sys

    pytest.importorskip("pillow_heif")
    if module.startswith("train."):
        pytest.importorskip("torch")
    path = tmp_path / "phone.heic"
    path.write_bytes(I.encode(I.photo(9), "HEIF"))
    code = f"import {module}; from PIL import Image; print(Image.open({str(path)!r}).size)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(160, 120)"


def test_the_pixel_limit_is_pillows_bomb_limit():
    from PIL import Image

    from curate.intake.limits import MAX_PIXELS

    assert MAX_PIXELS == Image.MAX_IMAGE_PIXELS


def test_serving_reads_a_16_bit_grey_and_a_transparent_photo_as_the_export_wrote_its_pictures():
    """`train serve` and `train predict` turned a 16-bit grey PNG white (Pillow clips its levels) and left
    a transparent photo's hidden pixels in; the export scales the one and flattens the other onto white.
    The model must see an upload as it saw its training pictures."""
    import io

    import numpy as np
    from PIL import Image

    from curate.imaging import to_rgb

    pytest.importorskip("torch")
    from train.photos import Limits, decode

    grey = np.asarray(decode(I.png16(5), Limits()).convert("L"), np.int16)
    assert np.abs(grey - np.asarray(I.photo(5).convert("L"), np.int16)).max() <= 1
    clear = I.rgba_png(6)
    served = np.asarray(decode(clear, Limits()))
    assert np.array_equal(served, np.asarray(to_rgb(Image.open(io.BytesIO(clear)))))
    assert served.mean() > np.asarray(I.photo(6).convert("RGB")).mean()  # half see-through: lighter on white


def test_a_decoders_reason_is_one_line():
    """libheif's message for a cut HEIC ends in a newline: stored, it broke `curate dedupe`'s summary line in two
    and reached `--json` raw. A reason is one line whatever the decoder says."""
    data = I.encode(I.photo(3), "HEIF")
    with pytest.raises(Rejected) as caught:
        inspect(data[: len(data) // 2])
    reason = str(caught.value)
    assert reason.startswith("cannot decode (") and reason.endswith(")")
    assert "\n" not in reason and reason == " ".join(reason.split())


def test_damaged_pixels_are_rejected_even_behind_exif():
    """Before: a PNG with 8 bytes of its pixel data overwritten was kept as a good photo (Pillow's own load()
    fails on it): reading the EXIF decoded the pixels first and its error was taken for malformed EXIF."""
    import io

    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:300, 0:400]
    buf = io.BytesIO()
    Image.fromarray(np.stack([x % 256, y % 256, (x * y) % 256], -1).astype(np.uint8)).save(buf, "PNG")
    damaged = bytearray(buf.getvalue())
    middle = len(damaged) // 2
    damaged[middle : middle + 8] = b"\0" * 8
    with pytest.raises(Rejected, match="cannot decode"):
        inspect(bytes(damaged))
    assert inspect(buf.getvalue()).format == "PNG"


def test_a_jpeg_a_failed_copy_left_zeroed_is_rejected_and_progressive_ones_are_kept():
    """Before: a JPEG with a fifth of its bytes zeroed mid-file (a copy or a disk that never wrote that block) was
    stored as a good photo: libjpeg decodes the zeros as grey blocks without an error."""
    from skimage import data as photos

    for progressive in (False, True):
        buf = io.BytesIO()
        Image.fromarray(photos.astronaut()).save(buf, "JPEG", quality=90, progressive=progressive)
        good = buf.getvalue()
        assert inspect(good).format == "JPEG"
        if progressive:  # its refinement scans hold long runs of zero bytes of their own: never asked
            big = Image.fromarray(photos.moon()).resize((2048, 2048), Image.NEAREST)
            buf = io.BytesIO()
            big.save(buf, "JPEG", quality=100, progressive=True)
            assert b"\0" * 4096 in buf.getvalue() and inspect(buf.getvalue()).format == "JPEG"
            continue
        damaged = bytearray(good)
        damaged[len(good) // 2 : len(good) // 2 + len(good) // 5] = bytes(len(good) // 5)
        with pytest.raises(Rejected, match=r"damaged JPEG: 256 or more zero bytes from byte \d+"):
            inspect(bytes(damaged))
        padded = good + bytes(4096)  # zero padding after the end-of-image marker (some cameras write it): kept
        assert inspect(padded).format == "JPEG"
        # a camera's EXIF thumbnail is a JPEG of its own before the photo's scan: the photo's damage is still found
        thumb = io.BytesIO()
        Image.fromarray(photos.astronaut()).resize((160, 160)).save(thumb, "JPEG", quality=80)
        app1 = b"Exif\0\0II*\0" + bytes(8) + thumb.getvalue()
        with_thumb = bytearray(good[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + good[2:])
        with_thumb[len(with_thumb) // 2 : len(with_thumb) // 2 + 8192] = bytes(8192)
        with pytest.raises(Rejected, match="damaged JPEG"):
            inspect(bytes(with_thumb))
    # the review's cases, kept: tables an encoder optimised for a flat picture code its blocks as zero bytes (a photo
    # on a white page: 4,416 in a row), and a marker's bytes with zeros after it inside a comment are metadata
    page = Image.new("RGB", (1500, 1500), "white")
    page.paste(Image.fromarray(photos.astronaut()).resize((500, 500)), (500, 500))
    for picture, options in [(page, {"optimize": True}), (Image.new("L", (1200, 1600), 128), {"optimize": True})]:
        buf = io.BytesIO()
        picture.save(buf, "JPEG", quality=90, **options)
        assert b"\0" * 256 in buf.getvalue() and inspect(buf.getvalue()).format == "JPEG"
    buf = io.BytesIO()
    Image.fromarray(photos.astronaut()).save(buf, "JPEG", quality=90, comment=b"\xff\xda" + bytes(300))
    assert inspect(buf.getvalue()).format == "JPEG"


def test_corrupt_exif_warns_nothing_and_keeps_the_photo(recwarn):
    """Before: Pillow's "Corrupt EXIF data" warning reached the terminal as two lines naming its own source file."""
    data = bytearray(I.exif_jpeg(1, orientation=6))
    at = data.index(b"Exif\0\0") + 6
    data[at + 4 : at + 8] = b"\xff\xff\xff\x7f"  # the first IFD's offset far past the segment
    info = inspect(bytes(data))
    assert info.format == "JPEG" and not [w for w in recwarn if "EXIF" in str(w.message)]


XMP = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description {}/></rdf:RDF></x:xmpmeta>'
)


def _with_xmp(fmt: str, props: bytes) -> bytes:
    img, packet = Image.new("RGB", (64, 48), (180, 120, 90)), XMP.replace(b"{}", props)
    buf = io.BytesIO()
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", packet.decode())
        img.save(buf, "PNG", pnginfo=info)
    elif fmt == "TIFF":
        img.save(buf, "TIFF", tiffinfo={700: packet})
    else:
        img.save(buf, fmt, xmp=packet)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_gps_and_serials_only_in_xmp_are_flagged(fmt, tmp_path):
    """The privacy probe's case: a photo exported without EXIF keeps its GPS and camera serial in XMP; status
    counted it as neither. Every copy the toolkit writes drops XMP: the flags let `curate status` say so."""
    both = inspect(_with_xmp(fmt, b'exif:GPSLatitude="51,30.2N" exif:GPSLongitude="0,7.6W" aux:SerialNumber="SN1"'))
    assert both.has_gps and both.has_camera_serial
    body = inspect(_with_xmp(fmt, b'exifEX:BodySerialNumber="SN2"'))
    assert body.has_camera_serial and not body.has_gps
    plain = inspect(_with_xmp(fmt, b'xmp:CreatorTool="GIMP" dc:format="image/jpeg"'))
    assert not plain.has_gps and not plain.has_camera_serial
    empty = inspect(_with_xmp(fmt, b'exif:GPSLatitude="" aux:LensSerialNumber="L9"'))  # no place, a lens's serial
    assert not empty.has_gps and not empty.has_camera_serial
    element = inspect(_with_xmp(fmt, b"><exif:GPSLongitude>0,7.6W</exif:GPSLongitude><aux:SerialNumber>SN3<x"))
    assert element.has_gps and element.has_camera_serial
    quoted = inspect(_with_xmp(fmt, b"exif:GPSLatitude='51,30.2N' exifEX:BodySerialNumber='SN4'"))
    assert quoted.has_gps and quoted.has_camera_serial


def test_status_counts_a_photo_whose_gps_is_only_in_xmp(tmp_path):
    from typer.testing import CliRunner

    from curate.cli import app

    folder = tmp_path / "in" / "mpox"
    folder.mkdir(parents=True)
    (folder / "a.jpg").write_bytes(_with_xmp("JPEG", b'exif:GPSLatitude="51,30.2N" exif:GPSLongitude="0,7.6W"'))
    ws = str(tmp_path / "ws")
    runner = CliRunner()
    assert runner.invoke(app, ["init", ws]).exit_code == 0
    assert runner.invoke(app, ["ingest", str(tmp_path / "in"), "-s", "clinic", "-w", ws]).exit_code == 0
    status = json.loads(runner.invoke(app, ["status", "--json", "-w", ws]).stdout)
    assert status["stages"]["flagged_gps"] == 1 and status["stages"]["flagged_camera_serial"] == 0
