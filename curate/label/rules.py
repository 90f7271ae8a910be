"""The consensus rules in force, recorded in the catalogue (table `label_rules`).

The rules live beside the consensus they produce, not in the workspace settings: consensus is
recomputed by `label pull`, `label push` and `label adjudicate`, and a catalogue shared by several
workspaces (PostgreSQL) must give the same outcome from each. `curate label pull --low-quality …
--third-opinion …` changes them (one row per change, so the history is kept); every later
recomputation uses the newest row, and the paper's rules apply until a first change.
"""

from __future__ import annotations

from dataclasses import replace

from sqlmodel import Session, select

from curate.label.consensus import PAPER, LowQuality, Rules, ThirdOpinion
from db.models.label import LabelRules


def recorded_rules(s: Session) -> Rules:
    row = s.exec(select(LabelRules).order_by(LabelRules.id.desc()).limit(1)).first()
    if row is None:
        return PAPER
    return replace(PAPER, third_opinion=ThirdOpinion(row.third_opinion), low_quality=LowQuality(row.low_quality))


def settle_rules(
    s: Session, low_quality: LowQuality | None = None, third_opinion: ThirdOpinion | None = None
) -> tuple[Rules, bool]:
    """The recorded rules with the given changes; a change is recorded (in the caller's transaction)."""
    current = recorded_rules(s)
    wanted = replace(
        current,
        low_quality=LowQuality(low_quality or current.low_quality),
        third_opinion=ThirdOpinion(third_opinion or current.third_opinion),
    )
    if wanted == current:
        return current, False
    s.add(LabelRules(third_opinion=wanted.third_opinion.value, low_quality=wanted.low_quality.value))
    s.flush()
    return wanted, True


EXPLAIN = {
    LowQuality.any: "either rater's low-quality flag excludes an image",
    LowQuality.both: "an image is excluded when both raters flag low quality",
    LowQuality.never: "low-quality flags are recorded but exclude nothing",
    ThirdOpinion.discard: "a reviewer diagnosis matching neither rater discards the image",
    ThirdOpinion.reviewer: "a reviewer diagnosis matching neither rater is the consensus",
}


def explain(rules: dict[str, str]) -> str:
    """One sentence for people, from `describe`'s dict."""
    return "; ".join(
        EXPLAIN[kind(rules[key])] for key, kind in (("low_quality", LowQuality), ("third_opinion", ThirdOpinion))
    )


def describe(rules: Rules) -> dict[str, str]:
    return {
        "low_quality": LowQuality(rules.low_quality).value,
        "third_opinion": ThirdOpinion(rules.third_opinion).value,
    }
