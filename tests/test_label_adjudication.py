"""The reviewer's view (pure): anonymised raters, the offered choices, the raters' boxes, Neither."""

from curate.label.adjudication import RULES, RaterView, adjudication_config, blind_order, review_task
from curate.label.consensus import Rating, Rules, decide
from curate.label.diagnoses import NEITHER, NEITHER_CHOICE, PAPER, RATER_BOXES_CONTROL
from curate.label.report_html import display_name
from curate.label.results import parse_result

A = RaterView("Mpox", ((20.0, 10.0, 80.0, 50.0),), ("Image quality too low",), "umbilicated")
B = RaterView("Dermatosis", (), (), None)


def test_paper_rule_offers_the_two_disputed_diagnoses_and_neither():
    t = review_task("/data/x.jpg", 7, [A, B], list(PAPER.names.values()), "discard", 200, 100)
    assert [o["value"] for o in t["data"]["options"]] == ["Mpox", "Dermatosis", NEITHER_CHOICE]
    assert t["data"]["rule"] == RULES["discard"] and "discarded" in t["data"]["rule"]
    assert t["data"]["summary"].splitlines() == [
        "Rater 1: Mpox · 1 box · flags: Image quality too low · comment: “umbilicated”",
        "Rater 2: Dermatosis · 0 boxes · flags: none",
    ]
    (region,) = t["predictions"][0]["result"]
    assert region["from_name"] == RATER_BOXES_CONTROL and region["readonly"] is True
    assert region["value"]["rectanglelabels"] == ["Rater 1"]
    assert (region["value"]["x"], region["value"]["y"], region["value"]["width"], region["value"]["height"]) == (
        10,
        10,
        30,
        40,
    )


def test_reviewer_rule_offers_every_diagnosis_and_says_so():
    t = review_task("/data/x.jpg", 7, [A, B], list(PAPER.names.values()), "reviewer", 200, 100)
    assert [o["value"] for o in t["data"]["options"]] == [*PAPER.names.values(), NEITHER_CHOICE]
    assert "even if neither rater chose it" in t["data"]["rule"]


def test_config_takes_choices_from_the_task():
    xml = adjudication_config()
    assert 'value="$options"' in xml and 'choice="single-radio"' in xml and "Mpox" not in xml


def test_neither_discards_and_rater_boxes_are_not_the_reviewers():
    p = parse_result(
        [
            {"from_name": "diagnosis", "value": {"choices": [NEITHER_CHOICE]}},
            {"from_name": RATER_BOXES_CONTROL, "value": {"x": 1, "y": 1, "width": 5, "height": 5}},
        ],
        100,
        100,
        PAPER,
    )
    assert p.diagnosis == NEITHER and p.boxes == []
    a, b = Rating("a", "mpox"), Rating("b", "dermatosis")
    for rule in ("discard", "reviewer"):
        o = decide([a, b], Rating("c", NEITHER), Rules(third_opinion=rule))
        assert (o.status, o.diagnosis, o.method) == ("discarded", None, "reviewer_neither")


def test_the_labelling_report_names_the_reviewers_neither_as_she_chose_it():
    assert (
        display_name(NEITHER, PAPER.names) == NEITHER_CHOICE
        and display_name("genital_herpes", PAPER.names) == "Genital herpes"
    )


def test_no_rater_is_rater_1_on_every_image():
    """Before, round order made one clinician "Rater 1" on every image a reviewer saw. Now each image draws its
    order: either clinician comes first on about half, whichever order the round lists them in."""
    a, b = "ana@clinic.example", "ben@clinic.example"
    first = [blind_order(i, [a, b])[0] for i in range(1, 201)]
    assert 70 <= first.count(a) <= 130, first.count(a)
    assert first == [blind_order(i, [b, a])[0] for i in range(1, 201)]
