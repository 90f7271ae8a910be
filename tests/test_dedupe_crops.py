"""Two crops of one photo that share a third of themselves both join the photo.

A wide photo cropped square at each end (two sites' thumbnails of one picture) gives two copies that are each
"same" as the photo, but lay over only a third of each other: as pictures they are different, and that
"different" kept one crop out of its photo's cluster, so the two could land in different splits. Their
keypoints agree over the part they share (as many as a review needs, spread as a "same" needs), so inside the
photo's group that "different" is no evidence (`curate.dedupe.pairs._parts_of_one`); photos that are not one
stay apart.
"""

from __future__ import annotations

from pathlib import Path

from dedupe_corpus import dedupe_files
from photo_corpus import originals

PHOTOS = (0, 6, 12, 18, 24)  # photos of 256 px and more: 18-80 keypoints agree on the shared third
KEPT = 0.6  # of the width, at each end


def test_crops_of_both_ends_of_a_photo_join_it_and_nothing_else(tmp_path: Path):
    photos, files = originals(), {}
    for k in PHOTOS:
        img = photos[k].convert("RGB")
        w, h = img.size
        files[f"p{k:02d}.jpg"] = img
        files[f"p{k:02d}_left.jpg"] = img.crop((0, 0, round(w * KEPT), h))
        files[f"p{k:02d}_right.jpg"] = img.crop((round(w * (1 - KEPT)), 0, w, h))
    cluster, _, pairs = dedupe_files(tmp_path, files)
    apart = [n for n in files if "_" in n and cluster[n] != cluster[n.split("_")[0] + ".jpg"]]
    assert not apart, f"crops left apart from their photo: {apart}"
    assert len(set(cluster.values())) == len(PHOTOS), "different photos were merged"
    ends = [(a, b, kind, why) for a, b, kind, why in pairs if "_left" in a and "_right" in b]
    assert len(ends) == len(PHOTOS) and all(
        kind == "untested" and "too little overlap" in why for *_, kind, why in ends
    )
