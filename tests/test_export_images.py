"""Image normalisation: orientation, size policies, metadata stripped, ROI crops, reduced-size decoding."""

import io

import numpy as np
import pytest
from PIL import Image
from test_export_fixtures import jpeg_markers, jpeg_with_metadata, pattern

from curate.export.images import ImageSpec, prepare, roi_region, union_box

ALLOWED_MARKERS = {0xE0, 0xDB, 0xC0, 0xC4, 0xDA}  # APP0 (JFIF), quant tables, baseline frame, Huffman, start of scan


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def _mad(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b.convert("RGB"), dtype=np.int16)).mean())


def test_metadata_stripped_and_orientation_applied(tmp_path):
    src = pattern(160, 100, seed=1)  # displayed landscape, marker top-left
    path = tmp_path / "P0007_face.jpg"
    path.write_bytes(jpeg_with_metadata(src.transpose(Image.Transpose.ROTATE_90), orientation=6, patient="P0007"))
    raw = _open(path.read_bytes())
    assert raw.getexif() and raw.info.get("icc_profile") and b"P0007" in path.read_bytes()
    main, roi = prepare(str(path), ImageSpec(size=(80, 50)), None, expected=(160, 100))
    assert roi is None
    out = _open(main)
    assert out.format == "JPEG" and out.mode == "RGB" and out.size == (80, 50)
    assert set(jpeg_markers(main)) <= ALLOWED_MARKERS
    assert not out.getexif() and "icc_profile" not in out.info and "exif" not in out.info and "xmp" not in out.info
    assert b"P0007" not in main and b"ClinicCam" not in main
    # Orientation applied: the marker corner is top-left, like the displayed original.
    assert _mad(out, src.resize((80, 50), Image.Resampling.BICUBIC)) < 12


@pytest.mark.parametrize("policy", ["stretch", "pad", "center-crop"])
def test_resize_policies_give_exact_size(tmp_path, policy):
    path = tmp_path / "a.png"
    img = pattern(200, 100, seed=2).convert("RGBA")
    img.putalpha(128)
    img.save(path)
    main, _ = prepare(str(path), ImageSpec(size=(64, 64), policy=policy), None)
    out = _open(main)
    assert out.size == (64, 64) and out.mode == "RGB"
    top_row = np.asarray(out)[:4].mean()
    if policy == "pad":
        assert top_row < 10  # black letterbox bars above and below the landscape photo
    else:
        assert top_row > 40


def test_deterministic_bytes(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_with_metadata(pattern(120, 90, 3)))
    spec = ImageSpec(size=(64, 64))
    assert prepare(str(path), spec, (10, 10, 60, 50)) == prepare(str(path), spec, (10, 10, 60, 50))


def test_roi_crop_matches_region_with_reduced_size_decoding(tmp_path):
    # A camera-sized, EXIF-rotated JPEG: draft() decodes at reduced scale; the crop must still be the box.
    full = pattern(2400, 1600, seed=4)
    path = tmp_path / "cam.jpg"
    path.write_bytes(jpeg_with_metadata(full.transpose(Image.Transpose.ROTATE_270), orientation=8))
    box = union_box([[600, 400, 900, 700], [850, 650, 1000, 800]])
    assert box == (600, 400, 1000, 800)
    region = roi_region(box, 0.1, 2400, 1600)
    assert region == (560, 360, 1040, 840)
    spec = ImageSpec(size=(96, 96))
    main, roi = prepare(str(path), spec, region, expected=(2400, 1600))
    expected = full.crop(region).resize((96, 96), Image.Resampling.BICUBIC)
    assert _mad(_open(roi), expected) < 6
    shifted = full.crop((760, 560, 1240, 1040)).resize((96, 96), Image.Resampling.BICUBIC)
    assert _mad(_open(roi), shifted) > 2 * _mad(_open(roi), expected)
    assert _mad(_open(main), full.resize((96, 96), Image.Resampling.BICUBIC)) < 6


def test_roi_region_clips_and_rejects_degenerate():
    assert roi_region((0, 0, 10, 10), 0.5, 12, 12) == (0, 0, 12, 12)
    assert union_box([[5, 5, 5, 9]]) is None and union_box([]) is None


def test_size_mismatch_with_catalogue_is_an_error(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_with_metadata(pattern(120, 90, 5)))
    with pytest.raises(ValueError, match="differs from the catalogue"):
        prepare(str(path), ImageSpec(size=(32, 32)), None, expected=(90, 120))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("policy", ["stretch", "pad", "center-crop"])
def test_every_exif_orientation_matches_orient_first(tmp_path, orientation, policy):
    """Working in stored orientation must give what orienting first would: whole image and ROI."""
    from PIL import ImageOps

    from curate.export.images import fit

    shown = pattern(240, 150, seed=orientation)  # what the clinician saw
    # Store it so that applying `orientation` displays `shown` (the inverse of exif_transpose's op).
    inverse = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }
    stored = shown.transpose(inverse[orientation]) if orientation in inverse else shown
    path = tmp_path / "o.jpg"
    path.write_bytes(jpeg_with_metadata(stored, orientation=orientation))
    with Image.open(path) as im:
        assert ImageOps.exif_transpose(im).size == (240, 150)
    region = (30, 20, 130, 90)
    spec = ImageSpec(size=(48, 40), policy=policy)
    main, roi = prepare(str(path), spec, region, expected=(240, 150))
    tol = 8 if policy == "pad" else 6  # JPEG ringing at the black bars moves with the flip
    assert _mad(_open(main), fit(shown, (48, 40), policy)) < tol
    assert _mad(_open(main), fit(shown.transpose(Image.Transpose.ROTATE_180), (48, 40), policy)) > 2 * tol
    assert _mad(_open(roi), fit(shown.crop(region), (48, 40), policy)) < tol
    assert _mad(_open(roi), fit(shown.crop((110, 60, 210, 130)), (48, 40), policy)) > 15


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_tiff_with_an_orientation_tag_is_exported_upright_once(tmp_path, orientation):
    """Pillow gives a TIFF upright itself (its size upright once opened, the tag dropped as it loads), and the
    export turned it again: a TIFF tagged 180° was exported upside down, one tagged 90° refused ("oriented size
    150x240 differs from the catalogue's 240x150") and stopped the whole version. The catalogue's size is intake's."""
    from curate.export.images import fit
    from curate.imaging import open_upright
    from curate.intake.decode import inspect

    shown = pattern(240, 150, seed=orientation)
    turn = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    shown.transpose(turn).save(out, "TIFF", exif=exif)
    data = out.getvalue()
    info = inspect(data)
    assert (info.width, info.height) == (240, 150)
    region = (30, 20, 130, 90)
    main, roi = prepare(data, ImageSpec(size=(48, 40)), region, expected=(info.width, info.height))
    assert _mad(_open(main), fit(shown, (48, 40), "stretch")) < 6
    assert _mad(_open(roi), fit(shown.crop(region), (48, 40), "stretch")) < 6
    assert _mad(open_upright(data).image, shown) < 1  # what raters, the review sheet and dedupe are shown


def test_a_wide_gamut_photo_keeps_its_colours_in_the_export_and_the_raters_copy():
    """Every copy drops the original's ICC profile, and before that dropped its colours too: a lesion's red
    (sRGB 220, 40, 60) in an Adobe RGB photo was exported, and shown to raters, as (189, 44, 62). A profile
    LittleCMS cannot read leaves the pixels as stored."""
    import base64

    import images as I
    from PIL import ImageCms

    from curate.imaging import open_upright, thumbnail
    from curate.label.rounds import rater_pixels

    icc = I.wide_gamut_icc()
    red = Image.new("RGB", (64, 48), (220, 40, 60))
    wide = ImageCms.profileToProfile(red, ImageCms.createProfile("sRGB"), ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    assert wide.getpixel((0, 0)) == (189, 44, 62)  # what the file holds, and what a copy without its profile means
    for fmt in ("JPEG", "PNG"):
        out = io.BytesIO()
        wide.save(out, fmt, icc_profile=icc, quality=95)
        main, _ = prepare(out.getvalue(), ImageSpec(size=(32, 24)), None)
        exported = _open(main)
        assert np.abs(np.asarray(exported, np.int16)[12, 16] - (220, 40, 60)).max() <= 3, fmt
        assert "icc_profile" not in exported.info
        copy = Image.open(io.BytesIO(rater_pixels(out.getvalue(), fmt)))
        assert np.abs(np.asarray(copy, np.int16)[24, 32] - (220, 40, 60)).max() <= 3 and "icc_profile" not in copy.info
        page = Image.open(io.BytesIO(base64.b64decode(thumbnail(out.getvalue(), 32))))  # the review sheet's
        assert np.abs(np.asarray(page, np.int16)[12, 16] - (220, 40, 60)).max() <= 4
        assert abs(open_upright(out.getvalue()).image.getpixel((9, 9))[0] - 189) <= 3  # dedupe compares as stored
    damaged = io.BytesIO()
    wide.save(damaged, "PNG", icc_profile=b"not a profile" * 20)
    main, _ = prepare(damaged.getvalue(), ImageSpec(size=(32, 24)), None)
    assert np.abs(np.asarray(_open(main), np.int16)[12, 16] - (189, 44, 62)).max() <= 2
