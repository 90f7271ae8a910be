"""The third proposal: whole pictures of one shape whose content boxes were cut apart (`curate.dedupe.whole`).

A heavily compressed thumbnail of a star-field tile loses its faint stars at the edges, so its content box
cuts into the photo while its original's is the whole tile: the box thumbnails no longer meet, and among
other tiles of the same sky neither the hashes nor the local features proposed the pair."""

from __future__ import annotations

import numpy as np
import pytest
from dedupe_corpus import TRANSFORMS, dedupe_files, variant
from photo_corpus import LEAKS, frame, leak, originals, same_frame

from curate.dedupe import pairs
from curate.dedupe.decode import THUMB, decode
from curate.dedupe.whole import whole_pairs

PHOTOS = originals()
HUBBLE = range(30, 45)  # tiles of one deep-field photo: 15 different pictures of one black sky


def _jpeg(img) -> bytes:
    import io

    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_a_cut_box_keeps_the_whole_pictures_thumbnail_beside_it():
    """A framed photo's box is the photo and its whole thumbnail shows the frame; an unframed photo has
    only the one thumbnail (its box is the whole picture)."""
    plain = decode(_jpeg(PHOTOS[1]))
    assert not plain.box.cut and plain.whole is None
    framed = decode(_jpeg(frame(PHOTOS[1], "white", 0.1)))
    assert framed.box.cut and framed.whole is not None and framed.whole.shape == (THUMB, THUMB)
    assert framed.whole[0].min() > 240 and framed.thumb[0].min() < 200  # the frame's white row; the photo's


def test_whole_pictures_propose_pictures_of_one_shape_whose_boxes_differ():
    """Picture 2 is picture 1 with its box cut elsewhere: proposed. Picture 3 shows the same whole picture
    but another shape, picture 4 the same box as 1: neither is proposed with 1."""
    rng = np.random.default_rng(0)
    pics = {i: rng.integers(0, 256, (THUMB, THUMB), dtype=np.uint8) for i in range(1, 7)}
    same = pics[1]
    thumbs = {1: same, 2: pics[2], 3: pics[3], 4: pics[4], 5: pics[5], 6: pics[6]}
    wholes = {2: same, 3: same, 4: same}
    aspect = {1: 1.5, 2: 1.51, 3: 1.0, 4: 1.5, 5: 1.5, 6: 1.5}
    boxes = {1: (0.0, 0.0, 1.0, 1.0), 2: (0.2, 0.0, 1.0, 1.0), 3: (0.2, 0.0, 1.0, 1.0), 4: (0.0, 0.0, 1.0, 0.99)}
    found = {(a, b) for a, b, _ in whole_pairs(list(thumbs), thumbs, wholes, aspect, boxes)}
    assert (1, 2) in found
    assert (1, 3) not in found and (1, 4) not in found
    # an incremental run: only pairs touching a new picture, as the full search has them
    assert {(a, b) for a, b, _ in whole_pairs(list(thumbs), thumbs, wholes, aspect, boxes, new={2})} == {
        p for p in found if 2 in p
    }
    assert whole_pairs(list(thumbs), thumbs, {}, aspect, boxes) == []  # no box cut: nothing to add


def _reposts(k: int) -> dict:
    """Photo `k` and its five re-posted copies, as `bench/dedupe.py` builds its corpus."""
    names = list(LEAKS) + ["same_frame"] + list(TRANSFORMS)
    out = {f"pr{k:04d}.jpg": PHOTOS[k]}
    for j in range(5):
        t = names[(k * 5 + j) % len(names)]
        img = PHOTOS[k]
        img = same_frame(img) if t == "same_frame" else leak(img, t, k) if t in LEAKS else variant(img, t, k)
        out[f"vr{k:04d}_{j}_{t}.jpg"] = img
    return out


@pytest.mark.slow
@pytest.mark.parametrize("local", [True, False], ids=["with local features", "beyond LOCAL_MAX"])
def test_a_thumbnail_of_a_star_field_tile_cut_into_by_its_box_joins_its_tile(tmp_path, monkeypatch, local):
    """Fifteen tiles of one deep-field photo, each with five re-posts (a shared white frame among them: a
    hard negative between tiles): the thumbnail-sized copy of tile 30, whose box cuts into the sky, is
    grouped with its tile (before: never proposed), and no cluster holds two tiles. Also in a catalogue
    too big for the local-feature proposal, which whole pictures do not wait for."""
    if not local:
        monkeypatch.setattr(pairs, "LOCAL_MAX", 0)
    files = {}
    for k in HUBBLE:
        files.update(_reposts(k))
    cluster, box, _ = dedupe_files(tmp_path, files)
    small = "vr0030_4_small_jpeg.jpg"
    assert box[small] != (0.0, 0.0, 1.0, 1.0) and box["pr0030.jpg"] == (0.0, 0.0, 1.0, 1.0)
    assert cluster[small] == cluster["pr0030.jpg"]
    tiles_of = {}
    for name, key in cluster.items():
        tiles_of.setdefault(key, set()).add(name[2:6])
    assert all(len(t) == 1 for t in tiles_of.values()), [t for t in tiles_of.values() if len(t) > 1]
