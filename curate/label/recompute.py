"""Consensus recomputation: the catalogue's current ratings of each image -> one `Consensus` row.

The rules themselves are pure (`curate.label.consensus.decide`); this module reads the ratings, applies
the recorded rules and writes the rows. `label pull` calls it after recording annotations, and
`label push` / `label adjudicate` call it so images just sent to a round get their 'pending' row.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from sqlmodel import Session, select

from curate.dedupe import cluster_map
from curate.errors import LabelError
from curate.label import audit_apply
from curate.label.consensus import PAPER, Outcome, Rating, Rules, decide
from curate.label.diagnoses import IDENTIFIABLE, KEEP, NEITHER
from curate.label.rules import recorded_rules
from db.models import utcnow
from db.models.label import Consensus, LabelAnnotation, LabelProject, LabelRound, LabelTask


@dataclass
class ImageLabels:
    image_id: int
    ratings: list[Rating] = field(default_factory=list)
    review: Rating | None = None
    rules: Rules = PAPER
    stale_review: bool = False  # a review answered on a dispute a rater has changed since: it does not count

    def outcome(self) -> Outcome:
        return decide(self.ratings, self.review, self.rules)


def latest_answers(s: Session) -> dict[tuple[int, int], LabelAnnotation]:
    """Each answer's last recorded revision, by (task, Label Studio annotation): a pull appends a revision and
    leaves the earlier ones as they were, so only the last says what the clinician answers now."""
    rows = s.exec(select(LabelAnnotation).order_by(LabelAnnotation.revision)).all()
    return {(a.task_id, a.ls_annotation_id): a for a in rows}


def answers_own(ann: LabelAnnotation, rater: str) -> bool:
    """Whether an answer (its last revision) is the assigned `rater`'s own and still in Label Studio."""
    return not ann.withdrawn and ann.rater.lower() == rater


def rates(ann: LabelAnnotation, rater: str) -> bool:
    """Whether an answer (its last revision) is a rating of its task: the assigned `rater`'s own (`answers_own`),
    submitted (not skipped), with a diagnosis (an empty one, which only the API can save, went to the reviewer as
    "no diagnosis"). `collect` and the report's progress both ask this."""
    return answers_own(ann, rater) and not ann.cancelled and ann.diagnosis is not None


def collect(s: Session, rules: Rules | None = None) -> dict[int, ImageLabels]:
    """Every image in a round with its current ratings (latest revision, not withdrawn, not skipped).

    A review given on a dispute a rater has changed since (`shown`, recorded since 0017) still counts when it
    sides with a rater's current diagnosis (two of three say so, whatever the third now says). Otherwise (her
    choice is nobody's now, or "Neither" of two diagnoses one rater has dropped) it was an answer to another
    question: it does not count, and the image waits for a review again (`stale_review`; before, that answer
    decided the new dispute as a third opinion, and discarded the image for good).
    Outcomes follow `rules`, by default the ones recorded in the catalogue."""
    rules = recorded_rules(s) if rules is None else rules
    tasks = s.exec(
        select(LabelTask.id, LabelTask.image_id, LabelRound.kind, LabelRound.raters, LabelRound.id, LabelProject.rater)
        .join(LabelProject, LabelTask.project_id == LabelProject.id)
        .join(LabelRound, LabelProject.round_id == LabelRound.id)
    ).all()
    images: dict[int, ImageLabels] = {}
    of_task = {}
    for task_id, image_id, kind, raters, round_id, rater in tasks:
        images.setdefault(image_id, ImageLabels(image_id, rules=rules))
        of_task[task_id] = (image_id, kind, json.loads(raters), round_id, rater)
    chosen: dict[tuple[int, int], tuple] = {}  # (image, round) -> per rater the newest live annotation
    shown: dict[int, str | None] = {}  # image -> the dispute its counted review was shown (JSON), None: not known
    for (task_id, _), ann in latest_answers(s).items():
        if task_id not in of_task:
            continue
        image_id, kind, raters, round_id, rater = of_task[task_id]
        if not rates(ann, rater) or kind == "audit":  # audits: audit_apply
            continue
        per = chosen.setdefault((image_id, round_id), {"kind": kind, "raters": raters, "by": {}})
        old = per["by"].get(rater)
        if old is None or (ann.ls_updated_at or ann.fetched_at, ann.id) > (old.ls_updated_at or old.fetched_at, old.id):
            per["by"][rater] = ann
    for (image_id, _round_id), per in sorted(chosen.items(), key=lambda kv: kv[0][1]):
        item = images[image_id]
        for rater in per["raters"]:
            ann = per["by"].get(rater)
            if ann is None:
                continue
            r = Rating(
                rater=rater,
                diagnosis=ann.diagnosis,
                boxes=tuple(tuple(b) for b in json.loads(ann.boxes)),
                flags=frozenset(json.loads(ann.flags)),
                comment=ann.comment,
            )
            if per["kind"] == "review":
                item.review = r
                shown[image_id] = ann.shown
            elif len(item.ratings) < 2:
                item.ratings.append(r)
    for image_id, disputed in shown.items():
        item = images[image_id]
        if disputed is not None and stale(item.review, json.loads(disputed), item.ratings):
            item.review, item.stale_review = None, True
    return images


def dispute(ratings: list[Rating]) -> list[str | None]:
    """The two raters' diagnoses, in the order of `ratings`: what a review task shows (`disputed` in its data, in
    `adjudication.blind_order`)."""
    return [r.diagnosis for r in ratings[:2]]


def same_dispute(a: list[str | None], b: list[str | None]) -> bool:
    """Whether two disputes are one: the same two diagnoses, in either order."""
    return sorted(a, key=str) == sorted(b, key=str)


def stale(review: Rating, disputed: list[str], ratings: list[Rating]) -> bool:
    """Whether a review answered on the dispute `disputed` (the two diagnoses its task showed) no longer counts:
    the raters' diagnoses are another pair now (in either order) and hers is neither of theirs. One flagging
    identifiable features always counts: the image stays out whatever anyone answers (before a re-asked review,
    a face would have been pending, shown on the report, and exported had she not ticked the flag again)."""
    now = dispute(ratings)
    if IDENTIFIABLE in review.flags or same_dispute(disputed, now):
        return False
    return review.diagnosis not in now


def write_consensus(s: Session, rules: Rules | None = None, audits: audit_apply.Ledger | None = None) -> dict[str, int]:
    """Recompute one Consensus row per image in any round (by default under the recorded rules);
    rows change only when the outcome does. `audits`: the audit answers to apply (loaded when not given; pull
    passes its own to learn which were stale)."""
    counts: dict[str, int] = {}
    existing = {c.image_id: c for c in s.exec(select(Consensus)).all()}
    audits = audits if audits is not None else audit_apply.Ledger.load(s)
    for image_id, item in collect(s, rules).items():
        o, why = audits.outcome(image_id, item.outcome(), item.ratings)
        counts[o.status] = counts.get(o.status, 0) + 1
        values = dict(
            status=o.status,
            diagnosis=o.diagnosis,
            method=o.method,
            n_raters=o.n_raters,
            agreement=o.agreement,
            boxes=json.dumps([list(b) for b in o.boxes]),
            exclusion=o.exclusion,
        )
        row = existing.get(image_id)
        if why:
            audits.record(s, row, image_id, o, why)
        elif row is not None and row.method in audit_apply.AUDIT_METHODS:  # that audit's change no longer holds
            audits.record_undone(s, row, image_id, o)
        if row is None:
            s.add(Consensus(image_id=image_id, **values))
        elif any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = utcnow()
            s.add(row)
    return counts


def stale_audits(s: Session, labels: dict[int, ImageLabels] | None = None) -> set[int]:
    """Images whose audit answer was given on a consensus that has changed since (`audit_apply.stale`): it does
    not count, and `label audit --push` may send the image again. `labels`: `collect`'s, when the caller has it."""
    audits = audit_apply.Ledger.load(s)
    for image_id, item in (collect(s) if labels is None else labels).items():
        audits.outcome(image_id, item.outcome(), item.ratings)
    return audits.stale


def refuse_undeclared(ws) -> None:
    """Recorded diagnoses must stay declared: a slug is what the catalogue, consensus and exports call a
    diagnosis, so renaming one (rather than its name) would split raters who chose the same thing. `label pull`
    and every push (`rounds.ensure_projects`) check it: before, a push took such a choice off the raters' running
    projects, whose answers pull and export then refused."""
    latest: dict[tuple[int, int], tuple[str | None, bool]] = {}
    with ws.session() as s:
        for task, ann, diagnosis, withdrawn in s.exec(
            select(
                LabelAnnotation.task_id,
                LabelAnnotation.ls_annotation_id,
                LabelAnnotation.diagnosis,
                LabelAnnotation.withdrawn,
            ).order_by(LabelAnnotation.revision)
        ).all():
            latest[(task, ann)] = (diagnosis, withdrawn)
    declared = set(ws.diagnoses.codes) | {NEITHER, KEEP}  # a reviewer's "Neither", an auditor's "Keep"
    gone = Counter(d for d, withdrawn in latest.values() if d is not None and not withdrawn and d not in declared)
    if gone:
        listed = ", ".join(f"{slug!r} ({n} annotation(s))" for slug, n in sorted(gone.items()))
        raise LabelError(
            f"diagnosis {listed} is recorded but no longer declared in curate.toml: declare the slug again "
            "(to rename a diagnosis, change its name and keep its slug)"
        )


def identifiable_photos(s: Session, clusters: dict[int, str] | None = None) -> set[int]:
    """Images whose consensus a flag of identifiable features excludes, and every copy dedupe joined to them: the
    flag is on the photo (a face, a tattoo), whichever copy a rater saw. No page shows them (`label report`,
    `label audit`), export leaves them out (`curate.export.plan`), and `curate status` names each version still
    holding one (`curate.export.flagged`). `clusters`: the `cluster_map` when the caller has it already."""
    flagged = set(
        s.exec(select(Consensus.image_id).where(Consensus.status == "excluded", Consensus.exclusion == IDENTIFIABLE))
    )
    if not flagged:
        return flagged
    clusters = cluster_map(s) if clusters is None else clusters
    shown = {clusters.get(i) for i in flagged}
    return flagged | {i for i, key in clusters.items() if key in shown}
