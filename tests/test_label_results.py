"""Parsing Label Studio results and computing agreement (pure)."""

import pytest

from curate.errors import LabelError
from curate.label.agreement import agreement
from curate.label.config import LABEL_CONFIG
from curate.label.diagnoses import FLAGS, PAPER
from curate.label.results import parse_result, rect_to_pixels


def test_label_config_matches_the_vocabulary():
    xml = LABEL_CONFIG.read_text()
    for text in list(PAPER.names.values()) + list(FLAGS.values()):
        assert f'<Choice value="{text}"' in xml
    for name in ('name="diagnosis"', 'name="lesion"', 'name="flags"', 'name="comment"', 'name="image"'):
        assert name in xml


def test_parse_full_result():
    res = [
        {"from_name": "diagnosis", "type": "choices", "value": {"choices": ["Secondary syphilis"]}},
        {
            "from_name": "lesion",
            "type": "rectanglelabels",
            "value": {"x": 50, "y": 25, "width": 10, "height": 50, "rotation": 0},
        },
        {"from_name": "flags", "type": "choices", "value": {"choices": ["Image quality too low"]}},
        {"from_name": "comment", "type": "textarea", "value": {"text": ["  blurry  "]}},
    ]
    p = parse_result(res, 200, 100, PAPER)
    assert p.diagnosis == "secondary_syphilis" and p.flags == ["low_quality"] and p.comment == "blurry"
    assert p.boxes == [(100.0, 25.0, 120.0, 75.0)]
    assert PAPER.binary_label(p.diagnosis) == "non_mpox"


def test_a_relation_between_two_boxes_is_not_an_answer():
    """The editor's "Create relation" (Alt+R) saves a result item without a control; it stopped every pull."""
    box = {"x": 10, "y": 10, "width": 20, "height": 20, "rotation": 0, "rectanglelabels": ["Lesion"]}
    res = [
        {"from_name": "diagnosis", "type": "choices", "value": {"choices": ["Mpox"]}},
        {"id": "b1", "from_name": "lesion", "type": "rectanglelabels", "value": box},
        {"id": "b2", "from_name": "lesion", "type": "rectanglelabels", "value": {**box, "x": 50}},
        {"from_id": "b1", "to_id": "b2", "type": "relation", "direction": "right", "labels": []},
    ]
    p = parse_result(res, 100, 100, PAPER)
    assert p.diagnosis == "mpox" and len(p.boxes) == 2


def test_a_box_of_negative_width_and_height_is_the_same_box():
    """Posted through the API, {"width": 300, "height": -4} at y 2 was recorded with y1 < y0 (the export's crop
    takes the min and max over an image's boxes, so such a box widened it)."""
    flipped = rect_to_pixels({"x": 60, "y": 30, "width": -20, "height": -10}, 100, 100)
    assert flipped == rect_to_pixels({"x": 40, "y": 20, "width": 20, "height": 10}, 100, 100) == (40, 20, 60, 30)


def test_rotated_rectangle_becomes_its_bounding_box():
    x0, y0, x1, y1 = rect_to_pixels({"x": 50, "y": 0, "width": 10, "height": 10, "rotation": 90}, 100, 100)
    assert (x0, y0, x1, y1) == pytest.approx((40, 0, 50, 10))


@pytest.mark.parametrize(
    "res, message",
    [
        (
            [{"from_name": "diagnosis", "value": {"choices": ["Chickenpox"]}}],
            "'Chickenpox' is not declared in the workspace settings",
        ),
        ([{"from_name": "flags", "value": {"choices": ["Blurry"]}}], "not in the toolkit's label config"),
        ([{"from_name": "severity", "value": {"choices": ["High"]}}], "not in the toolkit's label config"),
    ],
)
def test_labels_the_config_does_not_have_are_errors(res, message):
    with pytest.raises(LabelError, match=message):
        parse_result(res, 10, 10, PAPER)


def test_kappa_and_confusion():
    ag = agreement(
        [("mpox", "mpox"), ("mpox", "dermatosis"), ("healthy_skin", "healthy_skin"), ("dermatosis", "dermatosis")],
        PAPER.codes,
    )
    assert ag.n == 4 and ag.observed == 0.75 and ag.kappa == pytest.approx(0.6364, abs=1e-4)
    assert ag.per_diagnosis["healthy_skin"] == 1.0 and ag.per_diagnosis["genital_warts"] is None
    assert ag.matrix[ag.labels.index("mpox")][ag.labels.index("dermatosis")] == 1
    assert agreement([], PAPER.codes).kappa is None
    # a code the settings no longer declare keeps its pairs (appended after the declared list)
    gone = agreement([("mpox", "measles"), ("measles", "measles")], PAPER.codes)
    assert gone.labels[-1] == "measles" and gone.n == 2 and gone.matrix[-1][-1] == 1


D, BOX, FLAG, NOTE = "diagnosis", "lesion", "flags", "comment"


@pytest.mark.parametrize(
    "result",
    [
        [{"from_name": D, "type": "choices", "value": {"choices": [{"x": 1}]}}],
        [{"from_name": D, "type": "choices", "value": ["Mpox"]}],
        [{"from_name": BOX, "type": "rectanglelabels", "value": {"x": "abc", "y": 1, "width": 2, "height": 3}}],
        [{"from_name": BOX, "type": "rectanglelabels", "value": {"y": 1, "width": 2, "height": 3}}],
        [{"from_name": BOX, "type": "rectanglelabels", "value": {"x": "nan", "y": 1, "width": 2, "height": 3}}],
        [{"from_name": NOTE, "type": "textarea", "value": {"text": [1, 2]}}],
        [{"from_name": FLAG, "type": "choices", "value": {"choices": [["x"]]}}],
        {"from_name": D},
        [{"from_name": D, "type": "choices", "value": {"choices": "Mpox"}}],  # was read as diagnosis 'M'
        [{"from_name": NOTE, "type": "textarea", "value": {"text": "seen"}}],  # was kept as "s\ne\ne\nn"
        [
            {"from_name": D, "type": "choices", "value": {"choices": ["Mpox"]}},
            {"from_name": D, "type": "choices", "value": {"choices": ["Genital herpes"]}},  # the last was recorded
        ],
    ],
    ids=[
        "choice-object",
        "value-list",
        "x-text",
        "x-missing",
        "x-nan",
        "comment-numbers",
        "flag-list",
        "not-a-list",
        "choices-a-string",
        "comment-a-string",
        "diagnosis-twice",
    ],
)
def test_an_answer_of_the_wrong_shape_is_a_label_error_naming_it(result):
    """A rater can post any JSON through Label Studio's API. Before: an unexpected TypeError/KeyError/ValueError
    that named no annotation stopped every pull, and a NaN box was kept (the export then dropped its crop)."""
    with pytest.raises(LabelError, match="an answer of the wrong shape"):
        parse_result(result, 100, 100, PAPER, "rating")


KEEPS, NEITHER = "Keep the current consensus", "Neither (discard this image)"


@pytest.mark.parametrize(
    "kind, choice", [("rating", KEEPS), ("rating", NEITHER), ("review", KEEPS), ("audit", NEITHER)]
)
def test_a_choice_of_another_rounds_kind_is_refused(kind, choice):
    """Before: two raters posting "Keep the current consensus" made an image "agreed" on a diagnosis named keep."""
    res = [{"from_name": D, "type": "choices", "value": {"choices": [choice]}}]
    with pytest.raises(LabelError, match=f"is not an answer in a {kind} round"):
        parse_result(res, 100, 100, PAPER, kind)
    right = "review" if choice.startswith("Neither") else "audit"
    assert parse_result(res, 100, 100, PAPER, right).diagnosis in ("neither", "keep")
