"""The leakage audit on a figure of several photos: a photo in train and a figure in test holding it is a
leak. Compared whole, the photo is a quarter of the figure, squeezed, and kept its keypoints in a fifth of
such pairs; each panel is now compared as a picture of its own (`curate.export.leakage.panel_views`)."""

from __future__ import annotations

from leakage_corpus import Parts, exported
from photo_corpus import collage, originals

from curate.export.leakage import LeakageAudit, audit_files, panel_views
from curate.export.leakage_report import render

PHOTOS = (0, 1, 3, 4, 8, 12)  # the astronaut, coffee, the rocket, immunohistochemistry, two tiles


def test_a_photo_in_train_inside_a_figure_in_test_is_a_suspect(tmp_path):
    every = originals()
    photos = [every[k] for k in PHOTOS]
    parts = Parts(tmp_path)
    put, entries = parts.put, parts.entries

    for k, img in enumerate(photos[:5]):
        put(f"photo{k}.jpg", exported(img), "train", k % 2)
    put("figure.jpg", exported(collage(photos[1:5], 1)), "test", None)  # four photos, panels lettered
    put("other.jpg", exported(photos[5]), "test", None)  # a photo in no figure

    audit = audit_files(tmp_path, entries, "atlas@1.0.0")
    suspects = {(p.a.file, p.b.file): p for p in audit.pairs}
    held = {f"train/photo{k}.jpg" for k in range(1, 5)}
    assert {a for a, b in suspects if b == "test/figure.jpg"} == held, sorted(suspects)
    assert set(suspects) <= {(a, "test/figure.jpg") for a in held}  # photo0 and the other photo are in no pair
    assert all(p.panel for p in suspects.values())
    assert LeakageAudit.from_dict(audit.as_dict()).pairs == audit.pairs  # audit.json keeps which pairs are panels
    assert "a panel of the other (a collage)" in render(tmp_path, "atlas@1.0.0", audit)


def test_single_photos_give_no_panel_views():
    import numpy as np

    greys = [np.asarray(img.convert("L").resize((320, 320))) for img in originals()[:15]]
    views, owner = panel_views(greys)
    assert (views, owner) == ([], [])
