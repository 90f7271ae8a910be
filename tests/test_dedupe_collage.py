"""Collages: several different photos in one figure, split by flat gutters (`curate.dedupe.decode.panels`).
A photo and a figure holding it are different pictures, one inside the other: never merged (a two-panel
figure was "same" with each of its photos, at 49-56 % of the larger picture), and listed to review,
since either in train and the other in test is a leak (a four-panel one was "different" on up to 143
matching keypoints: a quarter of the larger picture looked like a detail of it)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from dedupe_corpus import dedupe_files
from photo_corpus import closeup, collage, originals

from curate.dedupe import decode, verify
from curate.dedupe.review import write_review
from curate.dedupe.run import DedupeOptions, run_dedupe
from curate.workspace import Workspace

# textured photos and tiles, each a different picture: the astronaut, coffee, the rocket, immunohistochemistry,
# a camera-man tile, gravel and brick tiles, a Hubble tile
PICKS = (0, 1, 3, 4, 8, 12, 40, 60)


def _photos(*ks: int):
    every = originals()
    return [every[k] for k in ks]


def _grey(img) -> np.ndarray:
    return np.asarray(img.convert("L"))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_a_figures_panels_are_found_one_per_photo(seed):
    n = (2, 3, 4)[seed % 3]
    photos = _photos(*PICKS[seed % 4 : seed % 4 + n])
    fig = collage(photos, seed)
    found = decode.panels(_grey(fig))
    assert len(found) == n
    # the panels tile the figure, gutters aside, and no two overlap
    area = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in found)
    assert 0.8 * fig.width * fig.height <= area <= fig.width * fig.height
    assert all(a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1] for a in found for b in found if a != b)


def test_single_photos_and_closeups_have_no_panels():
    pictures = [img for img in originals()[:15] if max(img.size) >= decode.PANEL_PX]
    pictures += [closeup(k, (512, 384)) for k in range(8)]
    assert len(pictures) >= 20
    assert [k for k, img in enumerate(pictures) if decode.panels(_grey(img))] == []


def test_a_match_inside_one_panel_is_for_review_a_match_across_panels_is_not():
    figure = verify.Features(
        np.zeros((0, 2), np.float32), None, 400, 200, panels=((0, 0, 195, 200), (205, 0, 400, 200))
    )
    photo = verify.Features(np.zeros((0, 2), np.float32), None, 195, 200)
    inside = verify.Geometry(60, 80, 16, 1.0, 0.49, transform=(1, 0, 0, 0, 1, 0), spot=(5, 5, 190, 195))
    same = verify.Verdict(verify.SAME, "60 matching keypoints", inside)
    assert verify.paneled(same, photo, figure).decision == verify.REVIEW
    assert verify.paneled(same, photo, figure).reason.startswith(verify.PANEL)
    # the other way round (the figure as `a`): its panel is found through the inverse map
    back = verify.Geometry(60, 80, 16, 1.0, 0.49, transform=(1, 0, 0, 0, 1, 0), spot=(5, 5, 190, 195))
    assert verify.paneled(verify.Verdict(verify.SAME, "", back), figure, photo).decision == verify.REVIEW
    # a bar across one photo looks like a gutter, but its copy matches on both sides of it: "same" stands
    across = verify.Geometry(90, 120, 16, 1.0, 1.0, transform=(1, 0, 0, 0, 1, 0), spot=(5, 5, 395, 195))
    whole = verify.Features(np.zeros((0, 2), np.float32), None, 400, 200)
    assert verify.paneled(verify.Verdict(verify.SAME, "", across), whole, figure).decision == verify.SAME


def test_a_photo_and_a_figure_holding_it_are_listed_to_review_never_merged(tmp_path):
    photos = _photos(*PICKS[:6])
    files = {f"photo_{k}.jpg": img for k, img in enumerate(photos)}
    files["figure_two.jpg"] = collage(photos[:2], 0)
    files["figure_four.jpg"] = collage(photos[2:6], 1)
    small = files["figure_two.jpg"]
    files["figure_two_again.jpg"] = small.resize((round(small.width * 0.8), round(small.height * 0.8)))
    cluster, _, pairs = dedupe_files(tmp_path, files)
    members = defaultdict(set)
    for name, key in cluster.items():
        members[key].add(name)
    # no cluster holds a figure and a photo; the figure's own re-post joins it
    assert all(
        not ({n for n in m if n.startswith("figure")} and {n for n in m if n.startswith("photo")})
        for m in members.values()
    )
    assert cluster["figure_two.jpg"] == cluster["figure_two_again.jpg"]
    held = {frozenset((a, b)) for a, b, kind, reason in pairs if kind == "review" and reason.startswith(verify.PANEL)}
    wanted = [("figure_two.jpg", f"photo_{k}.jpg") for k in (0, 1)] + [
        ("figure_four.jpg", f"photo_{k}.jpg") for k in range(2, 6)
    ]
    assert sum(frozenset(p) in held for p in wanted) >= 5, sorted(tuple(sorted(p)) for p in held)
    ws = Workspace.open(tmp_path / "ws")
    again = run_dedupe(ws, DedupeOptions(min_side=1, workers=1))
    assert again.collages == 3 and any("3 pictures are collages" in n for n in again.notes)  # the steward is told
    sheet = write_review(ws).read_text()
    assert sheet.count("a collage and a photo in it: keep one of them (merge), or both (split)") >= 5


def test_a_smooth_photo_in_a_figure_is_found_by_its_panel_cut_out(tmp_path):
    """In the whole figure a smooth photo (a quarter of it) keeps too few keypoints to match its photo: the
    panel most alike by thumbnails is cut out and looked at as a picture of its own (`Verifier._panel_for`).
    Two figures of `bench/dedupe.py --collages` whose photo was "different" from them before."""
    every = originals()
    picks = [int(k) for k in np.random.default_rng(11).choice(len(every), 60, replace=False)]  # the benchmark's
    files = {"smooth_a.jpg": every[picks[11]], "smooth_b.jpg": every[picks[49]]}
    files["figure_a.jpg"] = collage([every[k] for k in picks[11:14]], 4)
    files["figure_b.jpg"] = collage([every[k] for k in picks[47:50]], 16)
    cluster, _, pairs = dedupe_files(tmp_path, files)
    assert len(set(cluster.values())) == 4  # nothing merged
    why = {frozenset((a, b)): reason for a, b, kind, reason in pairs if kind == "review"}
    for photo, figure, panel in (("smooth_a.jpg", "figure_a.jpg", 1), ("smooth_b.jpg", "figure_b.jpg", 3)):
        reason = why.get(frozenset((photo, figure)), "")
        assert reason.startswith(verify.PANEL) and f"(panel {panel} of 3:" in reason, (photo, reason)
