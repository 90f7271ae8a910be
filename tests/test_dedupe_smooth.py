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


def test_a_copy_with_too_little_texture_to_compare_joins_its_photos_cluster(tmp_path):
    """A fundus tile, mostly black, with a tone, a crop, a rotation and a bar: the barred copy is
    verified the same as the original (15 of its 19 keypoints), but against the cropped and toned
    copies (1 and 17 keypoints) nothing can be told either way. Those pairs are "untested": they
    neither join nor block, so the barred copy is not left out; the neighbouring tiles (different
    pictures) stay out."""
    k = len(COLOUR_PHOTOS + GREY_PHOTOS)  # the first tile of the retina photo (`TILED`'s first)
    assert next(iter(TILED)) == "retina"
    files = {"tile.jpg": PHOTOS[k]}
    files |= {f"tile_{t}.jpg": variant(PHOTOS[k], t, k) for t in ("tone", "crop", "rotate", "bar")}
    files |= {f"other_{j}.jpg": PHOTOS[k + j] for j in (1, 2)}
    cluster, _, pairs = dedupe_files(tmp_path, files)
    copies = ["tile.jpg"] + [f"tile_{t}.jpg" for t in ("tone", "crop", "rotate", "bar")]
    assert len({cluster[f] for f in copies}) == 1, cluster
    assert any(kind == "untested" and "tile_bar.jpg" in (x, y) for x, y, kind, _ in pairs), pairs
    assert cluster["other_1.jpg"] != cluster["tile.jpg"] and cluster["other_2.jpg"] != cluster["tile.jpg"]
