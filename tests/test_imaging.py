"""The one reader of stored originals (curate/imaging.py): which way is up, and how small a JPEG decodes."""

import base64
import io

import images as I
import numpy as np
import pytest
from PIL import Image, ImageOps

from curate.imaging import exif_orientation, open_upright, thumbnail, to_rgb


def test_every_orientation_turns_upright_like_pillow():
    for orientation in range(1, 9):
        data = I.exif_jpeg(3, orientation=orientation, size=(160, 120))
        ours = open_upright(data).image
        theirs = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
        assert ours.size == theirs.size
        assert np.array_equal(np.asarray(ours), np.asarray(theirs)), orientation


def test_jpeg_decodes_at_reduced_scale_keeping_at_least_the_asked_side():
    data = I.exif_jpeg(4, orientation=6, size=(1600, 1200))
    up = open_upright(data, 200)
    assert up.format == "JPEG" and up.reduction == 4
    assert up.image.size == (300, 400)  # upright: the stored 1600x1200 stands on its side
    png = I.encode(I.photo(4, (400, 300)), "PNG")
    assert open_upright(png, 50).reduction == 1 and open_upright(png, 50).image.size == (400, 300)


def test_orientation_absent_or_out_of_range_is_none():
    assert exif_orientation(Image.open(io.BytesIO(I.jpeg(1)))) is None
    assert exif_orientation(Image.open(io.BytesIO(I.exif_jpeg(1, orientation=6)))) == 6
    assert exif_orientation(Image.open(io.BytesIO(I.exif_jpeg(1, orientation=9)))) is None


def test_thumbnail_is_small_upright_and_carries_no_exif():
    data = I.exif_jpeg(5, orientation=8, size=(640, 480))
    thumb = Image.open(io.BytesIO(base64.b64decode(thumbnail(data, 100))))
    assert thumb.size == (75, 100)
    assert not thumb.getexif()


def test_thumbnails_and_overlays_carry_no_comment_profile_or_text():
    """A page's thumbnail holds the pixels alone: Pillow would write the original's JPEG comment, a PNG's text
    chunk or a GIF's comment, and its ICC profile's free-text description, back out."""
    from PIL import PngImagePlugin
    from test_export_fixtures import jpeg_with_metadata

    from curate.imaging import pixels_only

    photo = I.photo(6, (320, 240))
    text = PngImagePlugin.PngInfo()
    text.add_text("comment", "John Smith DOB 1990")
    png, gif = io.BytesIO(), io.BytesIO()
    photo.save(png, "PNG", pnginfo=text)
    photo.convert("P").save(gif, "GIF", comment=b"John Smith DOB 1990")
    for data in (jpeg_with_metadata(photo, patient="John Smith"), png.getvalue(), gif.getvalue()):
        raw = base64.b64decode(thumbnail(data, 100))
        assert b"Smith" not in raw and b"Exif" not in raw and b"ICC_PROFILE" not in raw and b"xap" not in raw
        assert set(Image.open(io.BytesIO(raw)).info) <= {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi"}
    kept = Image.open(io.BytesIO(jpeg_with_metadata(photo, patient="John Smith")))
    assert kept.info.get("comment") and not pixels_only(kept).info  # what a writer would otherwise carry over


def test_a_band_along_one_side_is_told_from_a_spread_or_a_middle_strip():
    """`in_band`, dedupe's and the leakage audit's one rule for a site's banner: agreeing points along the
    foot (a stray one above does not count) are a band; spread over the picture, or across its middle, not."""
    import numpy as np

    from curate.imaging import in_band

    rng = np.random.default_rng(0)
    foot = np.column_stack([rng.uniform(10, 390, 40), rng.uniform(330, 380, 40)])
    assert in_band(foot, 400, 400)
    assert in_band(np.vstack([foot, [[200, 40], [100, 90]]]), 400, 400)  # two strays above
    assert in_band(foot[:, ::-1], 400, 400)  # along a side, turned
    assert not in_band(rng.uniform(0, 400, (40, 2)), 400, 400)
    middle = np.column_stack([rng.uniform(10, 390, 40), rng.uniform(180, 230, 40)])
    assert not in_band(middle, 400, 400)
    assert not in_band(foot[:2], 400, 400)  # too few to tell


def test_a_16_bit_grey_photo_keeps_its_levels(tmp_path):
    """Pillow's own conversion clips a 16-bit grey PNG to white: dedupe called the photo "single colour",
    and the review sheet showed a blank square. Now its levels are scaled to 8 bits wherever it is read,
    and it is the same picture as its 8-bit copy."""
    data = I.png16(5)
    grey = np.asarray(open_upright(data).image.convert("L"), np.int16)
    eight = np.asarray(I.photo(5).convert("L"), np.int16)
    assert np.abs(grey - eight).max() <= 1
    shown = Image.open(io.BytesIO(base64.b64decode(thumbnail(data)))).convert("L")
    assert np.asarray(shown).std() > 10  # not a blank square

    from dedupe_corpus import save

    from curate.dedupe.run import DedupeOptions, run_dedupe
    from curate.intake.ingest import IngestOptions, ingest_folder
    from curate.workspace import Workspace

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "scope.png").write_bytes(data)
    save(I.photo(5).convert("L"), folder / "copy.jpg", quality=85)
    ws = Workspace.init(tmp_path / "ws")
    ingest_folder(ws, folder, IngestOptions(source="atlas", kind="public", workers=1))
    report = run_dedupe(ws, DedupeOptions(min_side=1, workers=1))
    assert not report.skipped
    assert report.clusters == 1 and report.duplicates == 1


@pytest.mark.parametrize("top", [1.0, 255.0, 65535.0])
def test_a_float_grey_tiff_keeps_its_levels(tmp_path, top):
    """A 32-bit float TIFF (a scope's or an analysis tool's export) with levels 0-1 was rounded to black and
    white by Pillow: "single colour" to dedupe, a black image in the export. Its levels are scaled from the
    range they use (0-1, 0-255 or 16-bit) wherever it is read, so it is the same picture as its 8-bit copy."""
    eight = np.asarray(I.photo(5).convert("L"), np.float32)
    buf = io.BytesIO()
    Image.fromarray(eight * (top / 255.0), "F").save(buf, "TIFF")
    picture = open_upright(buf.getvalue()).image
    assert np.abs(np.asarray(picture.convert("L"), np.float32) - eight).max() <= 1
    exported = to_rgb(Image.fromarray(eight * (top / 255.0), "F"))  # as the export writes it
    assert np.abs(np.asarray(exported.convert("L"), np.float32) - eight).max() <= 1


@pytest.mark.parametrize("factor", [1, 257])
def test_a_32_bit_integer_grey_tiff_keeps_its_levels(factor):
    """A grey photo saved as a 32-bit integer TIFF (Pillow's mode "I") with 8-bit levels was divided by 256 as
    if 16-bit: black, "single colour" to dedupe and in the export. Its levels are scaled from the range used."""
    eight = np.asarray(I.photo(5).convert("L"), np.int32)
    buf = io.BytesIO()
    Image.fromarray(eight * factor, "I").save(buf, "TIFF")
    picture = open_upright(buf.getvalue()).image
    assert Image.open(io.BytesIO(buf.getvalue())).mode == "I"
    assert np.abs(np.asarray(picture.convert("L"), np.int32) - eight).max() <= 1


def test_dark_pictures_whose_lit_parts_hardly_meet_are_compared_where_either_is_lit():
    """Two nearly black pictures in place on each other (a star field, a fundus rim): their lit parts barely
    overlap, so near-black left out in either leaves almost nothing; where either is lit they are unlike.
    A black bar on a copy is still left out, and a picture with almost nothing lit is "too little"."""
    from curate.imaging import STAMP_NCC, laid_correlation

    rng = np.random.default_rng(0)
    still = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    stars, rim = np.full((120, 160), 4, np.uint8), np.full((120, 160), 4, np.uint8)
    for y, x in rng.integers(0, (120, 160), (300, 2)):
        stars[max(0, y - 2) : y + 2, max(0, x - 2) : x + 2] = rng.integers(60, 250)
    rim[80:, :60] = np.linspace(90, 200, 60, dtype=np.uint8)  # a lit corner on black
    assert (stars > 16).mean() > 0.1 and ((stars > 16) & (rim > 16)).mean() < 0.1
    unlike = laid_correlation(stars, rim, still)
    assert unlike is not None and unlike < STAMP_NCC
    barred = stars.copy()
    barred[:, :40] = 0  # a copy with a black bar: the bar is left out, the rest is the photo
    assert laid_correlation(barred, stars, still) > 0.95
    speck = np.full((120, 160), 4, np.uint8)
    speck[:5, :5] = 200
    assert laid_correlation(speck, speck, still) is None
