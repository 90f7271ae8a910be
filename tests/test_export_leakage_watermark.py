"""The leakage audit on smooth photos with a burned-in watermark: a close-up of one lesion on plain skin (or a
few spots on a smooth gradient) in train and its copy in test, cropped and with opaque lettering burned in
(issue 9's first leak kind), is a suspect; different close-ups under the same lettering at the same place are
not. Opaque lettering's corners are far stronger than plain skin's, and took most of ORB's keypoints: 18 of
these 28 copies were found (`leakage_match._spread`)."""

from __future__ import annotations

import numpy as np
from dedupe_corpus import photo
from leakage_corpus import Parts, exported
from photo_corpus import LEAKS, closeup, watermark

from curate.export.leakage import audit_files

SKIN = (196, 140, 120)


def _smooth_photos() -> list:
    """Single lesions on plain skin at a thumbnail's and a phone's sizes, and smooth synthetic skin photos."""
    return (
        [closeup(k) for k in range(10)]
        + [closeup(700 + k, (1024, 768), skin=SKIN, texture=0.02) for k in range(8)]
        + [closeup(900 + k, (640, 480), texture=0.01) for k in range(4)]
        + [photo(400 + k) for k in range(6)]
    )


def test_watermarked_crops_of_smooth_photos_are_suspects(tmp_path):
    shots = _smooth_photos()
    parts = Parts(tmp_path)
    rng = np.random.default_rng(11)
    for k, img in enumerate(shots):
        parts.put(f"p{k:02d}.jpg", exported(img), "train", k % 5)
        parts.put(f"p{k:02d}_copy.jpg", exported(LEAKS["watermark_crop"](img, rng)), "test", None)
    # and different close-ups of one skin under one site's lettering, at one place: none of them a copy
    for k in range(6):
        stamped = watermark(closeup(300 + k), np.random.default_rng(5))
        parts.put(f"w{k}.jpg", exported(stamped), *(("train", k) if k < 5 else ("test", None)))

    audit = audit_files(tmp_path, parts.entries, "clinic@1.0.0")
    suspects = {(p.a.file, p.b.file) for p in audit.pairs}
    want = {(f"train/p{k:02d}.jpg", f"test/p{k:02d}_copy.jpg") for k in range(len(shots))}
    assert suspects == want, f"{len(suspects & want)} of {len(want)} copies found; {sorted(suspects - want)} false"
