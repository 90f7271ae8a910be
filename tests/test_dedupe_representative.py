"""The picture a cluster sends to labelling and export is the photo, not a copy that lost its colour, had colour
drawn on it or was compressed again (`curate.dedupe.fidelity`), whatever arrived first.

Such copies have the photo's pixels, so resolution could not tell them apart and the earliest arrival won:
on `bench/dedupe.py --retouched --photos` a teaching figure's ring and arrow represented 40 of 120 clusters,
which put the ring into the training set and the plain photo out of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dedupe_corpus import dedupe_files
from photo_corpus import RETOUCHES, _load, frame, rotated_canvas, same_frame, sticker
from PIL import Image
from skimage import data
from sqlmodel import select

from curate.dedupe.fidelity import COLOURED, GREY, TINT_FAR, measure, tint
from curate.workspace import Workspace
from db.models import DedupeCode, DedupeMember, Provenance


def _members(tmp_path: Path, files: dict) -> tuple[dict, dict, dict]:
    """Ingest `files` in name order (so ids follow names), dedupe (`dedupe_files`); (cluster by name,
    representative by cluster, (colour, drawn, turned) by name)."""
    cluster, _, _ = dedupe_files(tmp_path, files)
    with Workspace.open(tmp_path / "ws").session() as s:
        name = {i: Path(loc).name for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all()}
        reps = {
            m.cluster_key: name[m.image_id] for m in s.exec(select(DedupeMember).where(DedupeMember.representative))
        }
        measured = {name[c.image_id]: (c.colour, c.drawn, c.turned) for c in s.exec(select(DedupeCode)).all()}
    return cluster, reps, measured


def test_the_photo_represents_its_grey_ringed_stickered_and_recompressed_copies_that_arrived_first(tmp_path):
    photo, grey_photo = _load("astronaut"), _load("camera")
    rng = np.random.default_rng(7)
    files = {
        "a_grey_print.jpg": photo.convert("L").convert("RGB"),
        "b_ring_and_arrow.jpg": RETOUCHES["annotated"](photo, rng),
        "c_sticker.jpg": sticker(photo, rng),
        "c_heavy_jpeg.jpg": RETOUCHES["heavy_jpeg"](photo, rng),
        "d_sticker_on_grey.jpg": sticker(grey_photo, rng),
        "y_grey_photo.jpg": grey_photo,
        "z_photo.jpg": photo,
    }
    cluster, reps, measured = _members(tmp_path, files)
    copies = ("a_grey_print.jpg", "b_ring_and_arrow.jpg", "c_sticker.jpg", "c_heavy_jpeg.jpg")
    assert {cluster[n] for n in copies} == {cluster["z_photo.jpg"]}, "the copies must join their photo"
    assert reps[cluster["z_photo.jpg"]] == "z_photo.jpg"
    # a grey photo is not "a grey copy" of its stickered copy: the sticker's colour is drawn on
    assert cluster["d_sticker_on_grey.jpg"] == cluster["y_grey_photo.jpg"]
    assert reps[cluster["y_grey_photo.jpg"]] == "y_grey_photo.jpg"
    # what the rule read, measured on the stored originals
    assert measured["a_grey_print.jpg"][0] < GREY <= COLOURED <= measured["z_photo.jpg"][0]
    assert measured["y_grey_photo.jpg"][0] < GREY
    for marked in ("b_ring_and_arrow.jpg", "c_sticker.jpg", "d_sticker_on_grey.jpg"):
        assert measured[marked][1] > 10 * max(measured["z_photo.jpg"][1], 1e-4), marked


def test_the_photo_represents_its_copies_enlarged_into_a_frame_that_arrived_first(tmp_path):
    """A site fitting photos into one frame enlarges a small photo to fill it: the framed copy has more pixels
    inside its content box, and it won on them, so export wrote the frame into the training set. A framed copy
    with over four times the photo's pixels (a journal's large figure beside a thumbnail) still represents."""
    photo = _load("coffee").resize((200, 133))
    files = {
        "a_fitted_into_a_frame.jpg": same_frame(photo, width=30, canvas=(400, 300)),  # 2.6 times the pixels
        "b_framed_and_enlarged.jpg": frame(photo.resize((280, 186)), "grey", 0.08),
        "z_photo.jpg": photo,
        "c_large_figure.jpg": frame(_load("chelsea").resize((900, 675)), "white", 0.06),
        "y_thumbnail.jpg": _load("chelsea").resize((210, 158)),
    }
    cluster, reps, _ = _members(tmp_path, files)
    assert cluster["a_fitted_into_a_frame.jpg"] == cluster["b_framed_and_enlarged.jpg"] == cluster["z_photo.jpg"]
    assert reps[cluster["z_photo.jpg"]] == "z_photo.jpg"
    assert cluster["c_large_figure.jpg"] == cluster["y_thumbnail.jpg"]
    assert reps[cluster["y_thumbnail.jpg"]] == "c_large_figure.jpg"


def test_the_photo_represents_its_copy_turned_on_a_larger_canvas_that_arrived_first(tmp_path):
    """A dataset's augmented copy turned by 20-40 degrees on a canvas that holds it all has more pixels than its
    photo, most of the difference the canvas's fill: it represented 9 of v6's clusters, and export wrote the fill's
    corners into the training set. Its share of the canvas is measured when it is hashed (here its content box, cut
    only at the corners' tips, is 96 % of the canvas: no frame by that alone)."""
    photo = _load("astronaut").resize((300, 300))
    files = {"a_turned_on_a_canvas.jpg": rotated_canvas(photo, np.random.default_rng(6)), "z_photo.jpg": photo}
    cluster, reps, measured = _members(tmp_path, files)
    assert cluster["a_turned_on_a_canvas.jpg"] == cluster["z_photo.jpg"]
    assert reps[cluster["z_photo.jpg"]] == "z_photo.jpg"
    assert measured["a_turned_on_a_canvas.jpg"][2] < 0.8 and measured["z_photo.jpg"][2] == 1.0


def test_the_photo_represents_its_enlarged_crop_that_arrived_first(tmp_path):
    """A site serving a bigger picture than it had enlarges the photo and crops it: the copy has more pixels, so it
    represented 40 of 120 clusters of `bench/dedupe.py --retouched --photos` (skin photos), and what its crop cut away
    was never labelled nor exported. The photo shows all the crop shows, and the crop under 93 % of the photo: the
    photo represents. A crop with over four times the photo's pixels (a thumbnail's photo) still represents."""
    photo = _load("astronaut").resize((320, 320))
    big = photo.resize((640, 640), Image.BICUBIC)
    thumb = _load("coffee").resize((150, 100))
    files = {
        "a_enlarged_crop.jpg": big.crop((40, 56, 600, 610)),  # 88 % of each side, three times the pixels
        "z_photo.jpg": photo,
        "b_large_crop.jpg": _load("coffee").crop((30, 20, 580, 390)),  # 14 times the thumbnail's pixels
        "y_thumbnail.jpg": thumb,
    }
    cluster, reps, _ = _members(tmp_path, files)
    assert cluster["a_enlarged_crop.jpg"] == cluster["z_photo.jpg"]
    assert reps[cluster["z_photo.jpg"]] == "z_photo.jpg"
    assert cluster["b_large_crop.jpg"] == cluster["y_thumbnail.jpg"]
    assert reps[cluster["y_thumbnail.jpg"]] == "b_large_crop.jpg"


@pytest.mark.parametrize("sky", ["above", "above and below"])
def test_the_clinics_original_represents_its_recompressed_web_copy_whose_box_was_not_cut(tmp_path, sky):
    """The camera photo's plain sky is cut from its content box as a band (12.5 % of it); its blocky quality-25 web
    copy's is not, so the copy had more pixels in its box and represented: the clinic's photo was never labelled.
    Copies of one shape are one framing (`cluster._as_framed_as_their_shape`); with the sky below too, the box is
    cut on two opposite sides, as a frame's is, and that photo was left out of the first fix."""
    from curate.dedupe.run import DedupeOptions, run_dedupe
    from curate.intake.ingest import IngestOptions, ingest_folder

    pixels = data.camera()
    if sky == "above and below":
        pixels = np.vstack([pixels, pixels[:64][::-1]])
    photo = Image.fromarray(pixels)
    (tmp_path / "clinic").mkdir()
    (tmp_path / "web").mkdir()
    photo.save(tmp_path / "clinic" / "a.jpg", quality=95)
    photo.save(tmp_path / "web" / "a_again.jpg", quality=25)
    ws = Workspace.init(tmp_path / "ws")
    ingest_folder(ws, tmp_path / "clinic", IngestOptions(source="clinic", kind="clinic", workers=1))
    ingest_folder(ws, tmp_path / "web", IngestOptions(source="web", kind="web", workers=1))
    run_dedupe(ws, DedupeOptions(min_side=1, workers=1))
    with ws.session() as s:
        codes = {c.image_id: c.box for c in s.exec(select(DedupeCode)).all()}
        members = s.exec(select(DedupeMember)).all()
    assert codes[1] != codes[2], "the boxes must differ for this test to mean anything"
    assert len({m.cluster_key for m in members}) == 1
    assert [m.image_id for m in members if m.representative] == [1]


def test_the_photo_represents_its_colour_cast_and_filtered_copies_that_arrived_first(tmp_path):
    """A camera's warm cast and a phone app's filter have the photo's pixels and keep its texture; with a third
    copy whose colours agree with the photo's (here a sharpened one), they are told apart by their mean chroma.
    Before, the earliest arrival represented: a cast 35 times and a filter 13 of the skin benchmark's 120."""
    photo, rng = _load("immunohistochemistry"), np.random.default_rng(5)  # neither copy has a drawing's colours
    files = {
        "a_colour_cast.jpg": RETOUCHES["colour_cast"](photo, rng),
        "b_app_filter.jpg": RETOUCHES["app_filter"](photo, rng),
        "c_sharpened.jpg": RETOUCHES["sharpened"](photo, rng),
        "z_photo.jpg": photo,
    }
    cluster, reps, _ = _members(tmp_path, files)
    assert len({cluster[n] for n in files}) == 1, "the copies must join their photo"
    assert reps[cluster["z_photo.jpg"]] in ("z_photo.jpg", "c_sharpened.jpg")  # the two whose colours agree


def test_measures_of_one_picture():
    """Grey pixels have no colour left and nothing drawn; a solid yellow disc is drawn colour; a photo of
    plain skin tones keeps colour its brightness does not explain."""
    grey = np.asarray(_load("camera").convert("RGB"))
    assert measure(grey) == (0.0, 0.0)
    photo = np.asarray(_load("astronaut").convert("RGB"))
    colour, drawn = measure(photo)
    assert colour >= COLOURED and drawn < 0.001
    disc = np.asarray(sticker(_load("astronaut"), np.random.default_rng(1)).convert("RGB"))
    assert measure(disc)[1] > 0.015  # a sixth of each side: about 2 % of the picture
    assert measure(np.zeros((0, 5, 3), np.uint8)) == (0.0, 0.0)
    assert tint(grey) == (0.0, 0.0) and tint(np.zeros((0, 5, 3), np.uint8)) == (0.0, 0.0)
    cast = np.asarray(RETOUCHES["colour_cast"](_load("astronaut"), np.random.default_rng(1)).convert("RGB"))
    (cr, cb), (cr2, cb2) = tint(photo), tint(cast)
    assert cr2 > cr and cb2 < cb and np.hypot(cr2 - cr, cb2 - cb) > TINT_FAR  # warmer: more red, less blue


def _ingest_and_dedupe(tmp_path: Path, folders: dict[str, str]) -> tuple[dict[str, tuple[str, bool]], dict, str]:
    """Ingest each folder of `tmp_path` (name -> intake kind) in that order and dedupe: (file name -> (cluster
    key, representative), file name -> the review sheet's entry for it, the sheet's HTML)."""
    from curate.dedupe.review import write_sheet
    from curate.dedupe.run import DedupeOptions, run_dedupe
    from curate.intake.ingest import IngestOptions, ingest_folder

    ws = Workspace.init(tmp_path / "ws")
    for folder, kind in folders.items():
        ingest_folder(ws, tmp_path / folder, IngestOptions(source=folder, kind=kind, workers=1))
    run_dedupe(ws, DedupeOptions(min_side=1, workers=1))
    sheet, items = write_sheet(ws)
    with ws.session() as s:
        name = {i: Path(loc).name for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all()}
        members = {name[m.image_id]: (m.cluster_key, m.representative) for m in s.exec(select(DedupeMember)).all()}
    entries = {name[e["image"]]: e for c in items["clusters"] for e in c["members"]}
    return members, entries, sheet.read_text(encoding="utf-8")


def test_the_photo_represents_its_copy_saved_at_quality_10_that_arrived_first(tmp_path):
    """A JPEG saved at quality 10 has its PNG photo's pixels and arrived first, and the bytes rule compares files of
    one format only: the blocky copy represented (`bench/unseen_edits.py`: 3 of 7 clusters). Its quality is read
    off its quantization tables. A clinic's photo saved at 30 still represents its web copy re-saved at 95: the
    web's copy holds no more than the clinic's file it was made from."""
    web, clinic = tmp_path / "web", tmp_path / "clinic"
    web.mkdir(), clinic.mkdir()
    photo, other = _load("coffee"), _load("chelsea")
    photo.save(web / "a_blocky.jpg", quality=10)
    photo.save(web / "b_photo.png")
    other.save(clinic / "c_clinic.jpg", quality=30)
    other.save(web / "c_clinic_again.jpg", quality=95)
    members, entries, sheet = _ingest_and_dedupe(tmp_path, {"web": "web", "clinic": "clinic"})
    assert members["a_blocky.jpg"][0] == members["b_photo.png"][0], "the copy must join its photo"
    assert members["b_photo.png"][1] and not members["a_blocky.jpg"][1]
    # the sheet says what the rule read, so a steward can see why (and `curate dedupe keep` otherwise)
    assert (entries["a_blocky.jpg"]["quality"], entries["b_photo.png"]["quality"]) == (10, 100)
    assert (entries["c_clinic.jpg"]["quality"], entries["c_clinic_again.jpg"]["quality"]) == (30, 95)
    assert "JPEG at quality 10<br>" in sheet and "PNG<br>" in sheet
    assert members["c_clinic.jpg"][0] == members["c_clinic_again.jpg"][0]
    assert members["c_clinic.jpg"][1] and not members["c_clinic_again.jpg"][1]


def test_the_quality_a_file_was_saved_at():
    """Read off a JPEG's luminance table as libjpeg scales it; a PNG is lossless; a WebP's quality is unknown."""
    from io import BytesIO

    from curate.dedupe.fidelity import quality
    from curate.imaging import open_upright

    photo = _load("astronaut").resize((128, 128))

    def saved(fmt: str, **kw) -> int | None:
        buf = BytesIO()
        photo.save(buf, fmt, **kw)
        up = open_upright(buf.getvalue(), 64)
        assert up.format == fmt
        return quality(up.format, up.tables)

    assert [saved("JPEG", quality=q) for q in (5, 10, 30, 50, 75, 90, 100)] == [5, 10, 30, 50, 75, 90, 100]
    assert saved("PNG") == 100
    assert saved("MPO", quality=30, save_all=True, append_images=[photo]) == 30  # a phone's JPEG, two pictures
    assert saved("WEBP", quality=10) is None
    assert 40 <= saved("JPEG", qtables="web_low") <= 60  # Photoshop's "save for web" tables: near libjpeg's 50
    # libjpeg's cjpeg writes 16-bit tables under quality 25 (no cap at 255): quality 10's, as it scales them
    base = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17]
    base += [22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64]
    base += [78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
    assert quality("JPEG", (tuple((v * 500 + 50) // 100 for v in base),)) == 10


def test_a_lossless_screenshot_with_a_caption_does_not_pass_its_poorly_saved_photo_over():
    """A PNG counts as saved at 100, but a screenshot of the photo with a caption below is not the photo: only
    members that are their picture are what a poor JPEG is measured against (as the bytes rule's)."""
    from datetime import datetime, timedelta

    from curate.dedupe.cluster import Candidate, representative

    t0 = datetime(2026, 1, 1)
    photo = Candidate(1, 800, 600, 2, t0, format="JPEG", size_bytes=40_000, quality=40)
    shot = Candidate(2, 800, 700, 2, t0 + timedelta(1), content=600 / 700, format="PNG", quality=100)
    assert representative([photo, shot]).image_id == 1
    whole = Candidate(3, 800, 600, 2, t0 + timedelta(2), format="PNG", size_bytes=900_000, quality=100)
    assert representative([photo, shot, whole]).image_id == 3
