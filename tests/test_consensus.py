"""Consensus rules as pure functions (no server, no database)."""

import pytest

from curate.label.consensus import PAPER, Rating, Rules, consensus_boxes, decide, iou, match_boxes


def r(rater, dx, boxes=(), flags=()):
    return Rating(rater, dx, tuple(boxes), frozenset(flags))


A, B, C = "a@x", "b@x", "c@x"


def test_agreement_is_consensus():
    o = decide([r(A, "mpox"), r(B, "mpox")])
    assert (o.status, o.diagnosis, o.agreement, o.n_raters) == ("agreed", "mpox", 1.0, 2)


def test_one_rating_is_pending():
    assert decide([r(A, "mpox")]).status == "pending"


def test_disagreement_waits_for_review():
    o = decide([r(A, "mpox"), r(B, "genital_herpes")])
    assert (o.status, o.needs_review) == ("pending", True)


@pytest.mark.parametrize(
    "review, status, dx",
    [
        ("mpox", "adjudicated", "mpox"),
        ("genital_herpes", "adjudicated", "genital_herpes"),
        ("dermatosis", "discarded", None),  # the paper: no consensus among three -> discarded
    ],
)
def test_review_decides_or_discards(review, status, dx):
    o = decide([r(A, "mpox"), r(B, "genital_herpes")], r(C, review))
    assert (o.status, o.diagnosis) == (status, dx)


def test_third_opinion_rule_is_configurable():
    o = decide([r(A, "mpox"), r(B, "genital_herpes")], r(C, "dermatosis"), Rules(third_opinion="reviewer"))
    assert (o.status, o.diagnosis) == ("adjudicated", "dermatosis")
    assert PAPER.third_opinion == "discard"


def test_identifiable_features_exclude_whatever_the_diagnosis():
    for ratings, review in [
        ([r(A, "mpox", flags=["identifiable_features"]), r(B, "mpox")], None),
        ([r(A, "mpox"), r(B, "dermatosis")], r(C, "mpox", flags=["identifiable_features"])),
        ([r(A, None, flags=["identifiable_features"])], None),
    ]:
        o = decide(ratings, review)
        assert (o.status, o.exclusion, o.diagnosis) == ("excluded", "identifiable_features", None)


def test_low_quality_needs_both_raters_by_default():
    one = decide([r(A, "mpox", flags=["low_quality"]), r(B, "mpox")])
    both = decide([r(A, "mpox", flags=["low_quality"]), r(B, "mpox", flags=["low_quality"])])
    assert one.status == "agreed" and (both.status, both.exclusion) == ("excluded", "low_quality")
    assert (
        decide([r(A, "mpox", flags=["low_quality"]), r(B, "mpox")], rules=Rules(low_quality="any")).status == "excluded"
    )


def test_iou_and_matching():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    pairs, ra, rb = match_boxes([(0, 0, 10, 10), (50, 50, 60, 60)], [(51, 50, 61, 60), (90, 90, 99, 99)], 0.5)
    assert pairs == [((50, 50, 60, 60), (51, 50, 61, 60))] and ra == [(0, 0, 10, 10)] and rb == [(90, 90, 99, 99)]


def test_agreed_boxes_merge_and_disputed_follow_the_reviewer():
    a = [(0, 0, 10, 10), (50, 50, 60, 60)]
    b = [(0, 0, 12, 10), (80, 80, 90, 90)]
    assert consensus_boxes(a, b, None, 0.5) == [(0, 0, 11, 10), (50, 50, 60, 60), (80, 80, 90, 90)]
    review = [(1, 0, 11, 10), (80, 80, 91, 90)]  # re-draws the agreed lesion and keeps only B's disputed one
    assert consensus_boxes(a, b, review, 0.5) == [(0, 0, 11, 10), (80, 80, 91, 90)]
    o = decide([r(A, "mpox", a), r(B, "herpes", b)], r(C, "mpox", review))
    assert o.status == "adjudicated" and o.boxes == [(0, 0, 11, 10), (80, 80, 91, 90)]


def test_a_review_given_on_another_dispute_counts_only_where_it_still_settles_one():
    """`recompute.stale`: a review answered on (mpox, herpes) after rater A changed to dermatosis no longer counts
    unless it sides with a rater's current diagnosis; the same pair in the other order is the same dispute; a
    review flagging identifiable features always counts (the image stays out: she saw a face)."""
    from curate.label.diagnoses import IDENTIFIABLE, NEITHER
    from curate.label.recompute import stale

    shown = ["mpox", "genital_herpes"]
    now = [r("a", "dermatosis"), r("b", "genital_herpes")]
    assert stale(r("c", "mpox"), shown, now)  # her choice is nobody's now
    assert stale(r("c", NEITHER), shown, now)  # "neither" of a pair that no longer stands
    assert not stale(r("c", "genital_herpes"), shown, now)  # two of three say herpes, whatever A says now
    assert not stale(r("c", "mpox", flags=[IDENTIFIABLE]), shown, now)
    assert not stale(r("c", NEITHER), shown, [r("a", "genital_herpes"), r("b", "mpox")])  # swapped: one dispute
