"""The leakage audit on an atlas's previews: different photos under one watermark stamped at one place are
left out of the suspects (listed apart), while a real leak among them, and one elsewhere, stay suspects."""

from __future__ import annotations

import io

import numpy as np
from dedupe_corpus import photo
from leakage_corpus import LEAKS, Parts, exported
from photo_corpus import closeup, originals, stamp
from PIL import Image

from curate.export.leakage import LeakageAudit, audit_files
from curate.export.leakage_report import render

STOCK = (5, 3, 45, 36, 114, 29, 64, 90)  # photos whose previews under one logo share 20-57 keypoints
PARTS = [("train", 0), ("train", 1), ("train", 2), ("train", 3), ("train", 4), ("test", None)]


def test_stamped_previews_are_left_out_and_real_leaks_stay(tmp_path):
    photos = originals()
    parts = Parts(tmp_path)
    put, entries = parts.put, parts.entries

    for j, k in enumerate(STOCK):
        put(f"stock_{j}.jpg", exported(stamp(photos[k], "logo")), *PARTS[j % len(PARTS)])
    # a real leak among them: preview 0 (train, fold 0) downloaded again and re-saved, in test
    again = io.BytesIO()
    Image.open(tmp_path / "train" / "stock_0.jpg").save(again, "JPEG", quality=70)
    put("stock_0_again.jpg", again.getvalue(), "test", None)
    # and one elsewhere: a photo in train, its watermarked crop in test
    put("photo.jpg", exported(photo(1, (320, 256))), "train", 2)
    put(
        "photo_copy.jpg",
        exported(LEAKS["watermark_crop"](photo(1, (320, 256)), np.random.default_rng(7))),
        "test",
        None,
    )

    audit = audit_files(tmp_path, entries, "atlas@1.0.0")
    suspects = {(p.a.file, p.b.file) for p in audit.pairs}
    assert suspects == {
        ("train/stock_0.jpg", "test/stock_0_again.jpg"),
        ("train/photo.jpg", "test/photo_copy.jpg"),
    }, suspects
    assert audit.suspects == 2 and audit.stamped == len(audit.stamped_pairs) > 0
    stem = {e.file: e.file.split("/")[1].removesuffix(".jpg").removesuffix("_again") for e in entries}
    assert all(stem[p.a.file] != stem[p.b.file] for p in audit.stamped_pairs)  # each one two different photos
    assert "share only a stamp" in audit.summary()
    assert LeakageAudit.from_dict(audit.as_dict()).stamped_pairs == audit.stamped_pairs  # audit.json keeps them
    page = render(tmp_path, "atlas@1.0.0", audit)
    assert page.count("id='stamped") == len(audit.stamped_pairs) + 1  # the section and each pair, after the suspects
    assert page.index("id='pair1'") < page.index("id='stamped'")


def test_close_ups_of_one_skin_under_one_logo_are_not_suspects(tmp_path):
    """Plain skin leaves the logo's small print, which the agreement misses, most of what the two pictures
    have alike away from it; it is the stamp's, and the skin around it differs (`leakage_match.object_spots`)."""
    parts = Parts(tmp_path)
    shots = [closeup(k) for k in range(12)]
    for k, img in enumerate(shots):
        parts.put(f"atlas_{k}.jpg", exported(stamp(img, "logo")), *PARTS[k % len(PARTS)])
    # a real leak among them: close-up 0 (train, fold 0) cropped from its preview and posted again, in test
    cropped = stamp(shots[0], "logo").crop((0, 20, 360, 300))
    parts.put("atlas_0_crop.jpg", exported(cropped), "test", None)

    audit = audit_files(tmp_path, parts.entries, "atlas@1.0.0")
    suspects = {(p.a.file, p.b.file) for p in audit.pairs}
    assert suspects == {("train/atlas_0.jpg", "test/atlas_0_crop.jpg")}, suspects
    assert audit.one_object > 0 and "match on one object only" in audit.summary()  # listed apart, not dropped
