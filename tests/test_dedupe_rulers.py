"""A clinic's photos: different patients' lesions photographed beside the same measuring ruler share dozens
of the ruler's keypoints on one transform, spread along it, yet are never merged (`verify.one_object`);
a cropped re-post of one still joins its original."""

from __future__ import annotations

import numpy as np
import pytest
from dedupe_corpus import clinic_beside, dedupe_files, merged
from photo_corpus import closeup, crop, with_ruler

from curate.dedupe import verify

CLINIC = (31, 34, 35, 37, 38, 39)  # close-ups merged beside the ruler before the rule: 20-40 keypoints agreed on it


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    return clinic_beside(tmp_path_factory.mktemp("rulers"), with_ruler, CLINIC, 38)  # and a photo beside it


def test_different_lesions_beside_one_ruler_are_never_merged(clinic):
    cluster, _, pairs = clinic
    assert merged(cluster) == [{"lesion_38.jpg", "lesion_38_posted.jpg"}]
    object_only = [p for p in pairs if p[2] == "review" and "one object only" in p[3]]
    assert len(object_only) >= 3  # the ruler's agreement is shown to the steward, not hidden
    for a, b, _, reason in object_only:
        assert a.split("_")[1] != b.split("_")[1] or "photo" in (a, b)
        assert "keypoints away from it alike" in reason


def test_a_larger_photo_beside_a_larger_ruler_is_asked_at_full_size(tmp_path):
    """At 1,024 px with the ruler 1.6 times as large, the look at 160 px saw plain skin without keypoints and
    took 14-22 keypoints along the ruler for the photo; its "same" is asked again at 320 px."""
    files = {f"lesion_{k}.jpg": with_ruler(closeup(k), k, (1024, 768), 1.6) for k in (2, 3, 8, 10, 11, 12)}
    files["lesion_8_posted.jpg"] = crop(files["lesion_8.jpg"], np.random.default_rng([8, 9]))
    cluster, _, pairs = dedupe_files(tmp_path, files)
    assert merged(cluster) == [{"lesion_8.jpg", "lesion_8_posted.jpg"}]
    assert any("one object only" in p[3] for p in pairs)


def test_the_posted_copy_is_same_on_the_whole_photo(clinic):
    _, _, pairs = clinic
    (kind,) = [p[2] for p in pairs if {p[0], p[1]} == {"lesion_38.jpg", "lesion_38_posted.jpg"}]
    assert kind == "hash"


def _features(points, desc, side=320):
    return verify.Features(np.asarray(points, np.float32), np.asarray(desc, np.uint8), side, side)


def test_one_object_leaves_a_same_whose_agreement_covers_the_photo():
    """Keypoints spread over the whole picture, all alike on their spots: nothing lies away from the
    agreement, so the rule is not asked."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(5, 315, (200, 2))
    desc = rng.integers(0, 120, (200, 128))
    a, b = _features(pts, desc), _features(pts + 0.5, desc)
    g = verify.Geometry(200, 200, 16, 1.0, 1.0, False, 0.29, (1.0, 0.0, 0.5, 0.0, 1.0, 0.5))
    v = verify.Verdict(verify.SAME, "200 matching keypoints", g)
    assert verify.one_object(v, a, b) == v  # "same", and asked: not `unasked`


def test_one_object_puts_to_review_a_band_of_agreement_on_unlike_pictures():
    """30 alike keypoints along one band (a ruler), 200 unlike ones on the same spots elsewhere."""
    rng = np.random.default_rng(1)
    band = np.column_stack([rng.uniform(20, 300, 30), rng.uniform(10, 30, 30)])
    rest = np.column_stack([rng.uniform(5, 315, 200), rng.uniform(80, 315, 200)])
    band_desc = rng.integers(0, 120, (30, 128))
    a = _features(np.vstack([band, rest]), np.vstack([band_desc, rng.integers(0, 120, (200, 128))]))
    b = _features(np.vstack([band, rest]), np.vstack([band_desc, rng.integers(0, 120, (200, 128))]))
    g = verify.Geometry(30, 30, 5, 1.0, 1.0, False, 0.03, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0))
    v = verify.one_object(verify.Verdict(verify.SAME, "30 matching keypoints", g), a, b)
    assert v.decision == verify.REVIEW
    assert "0 of 200 keypoints away from it alike" in v.reason
