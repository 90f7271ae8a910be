"""The leakage audit on one clinic's photos: different lesions photographed beside the same ruler share the
ruler's keypoints, dozens agreeing on one transform, and are left out of the suspects (listed apart), while
re-posted copies of those photos stay suspects."""

from __future__ import annotations

import numpy as np
from leakage_corpus import LEAKS, Parts, exported
from photo_corpus import closeup, with_ruler

from curate.export.leakage import LeakageAudit, audit_files
from curate.export.leakage_report import render

CLINIC = {12: ("train", 2), 38: ("train", 3), 23: ("train", 3), 35: ("train", 0)}  # lesions whose photos share
# 21-43 of the ruler's keypoints (`bench/leakage.py --rulers`)


def test_photos_beside_one_ruler_are_left_out_and_their_copies_stay(tmp_path):
    parts = Parts(tmp_path)
    put, entries = parts.put, parts.entries

    photos = {k: with_ruler(closeup(k), k) for k in CLINIC}
    for k, (split, fold) in CLINIC.items():
        put(f"lesion{k}.jpg", exported(photos[k]), split, fold)
    rng = np.random.default_rng(3)
    put("lesion12_mirrored.jpg", exported(LEAKS["mirror_crop"](photos[12], rng)), "test", None)
    put("lesion23_reposted.jpg", exported(LEAKS["watermark_crop"](photos[23], rng)), "test", None)

    audit = audit_files(tmp_path, entries, "clinic@1.0.0")
    suspects = {(p.a.file, p.b.file) for p in audit.pairs}
    assert suspects == {
        ("train/lesion12.jpg", "test/lesion12_mirrored.jpg"),
        ("train/lesion23.jpg", "test/lesion23_reposted.jpg"),
    }, suspects
    lesion = {e.file: e.file.split("/")[1].split("_")[0].removesuffix(".jpg") for e in entries}
    assert audit.one_object == len(audit.one_object_pairs) > 0
    assert all(lesion[p.a.file] != lesion[p.b.file] for p in audit.one_object_pairs)  # each two different lesions
    assert "match on one object only" in audit.summary()
    assert LeakageAudit.from_dict(audit.as_dict()).one_object_pairs == audit.one_object_pairs  # audit.json keeps them
    page = render(tmp_path, "clinic@1.0.0", audit)
    assert page.count("id='one_object") == len(audit.one_object_pairs) + 1  # the section and each pair
    assert page.index("id='pair1'") < page.index("id='one_object'")


def test_photos_under_one_sites_banner_are_left_out_and_a_copy_stays(tmp_path):
    """One news site's banner across the foot of different close-ups on plain skin gave 32-401 agreeing
    keypoints on it, and there are too few spots on the skin to ask; its agreement lies in a band along one
    side of both images (`leakage_match.banded`), so such a pair is left out, while the site's photo posted
    again as shot stays a suspect."""
    from photo_corpus import banner

    parts = Parts(tmp_path)
    put, entries = parts.put, parts.entries
    site = {1: "logo", 16: "logo", 4: "logo", 19: "logo", 21: "flat", 36: "flat"}  # pairs once suspects
    for n, (k, style) in enumerate(site.items()):
        put(f"site{k}.jpg", exported(banner(closeup(9000 + k), style)), "train" if n % 2 else "test", n // 2)
    put("site1_as_shot.jpg", exported(closeup(9001)), "train", 3)

    audit = audit_files(tmp_path, entries, "site@1.0.0")
    suspects = {(p.a.file, p.b.file) for p in audit.pairs}
    assert suspects == {("train/site1_as_shot.jpg", "test/site1.jpg")}, suspects
    assert audit.one_object > 0  # the banner pairs, listed apart
