"""What a rater's browser receives: a copy of the picture's pixels, upright, never the original and its metadata.

Label Studio serves studio/files/<sha>.<ext> to every clinician of a round. The originals behind it carry EXIF
(GPS, Artist, ImageDescription, UserComment, MakerNote, a thumbnail that may show another picture), XMP, IPTC,
an ICC profile, JPEG comments and PNG text: none of it may reach the file served.
"""

from __future__ import annotations

import io
import os
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps, PngImagePlugin
from skimage import data as samples
from sqlmodel import select

from curate.errors import StoreError
from curate.label.rounds import image_link, push, rater_copies, rater_copy, replace_old_copies
from db.models import Image as ImageRow

SECRETS = (b"Dr Jane Example", b"Patient 4711", b"clinic room 3", b"MAKERNOTE-SN-99", b"DOB 1990")
STRAY = (b"Exif", b"http://ns.adobe.com/xap", b"ICC_PROFILE", b"Photoshop", b"8BIM", b"xmpmeta")
JPEG_INFO = {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi"}  # what a bare JPEG's header says


# --- real originals with everything a camera, an editor or a clinic tool leaves in them -------------------


def _ifd(entries: list[tuple[int, int, int, bytes]], at: int, next_at: int = 0) -> bytes:
    """One little-endian TIFF directory at offset `at`, its longer values right after it."""
    data_at = at + 2 + 12 * len(entries) + 4
    head, data = struct.pack("<H", len(entries)), b""
    for tag, kind, count, payload in sorted(entries):
        if len(payload) <= 4:
            head += struct.pack("<HHI", tag, kind, count) + payload.ljust(4, b"\0")
        else:
            head += struct.pack("<HHII", tag, kind, count, data_at + len(data))
            data += payload + b"\0" * (len(payload) % 2)
    return head + struct.pack("<I", next_at) + data


def _ascii(tag: int, text: bytes) -> tuple[int, int, int, bytes]:
    return tag, 2, len(text) + 1, text + b"\0"


def _long(tag: int, value: int) -> tuple[int, int, int, bytes]:
    return tag, 4, 1, struct.pack("<I", value)


def camera_exif(orientation: int, thumb: bytes) -> bytes:
    """An EXIF block (APP1 payload): orientation, Artist, ImageDescription, UserComment, MakerNote, GPS and an
    IFD1 thumbnail (`thumb`, a JPEG of another picture). Pillow writes no IFD1, so it is laid out here."""
    gps = [
        _ascii(1, b"S"),
        (2, 5, 3, struct.pack("<6I", 37, 1, 48, 1, 30, 1)),
        _ascii(3, b"E"),
        (4, 5, 3, struct.pack("<6I", 144, 1, 57, 1, 45, 1)),
    ]
    exif_ifd = [
        (0x9286, 7, 21, b"ASCII\0\0\0clinic room 3"),  # UserComment
        (0x927C, 7, 15, b"MAKERNOTE-SN-99"),  # MakerNote
    ]

    def ifd0(exif_at: int, gps_at: int) -> list:
        return [
            _ascii(0x010E, b"Patient 4711"),  # ImageDescription
            (0x0112, 3, 1, struct.pack("<H", orientation)),
            _ascii(0x013B, b"Dr Jane Example"),  # Artist
            _long(0x8769, exif_at),
            _long(0x8825, gps_at),
        ]

    size0 = len(_ifd(ifd0(0, 0), 8))
    exif_at = 8 + size0
    gps_at = exif_at + len(_ifd(exif_ifd, exif_at))
    ifd1_at = gps_at + len(_ifd(gps, gps_at))

    def ifd1(thumb_at: int) -> list:
        return [(0x0103, 3, 1, struct.pack("<H", 6)), _long(0x0201, thumb_at), _long(0x0202, len(thumb))]

    thumb_at = ifd1_at + len(_ifd(ifd1(0), ifd1_at))
    tiff = (
        b"II*\0"
        + struct.pack("<I", 8)
        + _ifd(ifd0(exif_at, gps_at), 8, ifd1_at)
        + _ifd(exif_ifd, exif_at)
        + _ifd(gps, gps_at)
        + _ifd(ifd1(thumb_at), ifd1_at)
        + thumb
    )
    return b"Exif\0\0" + tiff


def iptc_segment(byline: bytes) -> bytes:
    """An APP13 (Photoshop 3.0) segment holding an IPTC By-line, as photo editors write it."""
    record = b"\x1c\x02\x50" + struct.pack(">H", len(byline)) + byline
    record += b"\0" * (len(record) % 2)
    body = b"Photoshop 3.0\0" + b"8BIM\x04\x04\0\0" + struct.pack(">I", len(record)) + record
    return b"\xff\xed" + struct.pack(">H", len(body) + 2) + body


def icc_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_jpeg(orientation: int = 6) -> bytes:
    """The coffee photo (600 x 400) stored sideways with everything above, an XMP packet, an ICC profile, a COM
    comment and IPTC; its EXIF thumbnail is another picture (the astronaut's face)."""
    face = io.BytesIO()
    Image.fromarray(samples.astronaut()).resize((160, 160)).save(face, "JPEG", quality=80)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://ns.adobe.com/xap/1.0/">'
    xmp += b"<rdf:Description>Dr Jane Example</rdf:Description></rdf:RDF></x:xmpmeta>"
    buf = io.BytesIO()
    Image.fromarray(samples.coffee()).save(
        buf,
        "JPEG",
        quality=92,
        exif=camera_exif(orientation, face.getvalue()),
        icc_profile=icc_profile(),
        xmp=xmp,
        comment=b"Patient 4711 DOB 1990",
    )
    raw = buf.getvalue()
    return raw[:2] + iptc_segment(b"Dr Jane Example") + raw[2:]


def text_png(alpha: bool = True) -> bytes:
    """The coffee photo as a PNG with text chunks (tEXt, zTXt, iTXt), an ICC profile and an eXIf chunk."""
    img = Image.fromarray(samples.coffee())
    if alpha:
        img = img.convert("RGBA")
        img.putalpha(Image.linear_gradient("L").resize(img.size))
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Dr Jane Example")
    info.add_text("Comment", "Patient 4711 DOB 1990", zip=True)
    info.add_itxt("Description", "clinic room 3")
    buf = io.BytesIO()
    img.save(buf, "PNG", pnginfo=info, icc_profile=icc_profile(), exif=camera_exif(1, b"")[6:])
    return buf.getvalue()


def add(ws, data: bytes) -> ImageRow:
    """Store `data` and catalogue it as intake would (size as displayed, i.e. upright)."""
    sha, _ = ws.store.put(data)
    with Image.open(io.BytesIO(data)) as im:
        upright = ImageOps.exif_transpose(im)
        row = ImageRow(
            sha256=sha,
            size_bytes=len(data),
            format=im.format,
            width=upright.width,
            height=upright.height,
            mode=im.mode,
            exif_orientation=im.getexif().get(0x0112),
        )
    with ws.session() as s:
        s.add(row)
        s.flush()
        s.refresh(row)
        s.expunge(row)
    return row


def png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return out


def assert_bare(raw: bytes) -> None:
    for text in SECRETS + STRAY:
        assert text not in raw, text


@pytest.fixture
def ws(sqlite_ws, monkeypatch):
    monkeypatch.delenv("CURATE_STUDIO_DOCUMENT_ROOT", raising=False)
    return sqlite_ws


# --- the copy ------------------------------------------------------------------------------------------


def test_the_fixtures_do_carry_what_must_not_be_served():
    """Guard for the tests below: the originals hold every kind of metadata they say."""
    raw = camera_jpeg()
    im = Image.open(io.BytesIO(raw))
    exif = im.getexif()
    assert exif[0x013B] == "Dr Jane Example" and exif[0x0112] == 6
    assert exif.get_ifd(0x8825)[1] == "S" and exif.get_ifd(0x8769)[0x927C] == b"MAKERNOTE-SN-99"
    assert 0x0201 in exif.get_ifd(-1)  # the IFD1 thumbnail
    assert raw.count(b"\xff\xd8") == 2  # the photo and the face in its EXIF
    assert {"icc_profile", "xmp", "comment"} <= set(im.info) and b"8BIM" in raw
    png = Image.open(io.BytesIO(text_png()))
    assert png.text["Author"] == "Dr Jane Example" and "icc_profile" in png.info and png.getexif()[0x013B]


def test_a_camera_jpeg_is_served_as_its_pixels_alone_upright(ws):
    original = camera_jpeg(orientation=6)
    row = add(ws, original)
    url = image_link(ws, row)
    path = rater_copy(ws, row)
    # the URL names the file the task URLs have always named
    assert url == f"/data/local-files/?d=studio/files/{row.sha256[:2]}/{row.sha256}.jpg"
    assert path == ws.root / "studio" / "files" / row.sha256[:2] / f"{row.sha256}.jpg"
    assert path.is_file() and not path.is_symlink()
    assert path.stat().st_mode & 0o777 == 0o600
    raw = path.read_bytes()
    assert_bare(raw)
    assert raw.count(b"\xff\xd8") == 1  # the EXIF thumbnail (another picture) went with the EXIF
    copy = Image.open(io.BytesIO(raw))
    assert copy.format == "JPEG" and copy.mode == "RGB" and set(copy.info) <= JPEG_INFO
    assert [name for name, _ in copy.applist] == ["APP0"]
    assert not copy.getexif()
    # upright: the stored 600 x 400 photo turned as its EXIF says, at full size, as a browser displays it
    assert copy.size == (row.width, row.height) == (400, 600)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(original))).convert("RGB"), np.float32)
    assert np.abs(np.asarray(copy, np.float32) - shown).mean() < 3
    assert ws.store.read(row.sha256) == original  # the original is never touched


def test_a_png_with_transparency_stays_a_png_without_text_or_profile(ws):
    row = add(ws, text_png(alpha=True))
    path = rater_copy(ws, row)
    assert path.name == f"{row.sha256}.png"
    raw = path.read_bytes()
    assert_bare(raw)
    assert png_chunks(raw) == [b"IHDR"] + [b"IDAT"] * (len(png_chunks(raw)) - 2) + [b"IEND"]
    copy = Image.open(io.BytesIO(raw))
    assert copy.mode == "RGB" and copy.size == (600, 400) and not copy.text
    original = np.asarray(Image.open(io.BytesIO(text_png(alpha=True))))
    opaque = original[..., 3] == 255
    assert opaque.any() and np.array_equal(np.asarray(copy)[opaque], original[..., :3][opaque])  # lossless


def erased_png() -> bytes:
    """A photo whose top half was "erased" with a transparent brush: its colour is still in the file."""
    rgba = np.dstack([samples.astronaut()[:200, :300], np.full((200, 300), 255, np.uint8)])
    rgba[:100, :, 3] = 0
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    return buf.getvalue()


def test_colour_hidden_under_transparency_never_reaches_a_rater(ws):
    """The privacy probe's case: a face made transparent, not painted over, kept its pixels in the PNG Label
    Studio served, one channel away from every rater. The copy is flattened onto white, as the export and the
    model see it; a copy written before (with its alpha) is written again before the next push or adjudication,
    whichever round it was made for."""
    row = add(ws, erased_png())
    hidden = np.asarray(Image.open(io.BytesIO(erased_png())))[:100, :, :3]
    assert hidden.std() > 20  # the guard: the erased half does hold a picture
    path = rater_copy(ws, row)
    copy = np.asarray(Image.open(path))
    assert copy.shape == (200, 300, 3) and (copy[:100] == 255).all()
    assert np.array_equal(copy[100:], samples.astronaut()[100:200, :300])

    path.chmod(0o600)
    path.write_bytes(erased_png())  # as the copy was written before, for a round pushed then
    ws.store.path_for(row.sha256).chmod(0o600)
    ws.store.path_for(row.sha256).unlink()  # from its own pixels: even an original gone does not stop a push
    orphan = path.with_name("0" * 64 + ".png")  # and one of an image the catalogue no longer knows
    orphan.write_bytes(erased_png())
    assert replace_old_copies(ws) == 2  # every round's copies, before a push or an adjudication
    for again in map(Image.open, (path, orphan)):
        assert again.mode == "RGB" and (np.asarray(again)[:100] == 255).all()
    assert replace_old_copies(ws) == 0


def test_a_webp_photo_is_served_as_a_jpeg(ws):
    buf = io.BytesIO()
    Image.fromarray(samples.coffee()).save(buf, "WEBP", quality=90, exif=camera_exif(8, b""), icc_profile=icc_profile())
    row = add(ws, buf.getvalue())
    path = rater_copy(ws, row)
    assert path.suffix == ".jpg"
    raw = path.read_bytes()
    assert_bare(raw)
    assert Image.open(io.BytesIO(raw)).size == (400, 600)  # orientation 8 applied


def test_the_copy_is_written_once(ws):
    row = add(ws, camera_jpeg())
    image_link(ws, row)
    path = rater_copy(ws, row)
    before = path.stat()
    for _ in range(2):  # the second push, the adjudication round linking it again
        image_link(ws, row)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file beside it


def test_a_failed_copy_leaves_nothing_to_serve(ws):
    """An original that cannot be decoded raises; no half-written file is left where Label Studio looks."""
    good = camera_jpeg()
    row = add(ws, good)
    broken = good[: len(good) // 2]
    sha, _ = ws.store.put(broken)
    with ws.session() as s:
        bad = ImageRow(sha256=sha, size_bytes=len(broken), format="JPEG", width=400, height=600, mode="RGB")
        s.add(bad)
        s.flush()
        s.refresh(bad)
        s.expunge(bad)
    with pytest.raises(OSError):
        image_link(ws, bad)
    files = ws.root / "studio" / "files"
    assert not list(files.rglob(f"{sha}*"))
    image_link(ws, row)
    assert [p.name for p in files.rglob("*") if p.is_file()] == [f"{row.sha256}.jpg"]


@pytest.mark.parametrize("many", [False, True])
def test_a_damaged_original_that_still_decodes_is_never_served(ws, many):
    """An original whose bytes became another photo's (a wrong file restored from a backup) decodes fine; its
    copy is refused with the fix, in this process and in the push's workers, so no clinician labels the other
    photo under this one's task."""
    rows = [add(ws, camera_jpeg()), add(ws, _other_photo())]
    damaged = ws.store.path_for(rows[0].sha256)
    damaged.chmod(0o600)
    damaged.write_bytes(ws.store.path_for(rows[1].sha256).read_bytes())
    with pytest.raises(StoreError, match=rf"^image {rows[0].id}: .*is damaged .*SHA-256.*curate ingest"):
        if many:
            rater_copies(ws, [rows[0].id] * 9 + [rows[1].id])  # from 9 copies up, in worker processes
        else:
            rater_copy(ws, rows[0])
    assert not list((ws.root / "studio" / "files").rglob(f"{rows[0].sha256}*"))


def _other_photo() -> bytes:
    out = io.BytesIO()
    Image.fromarray(samples.coffee()).save(out, "JPEG", quality=90)
    return out.getvalue()


def test_a_push_makes_its_copies_in_worker_processes_with_progress(ws):
    """Before a push imports its tasks, every missing copy is made (a pool of workers from 9 photos up), each
    bare and owner-only, progress counted to the last; what exists already is not made again."""
    rows = []
    for k in range(12):
        buf = io.BytesIO(camera_jpeg())  # 12 different photos, each with the full set of metadata
        img = Image.open(buf)
        img = Image.fromarray(np.roll(np.asarray(ImageOps.exif_transpose(img)), 7 * k, axis=1))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=90, exif=camera_exif(6, b""), comment=b"Patient 4711 DOB 1990")
        rows.append(add(ws, out.getvalue()))
    first = rater_copy(ws, rows[0])  # one made earlier, by an earlier round
    made_before = first.stat().st_mtime_ns
    seen = []
    assert rater_copies(ws, [r.id for r in rows], lambda done, total: seen.append((done, total))) == 11
    assert seen[0] == (0, 11) and seen[-1] == (11, 11)
    assert first.stat().st_mtime_ns == made_before
    for row in rows:
        path = rater_copy(ws, row)
        assert path.stat().st_mode & 0o777 == 0o600
        assert_bare(path.read_bytes())
        assert Image.open(path).size == (row.width, row.height)
    assert rater_copies(ws, [r.id for r in rows]) == 0
    assert not [p for p in (ws.root / "studio" / "files").rglob("*") if p.is_file() and p.suffix != ".jpg"]


# --- links to originals from before copies ----------------------------------------------------------------


def old_link(ws, row: ImageRow, ext: str):
    """What image_link made before raters got copies: a symlink to the original in the store."""
    link = ws.root / "studio" / "files" / row.sha256[:2] / f"{row.sha256}.{ext}"
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(ws.store.path_for(row.sha256), link.parent), link)
    return link


def test_an_old_link_to_an_original_is_replaced_by_the_copy(ws):
    original = camera_jpeg()
    row = add(ws, original)
    link = old_link(ws, row, "jpg")
    assert b"Dr Jane Example" in link.read_bytes()  # the leak being fixed
    image_link(ws, row)  # pushed again, or linked by the adjudication round
    assert link.is_file() and not link.is_symlink()
    assert_bare(link.read_bytes())
    assert ws.store.read(row.sha256) == original


def test_every_old_link_is_replaced_before_a_push(ws):
    """Tasks of earlier rounds are not imported again, so their links are swept: a JPEG's becomes the copy, a
    WebP's now points at its JPEG copy, and one whose image the catalogue no longer knows goes."""
    jpeg = add(ws, camera_jpeg())
    buf = io.BytesIO()
    Image.fromarray(samples.coffee()).save(buf, "WEBP", quality=90, exif=camera_exif(1, b""))
    webp = add(ws, buf.getvalue())
    jpeg_link, webp_link = old_link(ws, jpeg, "jpg"), old_link(ws, webp, "webp")
    sha, _ = ws.store.put(text_png())
    orphan = ws.root / "studio" / "files" / sha[:2] / f"{sha}.png"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(ws.store.path_for(sha), orphan.parent), orphan)
    assert replace_old_copies(ws) == 3
    assert jpeg_link.is_file() and not jpeg_link.is_symlink()
    assert os.readlink(webp_link) == f"{webp.sha256}.jpg"  # the old task URL is served the copy
    assert not orphan.exists() and not orphan.is_symlink()
    for path in (jpeg_link, webp_link):
        assert_bare(path.read_bytes())
    assert replace_old_copies(ws) == 0


# --- through Label Studio -------------------------------------------------------------------------------


@pytest.mark.studio
def test_label_studio_serves_the_copy(studio_server, studio_workspace):
    import httpx
    from label_studio_sdk import LabelStudio
    from studio_server import RATERS

    fx, ws = studio_server, studio_workspace
    a, b = RATERS[:2]
    row = add(ws, camera_jpeg())
    old = old_link(ws, row, "jpg")  # linked by a version from before copies, not yet pushed
    res = push(ws, fx.servers(), [a, b])
    assert res.pushed == 2
    path = rater_copy(ws, row)
    assert path == old and not old.is_symlink()
    before = path.stat()
    assert push(ws, fx.servers(), [a, b]).pushed == 0
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    for rater in (a, b):
        ls = LabelStudio(base_url=fx.urls[rater], api_key=fx.tokens[rater])
        task = next(iter(ls.tasks.list(project=res.projects[rater])))
        got = httpx.get(fx.urls[rater] + task.data["image"], headers={"Authorization": f"Token {fx.tokens[rater]}"})
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        assert_bare(got.content)
        assert got.content == path.read_bytes()
        assert Image.open(io.BytesIO(got.content)).size == (400, 600)
    with ws.session() as s:
        assert s.exec(select(ImageRow.id)).all() == [row.id]
