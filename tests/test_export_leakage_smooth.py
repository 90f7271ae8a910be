"""The leakage audit on close-ups of one lesion on plain skin, a phone's photo exported at 320 px: a re-posted
copy across splits is a suspect (issue 9's three leak kinds), and different close-ups of the same skin, whose
lesions' outlines fit one another once turned, are not."""

from __future__ import annotations

import numpy as np
from leakage_corpus import LEAKS, Parts, exported
from photo_corpus import closeup
from PIL import Image

from curate.export import leakage_match
from curate.export.leakage import audit_files, content_box, gray_content

SKIN = (196, 140, 120)
KINDS = ("watermark_crop", "mirror_crop", "white_frame")


def test_copies_of_close_ups_on_plain_skin_are_suspects_and_other_close_ups_are_not(tmp_path):
    shots = [closeup(9100 + k, (1024, 768), skin=SKIN, texture=0.02) for k in range(8)]
    parts = Parts(tmp_path)
    for k, img in enumerate(shots):
        parts.put(f"c{k}.jpg", exported(img), "train", k % 5)
    rng = np.random.default_rng(3)
    for k in range(2):  # two of them re-posted, watermarked and cropped, mirrored and cropped, framed, in test
        for kind in KINDS:
            parts.put(f"c{k}_{kind}.jpg", exported(LEAKS[kind](shots[k], rng)), "test", None)

    # smooth enough that the audit raises their texture before looking for corners (`leakage_match._textured`)
    assert all(f.raised for f in leakage_match.features([gray_content(tmp_path / "train/c0.jpg", "c0", "t")]))
    # plain skin is no frame: the box keeps it (cut to the lesion, the framed copy's box, which keeps the skin,
    # no longer matched the photo's)
    assert content_box(np.asarray(Image.open(tmp_path / "train/c0.jpg"))) == (0, 0, 320, 320)

    audit = audit_files(tmp_path, parts.entries, "clinic@1.0.0")
    suspects = {(p.a.file, p.b.file) for p in audit.pairs}
    assert suspects == {(f"train/c{k}.jpg", f"test/c{k}_{kind}.jpg") for k in range(2) for kind in KINDS}, suspects
    assert all(p.mirrored == ("mirror" in p.b.file) for p in audit.pairs)
