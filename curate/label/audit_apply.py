"""How an audit round's answers change the consensus, and the history every change leaves.

The rule (documented in README, "Auditing labels"): for an image whose consensus is final (agreed or
adjudicated), the audit reviewer's latest answer
  - "Keep the current consensus", or the consensus diagnosis itself: nothing changes;
  - a diagnosis one of the two original raters gave: it replaces the consensus (status adjudicated,
    method audit_relabelled) — a second clinician already supported it;
  - any other diagnosis (a new, third opinion): the image is discarded (method audit_third_opinion), as the
    paper discards an image three clinicians cannot agree on.
An image whose consensus is not final is left alone. The audit is applied whenever consensus is recomputed
(curate.label.recompute.write_consensus), so a later pull or push never undoes it; each change is recorded once
in `consensus_history` (previous and new consensus, the reviewer, when, why, which annotation revision).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlmodel import Session, select

from curate.label.consensus import Outcome, Rating
from curate.label.diagnoses import FINAL, KEEP
from db.models import utcnow
from db.models.label import Consensus, ConsensusHistory, LabelAnnotation, LabelProject, LabelRound, LabelTask


@dataclass(frozen=True)
class AuditDecision:
    image_id: int
    reviewer: str
    diagnosis: str | None  # a diagnosis slug, KEEP, or None (submitted without a choice)
    round_id: int
    annotation_id: int  # the catalogue row (one revision) that holds it
    at: datetime


def apply(outcome: Outcome, ratings: list[Rating], decision: AuditDecision | None) -> tuple[Outcome, str | None]:
    """The consensus after the audit, and the reason to record if it differs from what the row held (a reviewer
    who changes her answer back to "keep" restores the raters' consensus, and that is recorded too). Pure."""
    if decision is None or decision.diagnosis is None or outcome.status not in FINAL:
        return outcome, None
    if decision.diagnosis in (KEEP, outcome.diagnosis):
        return outcome, "audit: the reviewer kept the consensus"
    n = outcome.n_raters + 1
    if decision.diagnosis in {r.diagnosis for r in ratings[:2]}:
        why = f"audit: the reviewer chose {decision.diagnosis}, which an original rater gave"
        return replace(
            outcome,
            status="adjudicated",
            diagnosis=decision.diagnosis,
            method="audit_relabelled",
            n_raters=n,
            agreement=2 / 3,
        ), why
    why = (
        f"audit: the reviewer chose {decision.diagnosis}, which neither original rater gave (three opinions: discarded)"
    )
    return Outcome("discarded", method="audit_third_opinion", n_raters=n, agreement=0.0), why


def decisions(s: Session) -> dict[int, AuditDecision]:
    """Per image the newest live answer of the assigned audit reviewer (newest round wins)."""
    rows = s.exec(
        select(LabelTask.image_id, LabelRound.id, LabelProject.rater, LabelAnnotation)
        .join(LabelProject, LabelTask.project_id == LabelProject.id)
        .join(LabelRound, LabelProject.round_id == LabelRound.id)
        .join(LabelAnnotation, LabelAnnotation.task_id == LabelTask.id)
        .where(LabelRound.kind == "audit")
        .order_by(LabelAnnotation.revision)
    ).all()
    latest: dict[tuple[int, int], tuple] = {}
    for image_id, round_id, rater, ann in rows:
        latest[(ann.task_id, ann.ls_annotation_id)] = (image_id, round_id, rater, ann)
    out: dict[int, AuditDecision] = {}
    for image_id, round_id, rater, ann in latest.values():
        if ann.withdrawn or ann.cancelled or ann.rater.lower() != rater:
            continue
        d = AuditDecision(image_id, rater, ann.diagnosis, round_id, ann.id, ann.ls_updated_at or ann.fetched_at)
        old = out.get(image_id)
        if old is None or (d.round_id, d.at, d.annotation_id) > (old.round_id, old.at, old.annotation_id):
            out[image_id] = d
    return out


@dataclass
class Ledger:
    """The audit decisions in force during one consensus recomputation; records each change it makes."""

    by_image: dict[int, AuditDecision] = field(default_factory=dict)

    @classmethod
    def load(cls, s: Session) -> Ledger:
        return cls(decisions(s))

    def outcome(self, image_id: int, outcome: Outcome, ratings: list[Rating]) -> tuple[Outcome, str | None]:
        return apply(outcome, ratings, self.by_image.get(image_id))

    def record(self, s: Session, row: Consensus | None, image_id: int, new: Outcome, why: str) -> None:
        """Keep one history row when the audit changes what the consensus row held (call before updating it)."""
        d = self.by_image[image_id]
        before = (row.status, row.diagnosis) if row is not None else ("pending", None)
        if before == (new.status, new.diagnosis):
            return
        s.add(
            ConsensusHistory(
                image_id=image_id,
                previous_status=before[0],
                previous_diagnosis=before[1],
                new_status=new.status,
                new_diagnosis=new.diagnosis,
                changed_by=d.reviewer,
                reason=why,
                round_id=d.round_id,
                annotation_id=d.annotation_id,
                changed_at=utcnow(),
            )
        )


@dataclass
class AuditSummary:
    """What the audit rounds hold, for `label pull`: tasks, answered, and what the answers did."""

    tasks: int = 0
    answered: int = 0
    kept: int = 0
    relabelled: int = 0
    discarded: int = 0


def summary(s: Session) -> AuditSummary:
    tasks = s.exec(
        select(LabelTask.image_id).join(LabelProject).join(LabelRound).where(LabelRound.kind == "audit")
    ).all()
    out = AuditSummary(tasks=len(set(tasks)))
    found = decisions(s)
    out.answered = len(found)
    methods = (
        dict(s.exec(select(Consensus.image_id, Consensus.method).where(Consensus.image_id.in_(list(found)))).all())
        if found
        else {}
    )
    for image_id in found:
        m = methods.get(image_id)
        if m == "audit_relabelled":
            out.relabelled += 1
        elif m == "audit_third_opinion":
            out.discarded += 1
        else:
            out.kept += 1
    return out


def history(s: Session, image_id: int | None = None) -> list[dict]:
    q = select(ConsensusHistory).order_by(ConsensusHistory.id)
    if image_id is not None:
        q = q.where(ConsensusHistory.image_id == image_id)
    return [json.loads(h.model_dump_json()) for h in s.exec(q).all()]
