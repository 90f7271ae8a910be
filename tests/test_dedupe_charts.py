"""A clinic's photos beside one colour chart: the chart holds most of a close-up's keypoints, so too few lie
away from it for `verify.one_object` to ask them; the pixels away from it are asked instead
(`verify.unlike_away`). Different lesions beside the chart are never merged; a cropped re-post still joins
its photo; a copy's own edits away from the agreement (a drawn ring, a black bar, a caption, a tone change)
do not read as a different picture."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from dedupe_corpus import clinic_beside, merged
from photo_corpus import closeup, with_chart
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

from curate.dedupe import verify
from curate.dedupe.cluster import STAMPED

# close-ups merged beside the chart before the pixels were asked: 7 with 12 (and its re-post), 19 with 20
CLINIC = (7, 12, 13, 15, 17, 19, 20, 25, 31)


def test_different_lesions_beside_one_colour_chart_are_never_merged(tmp_path):
    """Nine close-ups and a photo (coffee) beside one chart; one close-up posted again, cropped."""
    cluster, _, pairs = clinic_beside(tmp_path, with_chart, CLINIC, 12)
    assert merged(cluster) == [{"lesion_12.jpg", "lesion_12_posted.jpg"}]
    (kind,) = [p[2] for p in pairs if {p[0], p[1]} == {"lesion_12.jpg", "lesion_12_posted.jpg"}]
    assert kind == "hash"
    by_pixels = [p for p in pairs if p[2] == "review" and verify.pixels_said(p[3])]
    assert by_pixels  # the chart's agreement is shown to the steward, with why it was not merged
    for a, b, _, reason in by_pixels:
        assert "photo.jpg" in (a, b) or a.split("_")[1] != b.split("_")[1]
        assert reason.startswith(verify.ONE_OBJECT)
        # stored marked as a stamp's (`pairs.stamps`: the mark before it, cut to 200 characters) it still links
        assert verify.pixels_said((STAMPED + reason)[:200])


IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
CHART = np.array([[20, 20], [110, 20], [110, 90], [20, 90]], np.float32)  # the agreement: one corner of b


def _features(img: Image.Image) -> verify.Features:
    return verify.features(np.asarray(img.convert("L")), verify.WORK)


def _edited(img: Image.Image, edit) -> Image.Image:
    out = img.copy()
    edit(ImageDraw.Draw(out))
    return out


def test_a_different_lesion_away_from_the_agreement_is_unlike():
    photo = _features(closeup(5))
    share = verify.unlike_away(IDENTITY, photo, _features(closeup(25)), CHART)
    assert share is not None and share > verify.UNLIKE_SHARE


def _caption(d: ImageDraw.ImageDraw) -> None:
    font = ImageFont.load_default(size=28)
    d.text((120, 200), "atlas.example", fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0))


EDITS = {  # each with the rule that keeps it from reading as unlike: it does, that rule turned off
    "ring": (lambda d: d.ellipse((110, 60, 250, 200), outline=(230, 20, 20), width=10), {"UNLIKE_THIN": 0}),
    "caption": (_caption, {"UNLIKE_THIN": 0}),
    "bar": (lambda d: d.rectangle((0, 190, 320, 256), fill=(0, 0, 0)), {"BLACK": -1}),
}


@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
def test_a_copys_own_edits_away_from_the_agreement_are_not_unlike(edit, monkeypatch):
    """A clinician's ring, a site's caption (strokes under `UNLIKE_THIN`) and a black bar (fill) on the
    copy; with its rule off, the same edit would send the copy to review."""
    draw, rule_off = EDITS[edit]
    img = closeup(5)
    photo, copy = _features(img), _features(_edited(img, draw))
    share = verify.unlike_away(IDENTITY, photo, copy, CHART)
    assert share is not None and share <= verify.UNLIKE_SHARE
    for name, value in rule_off.items():
        monkeypatch.setattr(verify, name, value)
    assert verify.unlike_away(IDENTITY, photo, copy, CHART) > verify.UNLIKE_SHARE


def test_a_darker_copy_and_a_mirrored_one_are_not_unlike():
    img = closeup(5)
    photo = _features(img)
    darker = _features(ImageEnhance.Brightness(img).enhance(0.7))
    assert verify.unlike_away(IDENTITY, photo, darker, CHART) <= verify.UNLIKE_SHARE
    # a mirrored copy: the photo's features mirrored (as `match` lays them) against the copy's own
    mirror = _features(ImageOps.mirror(img))
    assert verify.unlike_away(IDENTITY, verify.mirrored(photo), mirror, CHART) <= verify.UNLIKE_SHARE


def test_a_transform_fitted_on_the_chart_alone_is_refined_on_the_pixels():
    """Turned 9 degrees about the chart: right on it, 8 px off (at 64 px) at the far corner, where a
    dark region's edge then reads as unlike; ECC brings that corner back."""
    rng = np.random.default_rng(3)
    img = Image.fromarray(np.clip(170 + rng.normal(0, 4, (256, 320)), 0, 255).astype(np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(img)
    draw.polygon([(150, 256), (200, 60), (320, 40), (320, 256)], fill=(60, 60, 60))
    draw.ellipse((40, 150, 120, 230), fill=(90, 90, 90))
    f = _features(img)
    turn = np.deg2rad(9)
    r = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    centre = CHART.mean(0).astype(np.float64)
    wrong = np.hstack([r, (centre - r @ centre)[:, None]])
    assert verify.unlike_away(wrong, f, f, CHART) <= verify.UNLIKE_SHARE
    h, w = f.small.shape
    to_small = np.diag([w / f.width, h / f.height])
    onto = to_small @ wrong @ np.linalg.inv(np.diag([w / f.width, h / f.height, 1.0]))
    back = cv2.invertAffineTransform(onto).astype(np.float32)
    far = np.array([w - 1.0, h - 1.0])
    fit = verify._refined(back, f.small, f.small, CHART.astype(np.float64) @ to_small.T)
    assert np.abs(back[:, :2] @ far + back[:, 2] - far).max() > 5
    assert np.abs(fit[:, :2] @ far + fit[:, 2] - far).max() < 1


def test_an_agreement_over_most_of_the_pictures_leaves_nothing_to_ask():
    photo = _features(closeup(5))
    whole = np.array([[5, 5], [315, 5], [315, 250], [5, 250]], np.float32)
    assert verify.unlike_away(IDENTITY, photo, _features(closeup(25)), whole) is None


@pytest.mark.parametrize(
    ("reason", "linked"),
    [
        (f"{verify.ONE_OBJECT} (12% {verify.UNLIKE_SAID}: a colour chart or label both show?); 30 matching", True),
        (
            f"{verify.ONE_OBJECT} (a ruler or label both show?); 0 of 40 keypoints away from it alike; 30 matching",
            False,
        ),
        ("near the threshold: few matching keypoints (12 matching keypoints)", False),
    ],
    ids=["pixels", "keypoints", "near"],
)
def test_a_same_the_pixels_put_to_review_still_links_its_tentative_group(reason, linked):
    """Pictures 1-2 ("review") and 2-3 ("same"): the pixels' review keeps 1, 2 and 3 one tentative group, so
    its missing pair 1-3 is verified as before the rule (a chart's "same"s taken out would otherwise split a
    group too large to complete into groups small enough); any other review links nothing."""
    from curate.dedupe.pairs import Pair, complete

    class Batch:
        def __init__(self):
            self.asked = []

        def check_many(self, jobs, thorough=False):
            self.asked += [(a, b) for a, b, _, _ in jobs]
            return [verify.Verdict(verify.SAME, "22 matching keypoints", verify.Geometry(22))] * len(jobs)

        def swapped(self, a, b):  # as `Verifier.swapped` for pictures ranked by id
            return a > b

    pairs = {(1, 2): Pair(1, 2, "review", 0.9, None, 30, reason), (2, 3): Pair(2, 3, "hash", 0.9, None, 30, "30")}
    batch = Batch()
    complete(batch, pairs)
    assert batch.asked == ([(1, 3)] if linked else [])
    assert verify.pixels_said(reason) is linked


def test_the_last_runs_links_are_counted_as_this_runs():
    """An incremental run completes only groups whose links changed (`pairs._changed`): a pixel review stored
    by the last run, marked as a stamp's since, is the same link now, not one gained or lost."""
    from curate.dedupe.pairs import Pair, _changed, links

    said = f"{verify.ONE_OBJECT} (9% {verify.UNLIKE_SAID}: a colour chart or label both show?); " + "x" * 150
    stored = Pair(1, 2, "review", 0.9, None, 30, (STAMPED + said)[:200])
    assert links(stored) and not links(Pair(1, 2, "review", 0.9, None, 30, said.replace(verify.UNLIKE_SAID, "")))
    assert _changed({(1, 2)}, {(1, 2): stored}) == set()
    assert _changed(set(), {(1, 2): stored}) == {1, 2}
