"""A photo re-posted in another shape, centred on a blurred enlargement of itself (a story at 9:16, a video at
16:9): the photo is 32-42 % of the picture, which the "same" rule took for a detail of it; the blur has few
keypoints, so when the overlap holds nearly all of the larger picture's keypoints the rest is padding
(`curate.dedupe.verify._held`)."""

from __future__ import annotations

from dedupe_corpus import dedupe_files
from photo_corpus import blur_fill, originals

from curate.dedupe import verify


def test_a_photo_on_a_blurred_enlargement_of_itself_is_the_same_photo(tmp_path):
    every = originals()
    coffee, rocket = every[1], every[3]  # landscape photos, each 37 % of its 9:16 story
    files = {"coffee.jpg": coffee, "coffee_story.jpg": blur_fill(coffee, 9 / 16)}
    files |= {"rocket.jpg": rocket, "rocket_story.jpg": blur_fill(rocket, 9 / 16)}
    cluster, _, pairs = dedupe_files(tmp_path, files)
    assert cluster["coffee.jpg"] == cluster["coffee_story.jpg"] != cluster["rocket.jpg"] == cluster["rocket_story.jpg"]
    why = {frozenset((a, b)): reason for a, b, _, reason in pairs}
    assert "of its keypoints inside" in why[frozenset(("coffee.jpg", "coffee_story.jpg"))]


def test_a_detail_with_texture_around_it_stays_a_detail():
    """The larger picture's keypoints outside the overlap keep a detail a detail (different photos sent to review
    as a detail of one another held at most 50 % of them on the benchmark's corpora)."""
    import numpy as np

    rng = np.random.default_rng(0)
    inside = rng.uniform(0, 100, (60, 2)).astype(np.float32)
    around = rng.uniform(0, 300, (300, 2)).astype(np.float32)
    small = verify.Features(inside, None, 100, 100)
    large = verify.Features(np.concatenate([inside + 100, around]), None, 300, 300)
    shift = np.array([[1.0, 0, 100], [0, 1.0, 100]])
    assert verify._held(shift, small, large) < 0.5
    plain = verify.Features(np.concatenate([inside + 100, around[:5]]), None, 300, 300)  # the rest blurred
    assert verify._held(shift, small, plain) >= verify.HELD
