"""A box with no area locates nothing (pure).

Before: both raters answering "Mpox" with a box of width and height 0 at one point put that point into the
consensus twice ([[40, 40, 40, 40], [40, 40, 40, 40]]): IoU over no union is 0, so the two never matched and
both were kept as disputed boxes; a box drawn wholly outside the picture was clamped to such a point and kept.
"""

from curate.label.consensus import PAPER, Rating, decide
from curate.label.diagnoses import PAPER as DIAGNOSES
from curate.label.results import parse_result

W, H = 400, 400


def _answer(*boxes: tuple[float, float, float, float]) -> list[dict]:
    out = [{"from_name": "diagnosis", "type": "choices", "value": {"choices": ["Mpox"]}}]
    for x, y, w, h in boxes:  # percent, as Label Studio posts them
        value = {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": ["Lesion"]}
        out.append({"from_name": "lesion", "type": "rectanglelabels", "value": value})
    return out


def _consensus_of(a: list[dict], b: list[dict]):
    ratings = [
        Rating(rater, p.diagnosis, tuple(p.boxes))
        for rater, p in (("a@x", parse_result(a, W, H, DIAGNOSES)), ("b@x", parse_result(b, W, H, DIAGNOSES)))
    ]
    return decide(ratings, None, PAPER)


def test_two_raters_zero_area_boxes_are_no_consensus_boxes():
    out = _consensus_of(_answer((10, 10, 0, 0)), _answer((10, 10, 0, 0)))
    assert out.status == "agreed" and out.boxes == []  # before: [(40, 40, 40, 40), (40, 40, 40, 40)]


def test_a_box_outside_the_picture_is_dropped_and_a_real_box_kept():
    p = parse_result(_answer((150, 150, 10, 10), (10, 10, 0, 5), (10, 10, 20, 20)), W, H, DIAGNOSES)
    assert p.boxes == [(40.0, 40.0, 120.0, 120.0)]  # before: (400, 400, 400, 400) and (40, 40, 40, 60) kept too


def test_boxes_without_area_recorded_before_are_no_consensus_boxes():
    """A pull before this fix recorded such boxes: consensus recomputed from them drops them too."""
    point, box = (40.0, 40.0, 40.0, 40.0), (40.0, 40.0, 120.0, 120.0)
    out = decide([Rating("a@x", "mpox", (point, box)), Rating("b@x", "mpox", (point, box))], None, PAPER)
    assert out.boxes == [box]
