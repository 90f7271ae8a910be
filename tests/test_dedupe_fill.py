"""A picture turned on a larger canvas: its corners are a frame the content box cannot cut; it is turned
back (`curate.dedupe.decode.turned_back`), or else its corners in-painted (`rotation_fill`)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from dedupe_corpus import dedupe_files, photo
from photo_corpus import closeup, crop, frame, originals
from PIL import Image

from curate.dedupe import decode

PHOTOS = originals()
WHITE, GREY = (255, 255, 255), (128, 128, 128)


def _fills(monkeypatch, pictures) -> list[bool]:
    """Whether decoding each picture (a JPEG, as dedupe reads it) found it turned on a canvas: turned it back
    (`turned_back`) or in-painted the canvas's fill (`rotation_fill`)."""
    seen: list = []
    for name in ("turned_back", "rotation_fill"):
        real = getattr(decode, name)
        monkeypatch.setattr(decode, name, lambda *args, _real=real: seen.append(_real(*args)) or seen[-1])
    found = []
    for img in pictures:
        buf = io.BytesIO()
        img.convert("RGB").save(buf, "JPEG", quality=85)
        seen.clear()
        decode.decode(buf.getvalue())
        found.append(any(f is not None for f in seen))
    return found


def test_the_fill_is_found_around_turned_copies_and_nowhere_else(monkeypatch):
    """Photos, tiles, close-ups on plain skin and synthetic skin photos, as stored, halved, mirrored,
    cropped and framed: none has a rotation's fill (the moon on black, the fundus's dark corners, a plain
    background). Each turned by 20-40 degrees on a white canvas has one, and nearly all on a grey
    one (a smooth grey photo on grey is cut into by the content box first). On a black canvas the
    corners are in-painted as black areas anyway, and a dark photo's fill is its own background."""
    pictures = PHOTOS + [closeup(k) for k in range(30)] + [photo(k) for k in range(30)]
    rng = np.random.default_rng(3)
    plain = [
        copy
        for img in pictures
        for copy in (
            img,
            img.resize((img.width // 2, img.height // 2)),
            img.transpose(Image.FLIP_LEFT_RIGHT),
            crop(img, rng, 0.08),  # a fundus tile's corner cut to a black and a grey triangle
            frame(img, "white", 0.06),
        )
    ]
    assert not any(_fills(monkeypatch, plain))
    for colour, least in ((WHITE, 1.0), (GREY, 0.97)):
        angles = [float(np.random.default_rng(k).uniform(20, 40)) * (-1) ** k for k in range(len(pictures))]
        turned = [
            img.convert("RGB").rotate(angle, Image.BICUBIC, expand=True, fillcolor=colour)
            for angle, img in zip(angles, pictures, strict=True)
        ]
        assert np.mean(_fills(monkeypatch, turned)) >= least, colour


@pytest.mark.slow
def test_different_photos_turned_alike_stay_apart_and_each_joins_its_original(tmp_path):
    """Eight photos and six close-ups on plain skin, each also turned by the same 30 degrees on a
    white canvas. The white corners were what the thumbnails showed: different turned photos
    correlated 0.95-0.97 and were merged (17 clusters of different photos in a probe of 77)."""
    files = {f"p{k}.jpg": PHOTOS[k] for k in (0, 1, 3, 5, 8, 9, 11, 29)}
    files |= {f"c{k}.jpg": closeup(k) for k in (2, 5, 9, 13, 17, 22)}
    files |= {
        name.replace(".jpg", "_turned.jpg"): img.convert("RGB").rotate(30, Image.BICUBIC, expand=True, fillcolor=WHITE)
        for name, img in list(files.items())
    }
    cluster, _, _ = dedupe_files(tmp_path, files)
    for name in [n for n in files if not n.endswith("_turned.jpg")]:
        assert cluster[name] == cluster[name.replace(".jpg", "_turned.jpg")], name
    assert len(set(cluster.values())) == len(files) // 2


def test_dark_tiles_turned_opposite_ways_are_not_merged_on_their_invented_corners(tmp_path):
    """Two tiles of the fundus photo's rim, mostly its black surround, turned 32 degrees one way and the
    other on a grey canvas: each is then nearly the other's mirror image, and with the fill and the black
    in-painted (two thirds of each thumbnail) the thumbnails correlated 0.98 and the pair was merged on
    that alone. Such thumbnails are no shortcut (`verify.MOST_INPAINTED`): the local features decide."""
    files = {"p16.jpg": PHOTOS[16], "p20.jpg": PHOTOS[20]}
    files |= {
        "p16_turned.jpg": PHOTOS[16].convert("RGB").rotate(32, Image.BICUBIC, expand=True, fillcolor=GREY),
        "p20_turned.jpg": PHOTOS[20].convert("RGB").rotate(-32, Image.BICUBIC, expand=True, fillcolor=GREY),
    }
    cluster, _, _ = dedupe_files(tmp_path, files)
    assert cluster["p16_turned.jpg"] != cluster["p20_turned.jpg"]
    assert cluster["p16.jpg"] == cluster["p16_turned.jpg"]
    assert cluster["p20.jpg"] == cluster["p20_turned.jpg"]
