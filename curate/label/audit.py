"""`curate label audit`: which consensus labels a trained model most likely shows to be wrong.

Joins a `train run`'s out-of-fold probabilities (curate.label.audit_run) with the catalogue's consensus and
every rating, through the exported version's image ids, and ranks them (curate.label.audit_rank). Images
whose consensus changed since that export are listed apart, never ranked with probabilities from a model
that learnt their old label.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session, select

from curate.label.audit_rank import Candidate, rank
from curate.label.audit_run import matching_version, read_run
from curate.label.diagnoses import FINAL, DiagnosisList
from curate.label.recompute import collect, stale_audits
from db.models.label import Consensus, LabelProject, LabelRound, LabelTask


@dataclass
class AuditRow:
    image_id: int
    set: str  # train | test | external
    consensus: str | None  # diagnosis slug now
    consensus_class: str | None  # its class in the run's task
    method: str
    raters: list[list[str | None]]  # [[email, diagnosis slug], ...] the two raters, in round order
    reviewer: list[str | None] | None  # [email, diagnosis slug] when a reviewer decided
    probabilities: dict[str, float]
    rank: int | None = None
    score: float | None = None  # estimated probability that the consensus is wrong
    self_confidence: float | None = None  # model probability of the consensus class
    issue: bool = False  # confident-learning flag
    suggested: str | None = None
    exported_diagnosis: str | None = None  # what the run was trained on
    audited: bool = False  # already sent to an audit round
    why_not_ranked: str | None = None


@dataclass
class AuditReport:
    run: str
    dataset: str
    task: str
    classes: list[str]
    ranked: list[AuditRow]
    unranked: list[AuditRow] = field(default_factory=list)  # relabelled since the run, or no longer final
    expected_errors: float = 0.0  # sum of scores: how many consensus labels are likely wrong
    generated_at: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def class_of(diagnoses: DiagnosisList, task: str, slug: str | None) -> str | None:
    if slug is None:
        return None
    return diagnoses.binary_label(slug) if task == "binary" else slug


def audited_image_ids(s: Session, round_id: int | None = None) -> set[int]:
    """Images in an audit round (in the one given, or in any)."""
    q = select(LabelTask.image_id).join(LabelProject).join(LabelRound).where(LabelRound.kind == "audit")
    if round_id is not None:
        q = q.where(LabelRound.id == round_id)
    return set(s.exec(q).all())


def build(ws, run: Path, dataset: str | None = None) -> AuditReport:
    """Rank the run's images by how likely their consensus is wrong; refuses a run made on another version."""
    preds = read_run(run)
    version = matching_version(preds, ws.root, ws.exports, dataset)
    exported = dict(zip(version.catalogue_ids(), (r["diagnosis"] for r in version.rows), strict=True))
    diagnoses = ws.diagnoses
    with ws.session() as s:
        labels = collect(s)
        consensus = {c.image_id: c for c in s.exec(select(Consensus)).all()}
        audited = audited_image_ids(s) - stale_audits(s, labels)  # an answer on a consensus changed since: asked again
    ranked_rows, unranked, candidates = [], [], []
    for image_id, probs in sorted(preds.probs.items()):
        c = consensus.get(image_id)
        item = labels.get(image_id)
        status = c.status if c else "missing"
        row = AuditRow(
            image_id,
            preds.sets.get(image_id, ""),
            c.diagnosis if c else None,
            class_of(diagnoses, preds.task, c.diagnosis if c else None),
            c.method if c else "",
            [[r.rater, r.diagnosis] for r in (item.ratings if item else [])],
            [item.review.rater, item.review.diagnosis] if item and item.review else None,
            probs,
            exported_diagnosis=exported.get(image_id),
            audited=image_id in audited,
        )
        if status not in FINAL:
            row.why_not_ranked = f"consensus is now {status}"
        elif row.exported_diagnosis is not None and row.exported_diagnosis != row.consensus:
            row.why_not_ranked = f"relabelled since the run ({row.exported_diagnosis} -> {row.consensus})"
        elif row.consensus_class not in preds.classes:
            row.why_not_ranked = f"class {row.consensus_class!r} is not one of the run's classes"
        if row.why_not_ranked:
            unranked.append(row)
            continue
        votes = {p: class_of(diagnoses, preds.task, d) for p, d in row.raters if d}
        if row.reviewer and row.reviewer[1]:
            votes[row.reviewer[0]] = class_of(diagnoses, preds.task, row.reviewer[1])
        votes = {p: v for p, v in votes.items() if v in preds.classes}
        said = {d for _, d in row.raters}
        candidates.append(
            Candidate(image_id, row.consensus_class, probs, votes, len(said) > 1, row.reviewer is not None)
        )
        ranked_rows.append(row)
    by_id = {r.image_id: r for r in ranked_rows}
    out = []
    for r in rank(candidates, preds.classes):
        row = by_id[r.image_id]
        row.rank, row.score, row.self_confidence, row.issue, row.suggested = (
            r.rank,
            r.score,
            r.self_confidence,
            r.issue,
            r.suggested,
        )
        out.append(row)
    return AuditReport(
        str(run),
        version.ref,
        preds.task,
        preds.classes,
        out,
        unranked,
        round(sum(r.score or 0.0 for r in out), 2),
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
