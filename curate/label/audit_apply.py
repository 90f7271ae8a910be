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

An answer given on a consensus that has changed since (the raters' diagnoses or the consensus its task showed,
`disputed` in the task's data, recorded as `LabelAnnotation.shown`) was an answer to another question: it does not
count (`stale`), `label pull` says so, and `label audit --push` may send the image again. When an audit's change
no longer holds (its answer withdrawn, skipped, stale, or the raters' consensus no longer final), the return to
the raters' consensus is recorded too (before: the consensus went back silently, its history ending in the
audit's change).
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
    # what its task showed: the two raters' diagnoses and the consensus (slugs); None on a task pushed before
    shown: tuple[str | None, ...] | None = None
    withdrawn: bool = False  # deleted in Label Studio
    cancelled: bool = False  # skipped


AUDIT_METHODS = ("audit_relabelled", "audit_third_opinion")  # a consensus an audit's answer made


def stale(decision: AuditDecision, outcome: Outcome, ratings: list[Rating]) -> bool:
    """Whether an answer was given on another consensus than the raters' now (`outcome`, before the audit): their
    two diagnoses (in either order) or the consensus its task showed have changed since. Pure. An answer on a task
    pushed before tasks recorded what they showed counts, as it did."""
    if decision.shown is None or len(decision.shown) != 3:
        return False
    raters, consensus = list(decision.shown[:2]), decision.shown[2]
    now = [r.diagnosis for r in ratings[:2]]
    return sorted(raters, key=str) != sorted(now, key=str) or consensus != outcome.diagnosis


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


def _answers(s: Session, live: bool) -> dict[int, list[AuditDecision]]:
    """Per image the answers of the assigned audit reviewers, newest first (newest round first): live ones, or
    else those withdrawn or skipped (what an audit's change undone is credited to)."""
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
    out: dict[int, list[AuditDecision]] = {}
    for image_id, round_id, rater, ann in latest.values():
        if (ann.withdrawn or ann.cancelled) == live or ann.rater.lower() != rater:
            continue
        shown = tuple(json.loads(ann.shown)) if ann.shown else None
        d = AuditDecision(
            image_id,
            rater,
            ann.diagnosis,
            round_id,
            ann.id,
            ann.ls_updated_at or ann.fetched_at,
            shown,
            ann.withdrawn,
            ann.cancelled,
        )
        out.setdefault(image_id, []).append(d)
    for found in out.values():
        found.sort(key=lambda d: (d.round_id, d.at, d.annotation_id), reverse=True)
    return out


def decisions(s: Session) -> dict[int, AuditDecision]:
    """Per image the newest live answer of the assigned audit reviewer (newest round wins)."""
    return {i: found[0] for i, found in _answers(s, live=True).items()}


@dataclass
class Ledger:
    """The audit decisions in force during one consensus recomputation; records each change it makes, and each
    change of an earlier audit it no longer holds. `stale`: the images whose answers it found all stale."""

    by_image: dict[int, AuditDecision] = field(default_factory=dict)  # the answer that counts (newest first)
    dropped: dict[int, AuditDecision] = field(default_factory=dict)  # answers withdrawn or skipped
    older: dict[int, list[AuditDecision]] = field(default_factory=dict)  # live answers of older rounds, newest first
    stale: set[int] = field(default_factory=set)

    @classmethod
    def load(cls, s: Session) -> Ledger:
        live = _answers(s, live=True)
        return cls(
            {i: found[0] for i, found in live.items()},
            {i: found[0] for i, found in _answers(s, live=False).items()},
            {i: found[1:] for i, found in live.items() if len(found) > 1},
        )

    def outcome(self, image_id: int, outcome: Outcome, ratings: list[Rating]) -> tuple[Outcome, str | None]:
        """The newest answer that is not stale decides (an image asked again in another reviewer's round, whose
        round may be the older one); none: the raters' consensus stands."""
        d = self.by_image.get(image_id)
        # a consensus no longer final takes no audit (`apply`): its answer is not "stale", to be asked again for
        # ever (an image a later flag excluded was named by every pull)
        if d is not None and outcome.status in FINAL and stale(d, outcome, ratings):
            fresh = next((o for o in self.older.get(image_id, []) if not stale(o, outcome, ratings)), None)
            if fresh is None:
                self.stale.add(image_id)
                return outcome, None
            self.by_image[image_id] = d = fresh
        return apply(outcome, ratings, d)

    def record(self, s: Session, row: Consensus | None, image_id: int, new: Outcome, why: str) -> None:
        """Keep one history row when the audit changes what the consensus row held (call before updating it)."""
        d = self.by_image[image_id]
        _add(s, row, image_id, new, why, d.reviewer, d.round_id, d.annotation_id)

    def record_undone(self, s: Session, row: Consensus, image_id: int, new: Outcome) -> None:
        """Keep one history row when a consensus an audit made (`row`, method in AUDIT_METHODS) goes back to the
        raters' because that audit's answer no longer holds (call before updating it), saying why."""
        d = self.by_image.get(image_id)
        if image_id in self.stale and d is not None:
            was = ", ".join(str(x) for x in d.shown[:2]) if d.shown else "?"
            cause = (
                f"audit answer given on a consensus that has changed since (the raters said {was}, the consensus "
                f"was {d.shown[2] if d.shown else '?'}): it no longer counts"
            )
        elif d is not None and d.diagnosis is None:
            cause = "audit answer without a diagnosis"
        elif d is not None:
            cause = f"audit answer on a consensus no longer final ({new.status} now)"
        elif (d := self.dropped.get(image_id)) is not None:
            cause = "audit answer withdrawn" if d.withdrawn else "audit answer skipped"
        else:
            cause = "audit answer no longer recorded"
        why = f"{cause}: back to the raters' consensus"
        if d is not None:
            _add(s, row, image_id, new, why, d.reviewer, d.round_id, d.annotation_id)
            return
        last = s.exec(
            select(ConsensusHistory).where(ConsensusHistory.image_id == image_id).order_by(ConsensusHistory.id.desc())
        ).first()
        who = (last.changed_by, last.round_id, last.annotation_id) if last is not None else ("unknown", None, None)
        _add(s, row, image_id, new, why, *who)


def _add(
    s: Session,
    row: Consensus | None,
    image_id: int,
    new: Outcome,
    why: str,
    reviewer: str,
    round_id: int | None,
    annotation_id: int | None,
) -> None:
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
            changed_by=reviewer,
            reason=why,
            round_id=round_id,
            annotation_id=annotation_id,
            changed_at=utcnow(),
        )
    )


@dataclass
class AuditSummary:
    """What the audit rounds hold, for `label pull`: tasks, answered (answers that count) and what those did; the
    answers given on a consensus that has changed since are said apart (`stale_note`)."""

    tasks: int = 0
    answered: int = 0
    kept: int = 0
    relabelled: int = 0
    discarded: int = 0


def summary(s: Session, ledger: Ledger | None = None) -> AuditSummary:
    """`ledger`: the one the consensus was just recomputed with (it knows which answers are stale)."""
    tasks = s.exec(
        select(LabelTask.image_id).join(LabelProject).join(LabelRound).where(LabelRound.kind == "audit")
    ).all()
    out = AuditSummary(tasks=len(set(tasks)))
    ledger = ledger or Ledger.load(s)
    found = [i for i in ledger.by_image if i not in ledger.stale]
    out.answered = len(found)
    methods = (
        dict(s.exec(select(Consensus.image_id, Consensus.method).where(Consensus.image_id.in_(found))).all())
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


def stale_note(ledger: Ledger) -> str | None:
    """What `label pull` says of the answers given on a consensus that has changed since."""
    if not ledger.stale:
        return None
    images = sorted(ledger.stale)
    listed = ", ".join(str(i) for i in images[:10]) + (f" and {len(images) - 10} more" if len(images) > 10 else "")
    who = sorted({d.reviewer for i in images if (d := ledger.by_image.get(i)) is not None})
    return (
        f"{len(images)} audit answer(s) were given on a consensus that has changed since (image(s) {listed}) and no "
        f"longer count: the raters' consensus stands; `curate label audit --push --reviewer {' / '.join(who)}` asks "
        "them again in the round that holds them"
    )


def history(s: Session, image_id: int | None = None) -> list[dict]:
    q = select(ConsensusHistory).order_by(ConsensusHistory.id)
    if image_id is not None:
        q = q.where(ConsensusHistory.image_id == image_id)
    return [json.loads(h.model_dump_json()) for h in s.exec(q).all()]
