"""Consensus rules (pure): two blind raters, a reviewer for disputes, as in the paper.

"Any discrepancies in image diagnosis between the 2 clinicians were reviewed by a
third clinician. If consensus on the diagnosis could not be reached between the
3 clinicians, the image was discarded." (Soe et al. 2024, Data Labeling)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from curate.label.diagnoses import IDENTIFIABLE, LOW_QUALITY, NEITHER
from curate.label.results import Box, has_area


@dataclass(frozen=True)
class Rating:
    rater: str
    diagnosis: str | None
    boxes: tuple[Box, ...] = ()
    flags: frozenset[str] = frozenset()
    comment: str | None = field(default=None, compare=False)  # shown to the reviewer; no part of any rule


class ThirdOpinion(StrEnum):
    """When the reviewer picks a diagnosis neither rater gave."""

    discard = "discard"  # the paper: no consensus, the image is discarded
    reviewer = "reviewer"  # the reviewer's diagnosis wins


class LowQuality(StrEnum):
    """When the "Image quality too low" flag excludes an image (only the two raters' flags count)."""

    any = "any"  # either rater's flag excludes it
    both = "both"  # both raters must flag it (default)
    never = "never"  # the flag is recorded but never excludes


@dataclass(frozen=True)
class Rules:
    """The consensus rules; the ones in force are recorded in the catalogue (curate/label/rules.py)."""

    third_opinion: ThirdOpinion = ThirdOpinion.discard
    low_quality: LowQuality = LowQuality.both
    iou_threshold: float = 0.5


PAPER = Rules()


@dataclass(frozen=True)
class Outcome:
    status: str  # pending | agreed | adjudicated | discarded | excluded
    diagnosis: str | None = None
    boxes: list[Box] = field(default_factory=list)
    exclusion: str | None = None
    method: str = ""
    n_raters: int = 0
    agreement: float | None = None
    needs_review: bool = False


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(a: list[Box], b: list[Box], threshold: float) -> tuple[list[tuple[Box, Box]], list[Box], list[Box]]:
    """Greedy one-to-one matching by IoU (highest first); returns (pairs, unmatched a, unmatched b)."""
    cands = sorted(((iou(x, y), i, j) for i, x in enumerate(a) for j, y in enumerate(b)), reverse=True)
    used_a, used_b, pairs = set(), set(), []
    for score, i, j in cands:
        if score < threshold:
            break
        if i in used_a or j in used_b:
            continue
        used_a.add(i), used_b.add(j)
        pairs.append((a[i], b[j]))
    return pairs, [x for i, x in enumerate(a) if i not in used_a], [y for j, y in enumerate(b) if j not in used_b]


def merge(x: Box, y: Box) -> Box:
    return tuple(round((p + q) / 2, 2) for p, q in zip(x, y, strict=True))  # type: ignore[return-value]


def consensus_boxes(a: list[Box], b: list[Box], review: list[Box] | None, threshold: float) -> list[Box]:
    """Agreed boxes are merged; boxes in dispute follow the reviewer when there is one, else both are kept. A box
    without area (recorded by a pull before `parse_result` dropped such boxes) is no box (`has_area`)."""
    a, b = [x for x in a if has_area(x)], [y for y in b if has_area(y)]
    review = None if review is None else [r for r in review if has_area(r)]
    pairs, rest_a, rest_b = match_boxes(list(a), list(b), threshold)
    agreed = [merge(x, y) for x, y in pairs]
    if review is None:
        disputed = rest_a + rest_b
    else:  # the reviewer's boxes that are not one of the agreed lesions settle the disputed ones
        _, extra, _ = match_boxes(list(review), agreed, threshold)
        disputed = extra
    return sorted(agreed + disputed)


def decide(ratings: list[Rating], review: Rating | None = None, rules: Rules = PAPER) -> Outcome:
    """Consensus for one image from its two rater ratings (in round order) and an optional review."""
    everyone = ratings + ([review] if review else [])
    n = len(everyone)
    if any(IDENTIFIABLE in r.flags for r in everyone):
        return Outcome("excluded", exclusion=IDENTIFIABLE, method="flag", n_raters=n)
    if len(ratings) < 2:
        return Outcome("pending", method="awaiting_raters", n_raters=n)
    a, b = ratings[0], ratings[1]
    lq = [LOW_QUALITY in r.flags for r in (a, b)]
    if (rules.low_quality == LowQuality.any and any(lq)) or (rules.low_quality == LowQuality.both and all(lq)):
        return Outcome("excluded", exclusion=LOW_QUALITY, method="flag", n_raters=n)
    if a.diagnosis == b.diagnosis and a.diagnosis is not None:
        boxes = consensus_boxes(list(a.boxes), list(b.boxes), None, rules.iou_threshold)
        return Outcome("agreed", a.diagnosis, boxes, method="raters_agree", n_raters=n, agreement=1.0)
    if review is None or review.diagnosis is None:
        return Outcome("pending", method="awaiting_review", n_raters=n, needs_review=True)
    if review.diagnosis == NEITHER:  # the reviewer supports neither rater: no consensus
        return Outcome("discarded", method="reviewer_neither", n_raters=n, agreement=0.0)
    review_boxes = list(review.boxes)
    if review.diagnosis in (a.diagnosis, b.diagnosis):
        boxes = consensus_boxes(list(a.boxes), list(b.boxes), review_boxes, rules.iou_threshold)
        return Outcome("adjudicated", review.diagnosis, boxes, method="reviewer_sided", n_raters=n, agreement=2 / 3)
    if rules.third_opinion == ThirdOpinion.reviewer:
        return Outcome(
            "adjudicated",
            review.diagnosis,
            sorted(b for b in review_boxes if has_area(b)),
            method="reviewer_decided",
            n_raters=n,
            agreement=1 / 3,
        )
    return Outcome("discarded", method="three_way_split", n_raters=n, agreement=0.0)
