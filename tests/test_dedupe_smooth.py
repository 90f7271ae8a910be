"""Copies of smooth or nearly textureless photos, end to end on real photo bytes (the two kinds
`bench/dedupe.py` missed last): a tone change that moves where the content box cuts into a plain
background, and a black bar across a fundus tile that is mostly black already."""

from __future__ import annotations

from dedupe_corpus import dedupe_files, variant
from photo_corpus import COLOUR_PHOTOS, GREY_PHOTOS, TILED, originals

PHOTOS = originals()


def test_a_tone_copy_whose_content_box_cut_elsewhere_is_the_same_photo(tmp_path):
    """scikit-image's clock: a blurred clock on a plain wall. Darker and flatter, the copy's wall
    passes for padding further in (its box keeps 43 % of the width, the original's 68 %), so the
    boxes' thumbnails disagree and only 5 keypoints match. The smallest box holding both is the same
    part of both pictures: their thumbnails there correlate 0.999."""
    k = len(COLOUR_PHOTOS) + GREY_PHOTOS.index("clock")
    files = {"clock.jpg": PHOTOS[k], "clock_tone.jpg": variant(PHOTOS[k], "tone", k)}
    files |= {f"{n}.jpg": PHOTOS[len(COLOUR_PHOTOS) + GREY_PHOTOS.index(n)] for n in ("camera", "moon", "coins")}
    cluster, box, pairs = dedupe_files(tmp_path, files)
    a, b = box["clock.jpg"], box["clock_tone.jpg"]
    assert abs((a[2] - a[0]) - (b[2] - b[0])) > 0.15, (a, b)  # the case: the boxes are different parts
    assert cluster["clock.jpg"] == cluster["clock_tone.jpg"]
    (why,) = [r for x, y, _, r in pairs if {x, y} == {"clock.jpg", "clock_tone.jpg"}]
    assert "both content boxes together" in why
    assert len({cluster[f] for f in ("clock.jpg", "camera.jpg", "moon.jpg", "coins.jpg")}) == 4


def test_a_copy_with_too_little_texture_to_compare_joins_its_photos_cluster_or_goes_to_review(tmp_path):
    """A fundus tile, mostly black, with a tone, a crop, a rotation and a bar: the barred copy is
    verified the same as the original (15 of its 19 keypoints). The cropped, toned and turned copies
    (1 to 17 keypoints) cannot be compared by local features at 160 px, and their thumbnails'
    correlation (0.99) is the tile's light, a lit corner on black (`verify.unlit`), which a neighbouring
    tile of the rim shares (0.97): none is merged on thumbnails alone (before: one cluster on them). At
    320 px with the contrast evened the toned copy shares 22 keypoints over 9 cells with the tile, which
    is evidence ("same"); the cropped and turned ones still too few: each goes to the steward with the
    tile ("review"), none is dropped. The neighbouring tiles stay out."""
    k = len(COLOUR_PHOTOS + GREY_PHOTOS)  # the first tile of the retina photo (`TILED`'s first)
    assert next(iter(TILED)) == "retina"
    files = {"tile.jpg": PHOTOS[k]}
    files |= {f"tile_{t}.jpg": variant(PHOTOS[k], t, k) for t in ("tone", "crop", "rotate", "bar")}
    files |= {f"other_{j}.jpg": PHOTOS[k + j] for j in (1, 2)}
    cluster, _, pairs = dedupe_files(tmp_path, files)
    assert cluster["tile_bar.jpg"] == cluster["tile_tone.jpg"] == cluster["tile.jpg"]
    kind = {frozenset((x, y)): (kind, why) for x, y, kind, why in pairs}
    assert kind[frozenset(("tile.jpg", "tile_tone.jpg"))][1].endswith("(contrast evened)")
    assert all(kind[frozenset(("tile.jpg", f"tile_{t}.jpg"))][0] == "review" for t in ("crop", "rotate"))
    assert cluster["other_1.jpg"] != cluster["tile.jpg"] and cluster["other_2.jpg"] != cluster["tile.jpg"]


def test_copies_of_a_close_up_on_plain_skin_join_it_where_only_evened_features_can_tell(tmp_path):
    """One lesion on plain skin (`closeup`) at a phone photo's size, as a clinic photographs it: 6-14
    keypoints at 160 px, so a framed or a mirrored and cropped copy could only go to review ("too little
    texture to verify"; `bench/skin_photos.py`'s corpus: recall 0.964 so, 190 pairs to review). At 320 px
    with the contrast evened the copies share 20 or more keypoints on one transform, and different
    close-ups of the same skin at most 9: the copies join, the other close-ups stay out."""
    from photo_corpus import closeup, leak

    skin = (175, 107, 126)
    photo = closeup(29, (1024, 768), skin=skin, texture=0.014)
    files = {"photo.jpg": photo} | {f"{kind}.jpg": leak(photo, kind, 29) for kind in ("white_frame", "mirror_crop")}
    files |= {f"other_{k}.jpg": closeup(k, (1024, 768), skin=skin, texture=0.014) for k in (30, 31)}
    cluster, _, pairs = dedupe_files(tmp_path, files)
    assert cluster["white_frame.jpg"] == cluster["mirror_crop.jpg"] == cluster["photo.jpg"], pairs
    assert len({cluster[f] for f in ("photo.jpg", "other_30.jpg", "other_31.jpg")}) == 3
    evened = [r for x, y, k, r in pairs if k == "hash" and r.endswith("(contrast evened)")]
    assert evened, pairs  # the evidence is the evened look's
