"""Photos through one dermatoscope: the round field of view, black outside, is a frame the content box cannot
cut, the same on every photo, and its edge gave different lesions' small copies agreeing keypoints
(`curate.dedupe.decode.field_stop`: none are taken on or near it)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from dedupe_corpus import dedupe_files
from photo_corpus import closeup, originals, rotated_canvas, small_jpeg, through_scope
from PIL import Image

from curate.dedupe import decode, verify

LESIONS = (7011, 7035, 7003, 7019)  # the first two's small copies were "same" on 35 keypoints along the edge


def _grey(img: Image.Image, side: int = 160) -> np.ndarray:
    img = img.convert("L")
    f = side / max(img.size)
    return np.asarray(img.resize((round(img.width * f), round(img.height * f)), Image.BOX))


@pytest.mark.parametrize("clipped", [False, True])
def test_a_dermatoscopes_round_field_is_found_whole_or_clipped(clipped):
    stop = decode.field_stop(_grey(through_scope(closeup(7011, (512, 512)), clipped=clipped)))
    assert stop is not None
    assert 0.05 < stop.mean() < 0.4  # the black outside the circle, not the lesion or the skin
    assert not stop[stop.shape[0] // 2, stop.shape[1] // 2]


def test_no_field_stop_on_plain_turned_or_canvassed_photos():
    rng = np.random.default_rng(0)
    photo = originals()[1]
    for img in (closeup(7011), photo, photo.rotate(6, expand=False), rotated_canvas(photo, rng)):
        assert decode.field_stop(_grey(img)) is None


def test_no_keypoint_is_taken_on_the_field_stops_edge():
    img = through_scope(closeup(7035, (512, 512)))
    grey = _grey(img, verify.COARSE)
    stop = decode.field_stop(grey)
    points = verify.features(grey, verify.COARSE).points
    near = np.zeros_like(stop, np.uint8)
    near[stop] = 1
    import cv2

    near = cv2.dilate(near, np.ones((7, 7), np.uint8))
    assert len(points) and not any(near[int(y), int(x)] for x, y in points)


def test_small_copies_of_different_lesions_through_one_dermatoscope_are_not_merged(tmp_path):
    files = {}
    for k in LESIONS:
        files[f"lesion_{k}.jpg"] = through_scope(closeup(k, (512, 512)))
        files[f"lesion_{k}_small.jpg"] = small_jpeg(files[f"lesion_{k}.jpg"], np.random.default_rng([k, 3]))
    cluster, _, _ = dedupe_files(tmp_path, files)
    members = defaultdict(set)
    for name, key in cluster.items():
        members[key].add(name)
    lesion = {name: name.split("_")[1].removesuffix(".jpg") for name in files}
    assert all(len({lesion[n] for n in m}) == 1 for m in members.values()), members
    joined = [k for k in LESIONS if cluster[f"lesion_{k}.jpg"] == cluster[f"lesion_{k}_small.jpg"]]
    assert len(joined) >= 3, members  # and the small copies still join their photos
