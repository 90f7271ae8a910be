"""Fetch every annotation of every round into the catalogue, then recompute consensus.

All projects are fetched and parsed before anything is written, so a server
error, a deleted project or a label the config no longer has leaves the
catalogue exactly as it was. Re-pulling an unchanged server writes nothing.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert
from sqlmodel import Session, select

from curate.label.client import RemoteAnnotation, StudioClient
from curate.label.consensus import PAPER, LowQuality, Outcome, Rating, Rules, ThirdOpinion, decide
from curate.errors import LabelError
from curate.label.results import ParsedResult, parse_result
from curate.label.rules import describe, recorded_rules, settle_rules
from curate.label.servers import Servers, as_servers
from db.models import Image, utcnow
from db.models.label import Consensus, LabelAnnotation, LabelProject, LabelRound, LabelTask


@dataclass
class PullResult:
    projects: int = 0
    annotations: int = 0
    new: int = 0
    revised: int = 0
    withdrawn: int = 0
    unchanged: int = 0
    consensus: dict[str, int] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)  # the consensus rules applied (and now recorded)
    rules_changed: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.new or self.revised or self.withdrawn)


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _digest(a: RemoteAnnotation) -> str:
    body = json.dumps([a.result, a.was_cancelled, a.completed_by], sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def pull(ws, servers: Servers | StudioClient, low_quality: LowQuality | None = None,
         third_opinion: ThirdOpinion | None = None) -> PullResult:
    """Fetch every project from the server it records (or the one --url names for its clinician), record,
    and recompute consensus; a rule given here is recorded and applies from now on."""
    servers = as_servers(servers)
    res = PullResult()
    with ws.session() as s:
        projects = s.exec(select(LabelProject).order_by(LabelProject.id)).all()
        round_urls = dict(s.exec(select(LabelRound.id, LabelRound.server_url)).all())
        tasks = {(t.project_id, t.ls_task_id): t for t in s.exec(select(LabelTask)).all()}
        sizes = {i.id: (i.width, i.height) for i in s.exec(select(Image)).all()}
    # 1. fetch + parse everything (raises before any write)
    fetched: list[tuple[LabelTask, RemoteAnnotation, ParsedResult]] = []
    for p in projects:
        client = servers.client(servers.project_url(p.rater, p.server_url or round_urls[p.round_id]))
        for a in client.fetch_annotations(p.ls_project_id):
            task = tasks.get((p.id, a.task_id))
            if task is None:
                continue  # a task added by hand in Label Studio is not the catalogue's business
            w, h = sizes[task.image_id]
            try:
                parsed = parse_result(a.result, w, h, ws.diagnoses)
            except LabelError as exc:
                raise LabelError(f"project {p.ls_project_id} task {a.task_id} annotation {a.id}: {exc}") from exc
            fetched.append((task, a, parsed))
        res.projects += 1
    res.annotations = len(fetched)
    # 2. write revisions and withdrawals in one transaction
    now = utcnow()
    with ws.session() as s:
        latest: dict[tuple[int, int], LabelAnnotation] = {}
        for row in s.exec(select(LabelAnnotation).order_by(LabelAnnotation.revision)).all():
            latest[(row.task_id, row.ls_annotation_id)] = row
        seen, new_rows = set(), []
        for task, a, parsed in fetched:
            key = (task.id, a.id)
            seen.add(key)
            digest = _digest(a)
            prev = latest.get(key)
            if prev is not None and prev.content_sha256 == digest and not prev.withdrawn:
                res.unchanged += 1
                continue
            new_rows.append(dict(
                task_id=task.id, ls_annotation_id=a.id, revision=(prev.revision + 1) if prev else 1,
                rater=a.completed_by, diagnosis=parsed.diagnosis, boxes=json.dumps([list(b) for b in parsed.boxes]),
                flags=json.dumps(parsed.flags), comment=parsed.comment, cancelled=a.was_cancelled, withdrawn=False,
                ls_created_at=_ts(a.created_at), ls_updated_at=_ts(a.updated_at), content_sha256=digest,
                raw=json.dumps(a.raw, sort_keys=True, default=str), fetched_at=now, withdrawn_at=None))
            if prev is None:
                res.new += 1
            else:
                res.revised += 1
        if new_rows:  # one executemany instead of 10,000 ORM objects
            s.execute(insert(LabelAnnotation), new_rows)
        for key, row in latest.items():
            if key not in seen and not row.withdrawn:
                row.withdrawn, row.withdrawn_at = True, now
                s.add(row)
                res.withdrawn += 1
        s.flush()
        rules, res.rules_changed = settle_rules(s, low_quality, third_opinion)
        res.rules = describe(rules)
        res.consensus = write_consensus(s, rules)
    return res


@dataclass
class ImageLabels:
    image_id: int
    ratings: list[Rating] = field(default_factory=list)
    review: Rating | None = None
    rules: Rules = PAPER

    def outcome(self) -> Outcome:
        return decide(self.ratings, self.review, self.rules)


def collect(s: Session, rules: Rules | None = None) -> dict[int, ImageLabels]:
    """Every image in a round with its current ratings (latest revision, not withdrawn, not skipped).

    Outcomes follow `rules`, by default the ones recorded in the catalogue."""
    rules = recorded_rules(s) if rules is None else rules
    rows = s.exec(
        select(LabelTask.image_id, LabelRound.kind, LabelRound.raters, LabelRound.id, LabelProject.rater, LabelAnnotation)
        .join(LabelProject, LabelTask.project_id == LabelProject.id)
        .join(LabelRound, LabelProject.round_id == LabelRound.id)
        .join(LabelAnnotation, LabelAnnotation.task_id == LabelTask.id, isouter=True)
        .order_by(LabelAnnotation.revision)
    ).all()
    latest: dict[tuple[int, int], tuple] = {}  # (task, ls annotation) -> last revision wins (ordered)
    images: dict[int, ImageLabels] = {}
    for image_id, kind, raters, round_id, rater, ann in rows:
        images.setdefault(image_id, ImageLabels(image_id, rules=rules))
        if ann is not None:
            latest[(ann.task_id, ann.ls_annotation_id)] = (image_id, kind, json.loads(raters), round_id, rater, ann)
    chosen: dict[tuple[int, int], tuple] = {}  # (image, round) -> per rater the newest live annotation
    for image_id, kind, raters, round_id, rater, ann in latest.values():
        if ann.withdrawn or ann.cancelled or ann.rater.lower() != rater:
            continue  # only the assigned rater's own, submitted, live annotation counts
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
            r = Rating(rater=rater, diagnosis=ann.diagnosis, boxes=tuple(tuple(b) for b in json.loads(ann.boxes)),
                       flags=frozenset(json.loads(ann.flags)), comment=ann.comment)
            if per["kind"] == "review":
                item.review = r
            elif len(item.ratings) < 2:
                item.ratings.append(r)
    return images


def write_consensus(s: Session, rules: Rules | None = None) -> dict[str, int]:
    """Recompute one Consensus row per image in any round (by default under the recorded rules);
    rows change only when the outcome does."""
    counts: dict[str, int] = {}
    existing = {c.image_id: c for c in s.exec(select(Consensus)).all()}
    for image_id, item in collect(s, rules).items():
        o = item.outcome()
        counts[o.status] = counts.get(o.status, 0) + 1
        values = dict(status=o.status, diagnosis=o.diagnosis, method=o.method, n_raters=o.n_raters,
                      agreement=o.agreement, boxes=json.dumps([list(b) for b in o.boxes]), exclusion=o.exclusion)
        row = existing.get(image_id)
        if row is None:
            s.add(Consensus(image_id=image_id, **values))
        elif any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = utcnow()
            s.add(row)
    return counts
