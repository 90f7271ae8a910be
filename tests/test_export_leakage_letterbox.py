"""The leakage audit on letterboxed copies: a photo in train, and in test the same photo padded to 2:1, 4:1 or 1:3
with white, black or grey bars, which the export then stretched to its square like every photo. Before, the audit
cut the bars but compared what was left squeezed to a half, a quarter or a third of its width: the hostile probe's
4:1 and 2:1 copies in external were no suspects, and `bench/leakage.py --pads` found 57 % of 2:1 copies, none at
4:1 and 3 % at 1:3 (`curate.export.leakage.gray_and_frame`)."""

from __future__ import annotations

import numpy as np
from leakage_corpus import Parts, bases, exported
from photo_corpus import pad
from PIL import Image

from curate.export.leakage import audit_files, every_look, gray_and_frame, letterbox_views

ASPECTS = (2.0, 4.0, 1 / 3)
COLOURS = ("white", "black", "grey")


def test_letterboxed_copies_are_suspects_and_their_neighbours_are_not(tmp_path):
    photos = [img for _, img in bases(skin=0)][::3][:12]  # scikit-image tiles: one of each three, 12 photos
    parts = Parts(tmp_path)
    for k, img in enumerate(photos):
        parts.put(f"p{k:02d}.jpg", exported(img), "train", k % 5)
        parts.put(f"p{k:02d}_pad.jpg", exported(pad(img, COLOURS[k % 3], ASPECTS[k % 3])), "test", None)
    audit = audit_files(tmp_path, parts.entries, "clinic@1.0.0")
    suspects = {(p.a.file, p.b.file) for p in audit.pairs}
    want = {(f"train/p{k:02d}.jpg", f"test/p{k:02d}_pad.jpg") for k in range(len(photos))}
    assert suspects == want, f"{len(suspects & want)} of {len(want)} copies found; {sorted(suspects - want)} false"


def test_only_a_letterboxed_box_is_stretched_back_and_the_pad_policy_stretches_none(tmp_path):
    """A box with bars above and below (4:1 in a square) is looked at stretched back too; a framed photo's box keeps
    its image's shape and is not. Under `--resize-policy pad` the export letterboxed every photo itself, keeping its
    shape, so stretching a box back would squeeze a crop of it another way than its photo: none is."""
    texture = np.random.default_rng(0).integers(0, 200, (400, 400, 3), dtype=np.uint8)  # no gutter: no collage
    wide = np.full((400, 400, 3), 255, np.uint8)
    wide[150:250] = texture[:100]
    framed = np.full((400, 400, 3), 255, np.uint8)
    framed[30:370, 30:370] = texture[:340, :340]
    for name, arr in (("wide.png", wide), ("framed.png", framed)):
        Image.fromarray(arr).save(tmp_path / name)
    grays, frames = zip(*(gray_and_frame(tmp_path / n, n, "t") for n in ("wide.png", "framed.png")), strict=True)
    assert grays[0].shape == (100, 400) and grays[1].shape == (340, 340)
    [(view, k, frame)] = letterbox_views(list(grays), list(frames))
    assert k == 0 and view.shape == (400, 400) and frame == (0, 0, 400, 400)
    looks = every_look(list(grays), list(frames), stretched=False)
    assert len(looks.grays) == 2 and not looks.panel.any()
    assert len(every_look(list(grays), list(frames)).grays) == 3
