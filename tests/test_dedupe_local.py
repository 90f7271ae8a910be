"""The second proposal (shared local features) and what verification learnt with it, on real photo
bytes: a mirror image's features come from the picture's own, copies whose low frequencies a
watermark + crop or a frame + rescale changed are proposed, and a copy of a smooth photo whose
content box cut into the plain background is still the same photo."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from dedupe_corpus import save, variant
from photo_corpus import COLOUR_PHOTOS, GREY_PHOTOS, TILED, leak, originals, tiles
from PIL import Image
from sqlmodel import select

from curate.dedupe import local, verify
from curate.dedupe.content import content_box
from curate.dedupe.run import DedupeOptions, run_dedupe
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace
from db.models import DedupeMember, Provenance

PHOTOS = originals()


def _grey(img) -> np.ndarray:
    return cv2.cvtColor(np.asarray(img.convert("RGB")), cv2.COLOR_RGB2GRAY)


def _first_tile(name: str) -> int:
    """Index in `originals()` of the first tile of a tiled photo: whole photos come first, then the
    tiles in `TILED`'s order."""
    k = len(COLOUR_PHOTOS + GREY_PHOTOS)
    for other, side in TILED.items():
        if other == name:
            return k
        k += len(tiles(other, side))
    raise KeyError(name)


def test_mirrored_features_are_opencvs_features_of_the_flipped_picture():
    """Computed from the picture's own (rows of the descriptor grid reversed, angles negated), they
    match OpenCV's features of the flipped picture keypoint for keypoint, in place."""
    for img in (PHOTOS[0], PHOTOS[3]):
        grey = cv2.resize(_grey(img), (160, 160), interpolation=cv2.INTER_AREA)
        mine = verify.mirrored(verify.features(grey, 160))
        theirs = verify.features(np.ascontiguousarray(grey[:, ::-1]), 160)
        g = verify.match(mine, lambda: None, theirs, False, both=False)
        assert g.inliers >= 0.8 * len(theirs.points), (g, len(theirs.points))  # nearly every keypoint agrees
        assert g.cover > 0.99 and g.share > 0.99, g  # on no movement at all


def _lists(monkeypatch, lists: str) -> None:
    """Search as a catalogue of this kind would: exact (a few pictures), inverted float lists, 4-bit codes."""
    if lists != "exact":
        monkeypatch.setattr(local, "EXACT", 0)
    if lists == "4-bit codes":
        monkeypatch.setattr(local, "FAST", 0)


def _star_copies(folder: Path) -> tuple[dict, dict]:
    """Features of 12 star-field tiles and of 6 re-posted copies of them (watermark + crop, frame + rescale,
    mirror + crop), and each copy's original."""
    first = _first_tile("hubble_deep_field")
    stars = list(range(first, first + 12))
    feats = {k: verify.features(_grey(PHOTOS[k]), verify.COARSE) for k in stars}
    copies = {}
    for j, (k, how) in enumerate(zip(stars[:6], ["watermark_crop", "frame_rescale", "mirror_crop"] * 2, strict=True)):
        save(leak(PHOTOS[k], how, k), folder / f"c{j}.jpg", quality=85)
        grey = _grey(Image.open(folder / f"c{j}.jpg"))
        if how == "frame_rescale":  # verification looks inside the frame (the content box); so does this test
            box = content_box(np.stack([grey] * 3, axis=2))
            grey = grey[box.y0 : box.y1, box.x0 : box.x1]
        copies[1000 + j] = k
        feats[1000 + j] = verify.features(grey, verify.COARSE)
    return feats, copies


@pytest.mark.parametrize("lists", ["exact", "inverted lists", "4-bit codes"])
def test_shared_local_features_propose_copies_whose_low_frequencies_changed(tmp_path, monkeypatch, lists):
    """Star-field tiles (every one alike in its low frequencies) re-posted with a watermark + crop,
    a frame + rescale and a mirror + crop: each copy is proposed with its original, which is the
    picture it shares the most local features with; also when the index is a bigger catalogue's
    inverted file, of floats or of 4-bit codes (`local.FAST`), whose distances are estimates."""
    _lists(monkeypatch, lists)
    feats, copies = _star_copies(tmp_path)
    votes = {(a, b): v for a, b, v in local.local_pairs({k: f.desc for k, f in feats.items()})}
    for c, k in copies.items():
        mine = {(a if b == c else b): v for (a, b), v in votes.items() if c in (a, b)}
        assert max(mine, key=mine.get) == k, (c, k, mine)  # its original is the picture it shares most with


@pytest.mark.parametrize("lists", ["exact", "inverted lists", "4-bit codes"])
def test_a_re_run_asks_with_the_new_pictures_only_and_proposes_what_everyone_asking_does(tmp_path, monkeypatch, lists):
    """Two copies arrive in a catalogue that knows the rest: only they ask the index, with the questions of
    the others that find them, and every candidate everyone asking proposes is proposed, each copy with
    its original (before, every picture asked on every run: 281 s at 100,000 pictures)."""
    _lists(monkeypatch, lists)
    monkeypatch.setattr(local, "BLOCK", 256)  # one new picture a block: a question two of them find is asked once
    feats, copies = _star_copies(tmp_path)
    desc = {k: f.desc for k, f in feats.items()}
    new = {1001, 1002}
    asked = []
    real = local._asked
    monkeypatch.setattr(
        local,
        "_asked",
        lambda index, d, ids, askers, owner: (
            asked.append({ids[k] for k in askers}) or real(index, d, ids, askers, owner)
        ),
    )
    monkeypatch.setattr(local, "ALONE", 0.5)
    again = {(a, b): v for a, b, v in local.local_pairs(desc, new)}
    monkeypatch.setattr(local, "ALONE", 0.0)  # everyone asks, as every run did before
    everyone = {(a, b): v for a, b, v in local.local_pairs(desc, new)}
    assert asked == [new, set(desc)], asked
    assert set(everyone) <= set(again), set(everyone) - set(again)
    assert all(again[p] <= everyone[p] for p in everyone)  # no vote counted twice
    assert sum(again[p] for p in everyone) >= 0.95 * sum(everyone.values())  # the same votes, near enough
    for c in new:
        assert tuple(sorted((c, copies[c]))) in again
    assert all(new & set(p) for p in again)


def test_a_copy_of_a_smooth_photo_is_found_when_its_content_box_cuts_the_plain_background(tmp_path):
    """A tile of the moon: its plain grey half is taken for padding, and a mirror + crop copy keeps
    less of that half, so the two content boxes are different parts of the photo (the copy looked
    like "a detail of the other", 33 % of the larger). The overlap of the whole pictures decides."""
    first = _first_tile("moon")
    moon = PHOTOS[first + 1]
    folder = tmp_path / "in"
    save(moon, folder / "moon.jpg", quality=90)
    save(leak(moon, "mirror_crop", first + 1), folder / "moon_mirror_crop.jpg", quality=90)
    for k in (first, first + 2):  # the other moon tiles: alike, different pictures
        save(PHOTOS[k], folder / f"other_{k}.jpg", quality=90)
    ws = Workspace.init(tmp_path / "ws")
    ingest_folder(ws, folder, IngestOptions(source="atlas", kind="public", workers=1))
    run_dedupe(ws, DedupeOptions(min_side=1, workers=1))
    with ws.session() as s:
        name = {i: Path(loc).name for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all()}
        cluster = {name[m.image_id]: m.cluster_key for m in s.exec(select(DedupeMember)).all()}
    assert cluster["moon.jpg"] == cluster["moon_mirror_crop.jpg"]
    assert len({cluster[f"other_{first}.jpg"], cluster[f"other_{first + 2}.jpg"], cluster["moon.jpg"]}) == 3


def test_a_blurred_copy_with_few_keypoints_is_the_same_photo():
    """A lattice tower against the sky, blurred: 53 keypoints left, 17 of them agree with the
    original on one transform. Under `SAME_INLIERS`, yet a third of all the picture has: the same
    photo (different photos that pass every other rule reach 10 matches, 0.07 of their keypoints)."""
    k = 84  # skimage's rocket, a tile of it
    original_jpeg, blurred_jpeg = io.BytesIO(), io.BytesIO()
    PHOTOS[k].convert("RGB").save(original_jpeg, "JPEG", quality=90)
    variant(PHOTOS[k], "blur", k).convert("RGB").save(blurred_jpeg, "JPEG", quality=90)
    fa, fb = (
        verify.features(np.asarray(Image.open(f).convert("L")), verify.COARSE) for f in (original_jpeg, blurred_jpeg)
    )
    g = verify.match(fa, verify.mirrored(fa), fb, None)
    assert verify.FEW_INLIERS <= g.inliers < verify.SAME_INLIERS, g
    assert verify.decide(g, 0.9, (len(fa.points), len(fb.points))).decision == verify.SAME


def test_matches_bunched_in_three_cells_are_the_picture_when_most_of_its_keypoints_agree():
    """A fundus tile that is mostly black, with a bar across what is left: its 19 keypoints sit in
    one corner, and 15 of them agree with the original over 3 of 16 cells. That is the picture; the
    same 15 among 190 keypoints would be a detail of it (a logo, one lesion's edge): review."""
    g = verify.Geometry(inliers=15, matches=18, cells=3, cover=1.0, share=1.0, spread=0.2)
    assert verify.decide(g, 0.4, (27, 19)).decision == verify.SAME
    few = verify.decide(g, 0.4, (270, 190))
    assert few.decision == verify.REVIEW and "few matching keypoints" in few.reason
    bunched = verify.Geometry(inliers=25, matches=30, cells=3, cover=1.0, share=1.0, spread=0.2)
    assert "bunched in one area" in verify.decide(bunched, 0.4, (270, 190)).reason


@pytest.mark.slow
def test_a_big_catalogue_is_indexed_without_a_float_copy_of_everyones_descriptors():
    """5,000 pictures' answering descriptors are 82 MB as stored (uint8) and 328 MB as the float vectors
    faiss takes; they are converted a block at a time, so a catalogue of 100,000 pictures does not need
    6.6 GB on top of its descriptors (before: every picture's floats, then all of them joined: 656 MB
    here). faiss's own memory (the index) is not counted: tracemalloc sees numpy's allocations only."""
    import tracemalloc

    rng = np.random.default_rng(0)
    desc = {i: rng.integers(0, 120, (local.TOP, 128), dtype=np.uint8) for i in range(5000)}
    floats = 5000 * local.TOP * 128 * 4
    tracemalloc.start()
    try:
        local.local_pairs(desc)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < floats / 2, f"{peak / 1e6:.0f} MB traced"
