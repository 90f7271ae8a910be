"""The cheap first look of verification (SIFT at `verify.COARSE` px) on real photo bytes: it settles
a mirrored + cropped copy and two different close-ups on its own, sends what it cannot settle to the
full-size look, and gives the same matches as OpenCV's matcher; a copy aligned exactly to its
original (an anonymisation bar on an untouched photo) is the same photo."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from dedupe_corpus import save, variant
from photo_corpus import closeup, leak, originals
from sqlmodel import select

from curate.dedupe import verify
from curate.dedupe.decode import decode, parse_box, work_grey
from curate.dedupe.pairs import Verifier, load_codes
from curate.dedupe.run import ALGO, DedupeOptions, DedupeReport, hash_missing
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace
from db.models import Provenance

PHOTOS = originals(12)


def _grey(img) -> np.ndarray:
    return cv2.cvtColor(np.asarray(img.convert("RGB")), cv2.COLOR_RGB2GRAY)


def test_coarse_look_settles_a_mirrored_crop_and_two_close_ups_without_full_size_features(tmp_path):
    folder = tmp_path / "in"
    save(PHOTOS[2], folder / "photo.jpg")
    save(leak(PHOTOS[2], "mirror_crop", 3), folder / "photo_mirror_crop.jpg", quality=75)
    save(closeup(1), folder / "closeup_1.jpg", quality=90)
    save(closeup(2), folder / "closeup_2.jpg", quality=90)
    ws = Workspace.init(tmp_path / "ws")
    ingest_folder(ws, folder, IngestOptions(source="atlas", kind="public", workers=1))
    hash_missing(ws, DedupeOptions(workers=1), DedupeReport())
    with ws.session() as s:
        ids, _, thumbs, _ = load_codes(s, ALGO)
        name = {i: Path(loc).name for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all()}
    of = {name[i]: i for i in ids.tolist()}
    verifier = Verifier(ws, 1, dict(zip(ids.tolist(), thumbs, strict=False)))
    pairs = [("photo.jpg", "photo_mirror_crop.jpg"), ("closeup_1.jpg", "closeup_2.jpg")]
    jobs = [(*sorted((of[x], of[y])), 0.9, None) for x, y in pairs]
    copy, closeups = verifier.check_many(jobs)
    assert copy.decision == verify.SAME and copy.geometry.mirrored and f"at {verify.COARSE} px" in copy.reason
    assert closeups.decision == verify.DIFFERENT
    assert verifier.sift_pairs == 2 and verifier.full_pairs == 0
    assert verifier.taken[verify.WORK] == 0  # no full-size SIFT was needed
    # the full-size look agrees with both
    assert [verifier._full(*job).decision for job in jobs] == [verify.SAME, verify.DIFFERENT]


def test_a_detail_of_a_photo_is_settled_at_the_coarse_size(tmp_path):
    """The middle ninth of a photo against the photo: 21 matches agree at 160 px, on too little of it to be
    one picture. More pixels do not move where the matches lay it, so no full-size look is taken."""
    folder, photo = tmp_path / "in", PHOTOS[0]
    w, h = photo.size
    save(photo, folder / "photo.jpg")
    save(photo.crop((w // 3, h // 3, 2 * w // 3, 2 * h // 3)), folder / "detail.jpg")
    ws = Workspace.init(tmp_path / "ws")
    ingest_folder(ws, folder, IngestOptions(source="atlas", kind="public", workers=1))
    hash_missing(ws, DedupeOptions(workers=1), DedupeReport())
    with ws.session() as s:
        ids, _, thumbs, _ = load_codes(s, ALGO)
    verifier = Verifier(ws, 1, dict(zip(ids.tolist(), thumbs, strict=False)))
    [v] = verifier.check_many([(int(ids[0]), int(ids[1]), 0.5, None)])
    assert v.decision == verify.DIFFERENT and v.geometry.inliers >= verify.REVIEW_INLIERS
    assert v.geometry.share < verify.REVIEW_SHARE
    assert verifier.full_pairs == 0


def test_a_few_coarse_matches_are_looked_at_full_size_not_rejected():
    g = verify.Geometry(inliers=verify.COARSE_REJECT, matches=30, cells=3, cover=0.9, share=0.8)
    assert verify.decide(g, 0.7, (200, 200)).decision == verify.DIFFERENT
    assert verify.triage(g, 0.7, (200, 200)) is None  # undecided: the full-size look decides
    few = verify.Geometry(inliers=verify.COARSE_REJECT - 1, matches=30, cells=2, cover=0.9, share=0.8)
    assert verify.triage(few, 0.7, (200, 200)).decision == verify.DIFFERENT
    near = verify.Geometry(inliers=15, matches=30, cells=6, cover=0.95, share=0.9)  # "review" at coarse size
    assert verify.triage(near, 0.7, (200, 200)) is None
    detail = verify.Geometry(inliers=verify.REVIEW_INLIERS, matches=30, cells=6, cover=0.95, share=0.1)
    assert verify.triage(detail, 0.7, (200, 200)).decision == verify.DIFFERENT  # too little of the larger


def test_ratio_matches_are_opencvs_brute_force_matches():
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    for a, b in ((PHOTOS[0], leak(PHOTOS[0], "watermark_crop", 1)), (PHOTOS[4], PHOTOS[5])):
        fa, fb = verify.features(_grey(a)), verify.features(_grey(b))
        knn = matcher.knnMatch(fa.desc, fb.desc, k=2)
        expected = {(p[0].queryIdx, p[0].trainIdx) for p in knn if p[0].distance < verify.RATIO * p[1].distance}
        qa, qb = verify.ratio_matches(fa.desc, fb.desc)
        assert set(zip(qa.tolist(), qb.tolist(), strict=False)) == expected
        assert len(expected) > 0


def test_a_copy_aligned_to_a_fraction_of_a_pixel_overlaps_its_original_fully():
    """An anonymisation bar on an untouched photo aligns with its original to 1e-5 px (measured on the
    benchmark: 177 matching keypoints, yet "no geometric match"), where OpenCV's polygon intersection
    reports no overlap at all; the copy must count as covering its original."""
    size = verify.Features(np.zeros((0, 2), np.float32), None, 320, 236)
    measured = np.array([[0.999999897, 3.71851643e-08, 1.72095685e-05], [-3.71851643e-08, 0.999999897, 2.53749532e-05]])
    for m in (measured, np.array([[1.0, 0, 0], [0, 1.0, 0]]), np.array([[0.5, 0, 80], [0, 0.5, 59]])):
        cover, share, _ = verify._cover(m, size, size)
        assert cover > 0.99 and share > (0.99 if m[0, 0] == 1 or m is measured else 0.24), m
    barred = _grey(variant(PHOTOS[6], "bar", 6))
    g = verify.match(verify.features(_grey(PHOTOS[6])), lambda: None, verify.features(barred), False, both=False)
    assert verify.decide(g, 0.9, (500, 500)).decision == verify.SAME


def _grey_of(img, path):
    save(img, path, quality=90)
    data = path.read_bytes()
    return work_grey(data, parse_box(decode(data).box.as_text()), verify.WORK)


def test_different_photos_sharing_a_burned_in_caption_are_never_merged(tmp_path):
    """Two different photos re-posted with the same watermark (the benchmark's one false pair before
    `SAME_SPREAD`): dozens of keypoints on the text agree on one transform, but they lie along one line,
    so the pair goes to the steward as "review", never merged; each copy still matches its own original."""
    photos = originals()
    marked = {k: _grey_of(leak(photos[k], "watermark_crop", k), tmp_path / f"wm{k}.jpg") for k in (5, 30)}
    fa, fb = verify.features(marked[5]), verify.features(marked[30])
    g = verify.match(fa, verify.features(np.ascontiguousarray(marked[5][:, ::-1])), fb, None)
    assert g.inliers >= verify.SAME_INLIERS and g.cover >= verify.SAME_COVER, g  # the caption alone agrees
    assert g.spread < verify.SAME_SPREAD, g
    v = verify.decide(g, 0.71, (len(fa.points), len(fb.points)))
    assert v.decision == verify.REVIEW and "along one line" in v.reason, v
    original = _grey_of(photos[5], tmp_path / "original5.jpg")
    fo = verify.features(original)
    g = verify.match(fo, verify.features(np.ascontiguousarray(original[:, ::-1])), fa, None)
    assert verify.decide(g, 0.9, (len(fo.points), len(fa.points))).decision == verify.SAME, g
