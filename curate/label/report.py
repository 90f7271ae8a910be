"""Labeling progress and agreement: per round and rater, Cohen's kappa and Gwet's AC1, confusion matrix,
outcomes, each rater's quality against the consensus and under Dawid–Skene (`raters`), and a few example images
of the disputed and discarded ones (`report_html` draws the page)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from sqlmodel import Session, func, select

from curate.label import audit_apply
from curate.label.agreement import Agreement, rater_agreement
from curate.label.diagnoses import FLAGS, IDENTIFIABLE, KEEP, NEITHER, STATUSES, DiagnosisList
from curate.label.raters import RaterQuality, rater_quality
from curate.label.recompute import ImageLabels, answers_own, collect, latest_answers, rates
from db.models.label import Consensus, LabelProject, LabelRound, LabelTask

# What each consensus outcome means, in the words the page and the CLI show.
OUTCOME_MEANINGS: dict[str, str] = {
    "agreed": "Both raters chose the same diagnosis. Exported.",
    "adjudicated": "The raters disagreed and the reviewer settled it by choosing one of their two diagnoses "
    "(or, under `--third-opinion reviewer`, her own). Exported.",
    "discarded": "No consensus after review: the raters disagreed and the reviewer supported neither of them "
    "(she chose \u201cNeither (discard this image)\u201d, or a third diagnosis under the paper's rule), "
    "so the image is dropped. Not exported.",
    "excluded": "Out whatever the diagnosis, because of a flag: identifiable features (face, tattoo, birthmark; "
    "one rater's flag is enough) or image quality too low. Not exported.",
    "pending": "Not decided yet: a rater has not answered, or the raters disagreed and the reviewer has not. "
    "Run `curate label pull` after they annotate.",
}
PENDING_REASONS = {"awaiting_raters": "waiting for a rater", "awaiting_review": "waiting for the reviewer"}
SAMPLES_PER_GROUP = 6


@dataclass
class Progress:
    round: str
    kind: str
    rater: str
    ls_project_id: int
    tasks: int
    labelled: int
    skipped: int = 0  # skipped in Label Studio and not answered since: the image waits for this rater


@dataclass
class Sample:
    """One example image for the page: which group, its outcome and what each person chose."""

    image_id: int
    group: str  # disputed | discarded
    status: str
    raters: list[str | None]  # rater 1, rater 2 (round order), anonymised on the page
    reviewer: str | None


@dataclass
class LabelReport:
    progress: list[Progress]
    outcomes: dict[str, int]
    agreement: Agreement
    names: dict[str, str]  # diagnosis code -> the name clinicians read
    details: dict[str, dict[str, int]] = field(default_factory=dict)  # excluded: per flag; pending: per reason
    samples: list[Sample] = field(default_factory=list)
    raters: list[RaterQuality] = field(default_factory=list)
    generated_at: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))

    def to_dict(self) -> dict:
        return {
            "generated_at": self.generated_at,
            "progress": [asdict(p) for p in self.progress],
            "outcomes": self.outcomes,
            "outcome_meanings": OUTCOME_MEANINGS,
            "details": self.details,
            "agreement": asdict(self.agreement),
            "diagnoses": self.names,
            "samples": [asdict(x) for x in self.samples],
            "raters": [asdict(q) for q in self.raters],
        }


def build(s: Session, diagnoses: DiagnosisList, per_group: int = SAMPLES_PER_GROUP) -> LabelReport:
    progress = []
    images = collect(s)
    rows = s.exec(select(LabelTask.id, LabelTask.project_id, LabelTask.image_id, LabelTask.ls_task_id)).all()
    # a task deleted in Label Studio (one that left the reviewer's queue) keeps its row, marked by an id below zero:
    # neither a task of the queue nor, answered before it went, one labelled there
    project_of = {task: project for task, project, _, ls_id in rows if ls_id > 0}
    stale = {task for task, _, image, _ in rows if image in images and images[image].stale_review}
    answers: dict[int, list] = {}  # project -> the last revision of each answer to its tasks
    for (task, _), ann in latest_answers(s).items():
        answers.setdefault(project_of.get(task), []).append(ann)
    for rnd, proj in s.exec(
        select(LabelRound, LabelProject).join(LabelProject).order_by(LabelRound.id, LabelProject.id)
    ).all():
        # before, a deleted task was counted, and the queue looked to hold work that was not there
        tasks = s.exec(
            select(func.count()).select_from(LabelTask).where(LabelTask.project_id == proj.id, LabelTask.ls_task_id > 0)
        ).one()
        # what `collect` counts (`rates`): before, a skipped task, or a steward's answer, made the round look done
        # while its image waited for a rater, and so did an earlier revision of an answer emptied since; a review
        # answered on a dispute a rater has changed since does not count either (the image waits for the reviewer)
        mine = answers.get(proj.id, [])
        done = {a.task_id for a in mine if rates(a, proj.rater) and not (rnd.kind == "review" and a.task_id in stale)}
        skipped = {a.task_id for a in mine if a.cancelled and answers_own(a, proj.rater)} - done
        progress.append(Progress(rnd.name, rnd.kind, proj.rater, proj.ls_project_id, tasks, len(done), len(skipped)))
    outcomes = dict.fromkeys(STATUSES, 0)
    details: dict[str, dict[str, int]] = {"excluded": {}, "pending": {}}
    for status, exclusion, method, n in s.exec(
        select(Consensus.status, Consensus.exclusion, Consensus.method, func.count()).group_by(
            Consensus.status, Consensus.exclusion, Consensus.method
        )
    ).all():
        outcomes[status] = outcomes.get(status, 0) + n
        if status == "excluded":
            why = FLAGS.get(exclusion or "", exclusion or "unspecified")
            details["excluded"][why] = details["excluded"].get(why, 0) + n
        elif status == "pending":
            why = PENDING_REASONS.get(method, method or "unspecified")
            details["pending"][why] = details["pending"].get(why, 0) + n
    audits = audit_apply.Ledger.load(s)
    return LabelReport(
        progress,
        outcomes,
        rater_agreement(images.values(), diagnoses.codes),
        diagnoses.names,
        details,
        samples(images, per_group),
        raters(images, audits, diagnoses.codes),
    )


def raters(images: dict[int, ImageLabels], audits: audit_apply.Ledger, labels: list[str]) -> list[RaterQuality]:
    """Each rater and reviewer (by the email the catalogue records) against the final diagnosis of agreed and
    adjudicated images, after an audit the one it left (before: the raters' own consensus, so a rater the audit
    proved right still lost the image), and their Dawid–Skene accuracy over every image they diagnosed. The audit
    reviewer is not rated: the consensus she leaves is her own choice, so she would agree with it by
    construction. For the same reason a reviewer is not compared with the diagnoses she decided (her agreement is
    over images she rated, or whose decision an audit changed; none: n/a)."""
    votes, consensus, decided, roles = [], [], [], {}
    for item in images.values():
        people = [(r, "rater") for r in item.ratings] + ([(item.review, "reviewer")] if item.review else [])
        # a reviewer's "Neither" discards the image, it names no diagnosis: modelled as one, it was a class no image
        # has, and a reviewer who wrongly discarded a fifth of the disputes was rated 0.997 (its raters 0.09 low)
        v = {r.rater: r.diagnosis for r, _ in people if r.diagnosis and r.diagnosis not in (NEITHER, KEEP)}
        if not v:
            continue
        for r, role in people:
            roles.setdefault(r.rater, set()).add(role)
        o = audits.outcome(item.image_id, item.outcome(), item.ratings)[0]
        votes.append(v)
        consensus.append(o.diagnosis if o.status in ("agreed", "adjudicated") else None)
        # an adjudicated diagnosis is the reviewer's own choice unless an audit changed it: compared with it, every
        # reviewer agreed 100 %
        adjudicated = o.status == "adjudicated" and o.method != "audit_relabelled"
        decided.append(item.review.rater if item.review and adjudicated else None)
    return rater_quality(votes, {p: ", ".join(sorted(x)) for p, x in roles.items()}, consensus, labels, decided)[0]


def samples(images: dict[int, ImageLabels], per_group: int) -> list[Sample]:
    """Up to `per_group` disputed (raters disagreed; pending review or adjudicated) and discarded images, lowest
    image id first, as the raters and the reviewer left them (the page explains those outcomes; an audit's
    changes are in `label audit`'s history). An image anyone flagged as identifiable is never shown."""
    picked: dict[str, list[Sample]] = {"disputed": [], "discarded": []}
    for image_id in sorted(images):
        item = images[image_id]
        everyone = item.ratings + ([item.review] if item.review else [])
        if len(item.ratings) < 2 or any(IDENTIFIABLE in r.flags for r in everyone):
            continue
        a, b = item.ratings
        o = item.outcome()
        if o.status == "discarded":
            group = "discarded"
        elif a.diagnosis != b.diagnosis and o.status in ("pending", "adjudicated"):
            group = "disputed"
        else:
            continue
        if len(picked[group]) < per_group:
            picked[group].append(
                Sample(
                    image_id,
                    group,
                    o.status,
                    [a.diagnosis, b.diagnosis],
                    item.review.diagnosis if item.review else None,
                )
            )
    return picked["disputed"] + picked["discarded"]
