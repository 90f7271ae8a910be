"""Fetch every annotation of every round into the catalogue, then recompute consensus (`recompute`).

All projects are fetched and parsed before anything is written, so a server
error, a deleted project or a label the config no longer has leaves the
catalogue exactly as it was (every unreadable annotation counted in one line),
as does a recorded diagnosis slug the settings no longer declare. Re-pulling an
unchanged server writes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from sqlalchemy import insert
from sqlmodel import select

from curate.errors import LabelError, StudioError
from curate.label import audit_apply
from curate.label.client import RemoteAnnotation, StudioClient
from curate.label.consensus import LowQuality, ThirdOpinion
from curate.label.recompute import refuse_undeclared, write_consensus
from curate.label.results import ParsedResult, parse_result
from curate.label.rounds import pictured
from curate.label.rules import describe, settle_rules
from curate.label.servers import REVIEW_SHOWS, Servers, as_servers, sharing
from db.models import Image, utcnow
from db.models.label import LabelAnnotation, LabelProject, LabelRound, LabelTask


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
    audit: dict[str, int] = field(default_factory=dict)  # audit rounds: tasks, answered, kept, relabelled, discarded
    warnings: list[str] = field(default_factory=list)  # blinding broken since the push: recorded, and said

    @property
    def changed(self) -> bool:
        return bool(self.new or self.revised or self.withdrawn)


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _digest(a: RemoteAnnotation) -> str:
    body = json.dumps([a.result, a.was_cancelled, a.completed_by], sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _refuse_another_project(
    client, project: LabelProject, round_name: str | None, recorded: list[LabelTask], by_sha: dict[str, int]
) -> None:
    """A project read from a server --url names, not the one recorded, must be the recorded project: its clinician
    has an account there, and its tasks show the images the catalogue recorded under their ids. Before: `--url` of
    one clinician's server read the other clinicians' projects of the same number there (the servers make their
    projects in step, so the same images), and their answers were recorded under the others' projects."""
    if project.rater not in set(client.user_emails(fresh=True).values()):
        why = f"{project.rater} has no account there"
    else:
        mine = {t.ls_task_id: t.image_id for t in recorded if t.project_id == project.id and t.ls_task_id > 0}
        listed = client.task_pictures(project.ls_project_id) if mine else {}
        there = {task: by_sha.get(pictured(link) or "") for task, (_, link) in listed.items()}
        if sum(there.get(task) == image for task, image in mine.items()) * 2 >= len(mine):
            return
        why = "its tasks show other images"
    raise StudioError(
        f"project {project.ls_project_id} on {client.url} is not {project.rater}'s project of "
        f"{round_name or 'its round'} ({why}); nothing was recorded: give --url {project.rater}=URL, that "
        "clinician's own server"
    )


def _where(project: LabelProject, client) -> str:
    """Whose project, on which server: every server numbers its projects from 1."""
    return f"{project.rater}'s project {project.ls_project_id} on {client.url}"


def _task_shown(project, a: RemoteAnnotation, tasks: dict, by_image: dict, shown: int | None) -> LabelTask | None:
    """The recorded task an answer counts for: the image its task's picture shows (`pictured`), never the one
    its `image_id` names (a rater can edit that: before, an answer on image 6's photo whose task said image 5 was
    counted for image 5, which "agreed" from a photo its rater never saw). The task recorded under its id while
    it shows that image; else that image's recorded task (a second task of the image, made by a push stopped
    before recording it; or a deleted task's id given to another image). None for a task without push's
    `image_id` (added by hand) or whose picture is no image of the project's: not the catalogue's business."""
    task = tasks.get((project.id, a.task_id))
    if task is not None and shown is not None and task.image_id == shown:
        return task
    if a.image_id is None or shown is None:
        return None
    return by_image.get((project.id, shown))


def pull(
    ws,
    servers: Servers | StudioClient,
    low_quality: LowQuality | None = None,
    third_opinion: ThirdOpinion | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> PullResult:
    """Fetch every project from the server it records (or the one --url names for its clinician), record,
    and recompute consensus; a rule given here is recorded and applies from now on. `on_progress(done, total)`
    hears the tasks read (total: the tasks the catalogue records; one added by hand in Label Studio adds one)."""
    servers = as_servers(servers)
    res = PullResult()
    with ws.session() as s:
        projects = s.exec(select(LabelProject).order_by(LabelProject.id)).all()
        rounds = s.exec(select(LabelRound)).all()
        round_urls = {r.id: r.server_url for r in rounds}
        round_names = {r.id: r.name for r in rounds}
        kinds = {r.id: r.kind for r in rounds}
        pairs = {r.id: (r.name, json.loads(r.raters)) for r in rounds if r.kind == "rating"}
        recorded = s.exec(select(LabelTask)).all()
        tasks = {(t.project_id, t.ls_task_id): t for t in recorded}
        by_image = {(t.project_id, t.image_id): t for t in recorded}
        catalogue = s.exec(select(Image)).all()
        sizes = {i.id: (i.width, i.height) for i in catalogue}
        by_sha = {i.sha256: i.id for i in catalogue}
    refuse_undeclared(ws)
    # 1. fetch + parse everything (raises before any write)
    fetched: list[tuple[LabelTask, RemoteAnnotation, ParsedResult]] = []
    unreadable: list[str] = []
    asking: LabelProject | None = None
    read, expected = 0, sum(t.ls_task_id > 0 for t in recorded)  # a review task deleted (< 0) is read nowhere
    listed: set[int] = set()  # the project's task ids Label Studio lists

    def one_task(task_id: int) -> None:
        nonlocal read
        read += 1
        listed.add(task_id)
        if on_progress is not None:
            on_progress(read, max(read, expected))

    try:
        for p in projects:
            asking = p
            recorded_url = p.server_url or round_urls[p.round_id]
            client = servers.client(servers.project_url(p.rater, recorded_url))
            if client.url.rstrip("/") != recorded_url.rstrip("/"):
                _refuse_another_project(client, p, round_names.get(p.round_id), recorded, by_sha)
            if p.round_id in pairs:  # push checked this; an account added on the server since is said here
                name, raters = pairs[p.round_id]
                for other in sharing(client, [r for r in raters if r != p.rater]):
                    res.warnings.append(
                        f"{other} has an account on {p.rater}'s Label Studio server {client.url} and can read "
                        f"{p.rater}'s labels of {name}: their ratings there may not be independent; remove that account"
                    )
            elif (
                p.round_id in round_names
            ):  # a review or audit: its tasks show both raters' diagnoses (before: unchecked)
                for other in sharing(client, sorted({r for _, both in pairs.values() for r in both} - {p.rater})):
                    res.warnings.append(
                        f"{other} has an account on {p.rater}'s Label Studio server {client.url} and can read "
                        f"{p.rater}'s labels of {round_names[p.round_id]}{REVIEW_SHOWS}: {other}'s ratings may not be "
                        "independent; remove that account"
                    )
            listed.clear()
            try:
                answers = client.fetch_annotations(p.ls_project_id, one_task)
            except StudioError as exc:
                if (
                    client.project_config(p.ls_project_id) is None
                ):  # before: "project 1 no longer exists": whose, where?
                    raise StudioError(
                        f"Label Studio project {p.ls_project_id} ({round_names.get(p.round_id)}, {p.rater}) on "
                        f"{client.url} was deleted in Label Studio: its answers cannot be read, and the pull stops "
                        "before recording anything; restore that server's data folder from a backup"
                    ) from exc
                raise
            for a in answers:
                task = _task_shown(p, a, tasks, by_image, by_sha.get(pictured(a.picture) or ""))
                if task is None:
                    if a.image_id is not None and (p.id, a.image_id) in by_image:
                        res.warnings.append(
                            f"{_where(p, client)}, task {a.task_id}: its image_id says image {a.image_id}, but its "
                            "picture is no photo of the round (edited in Label Studio?): its answer "
                            f"{a.id} is ignored"
                        )
                    continue  # a task added by hand in Label Studio is not the catalogue's business
                if a.image_id is not None and a.image_id != task.image_id:
                    res.warnings.append(
                        f"{_where(p, client)}, task {a.task_id}: its image_id says image {a.image_id}, but it shows "
                        f"image {task.image_id} (edited in Label Studio?): its answer {a.id} counts for image "
                        f"{task.image_id}, the photo its rater saw"
                    )
                w, h = sizes[task.image_id]
                try:
                    parsed = parse_result(a.result, w, h, ws.diagnoses, kinds.get(p.round_id))
                except LabelError as exc:
                    unreadable.append(f"{_where(p, client)}, task {a.task_id} annotation {a.id}: {exc}")
                    continue
                fetched.append((task, a, parsed))
            gone = sorted(t.image_id for t in recorded if t.project_id == p.id and 0 < t.ls_task_id not in listed)
            if gone:  # before: said nowhere, and `label report` counted them as the clinician's tasks
                res.warnings.append(
                    f"{_where(p, client)}: {len(gone)} task(s) were deleted in Label Studio (image(s) "
                    f"{', '.join(map(str, gone[:10]))}{' …' if len(gone) > 10 else ''}): the command that made them "
                    "(`curate label push`, `label adjudicate`, `label audit --push`) makes them again"
                )
            res.projects += 1
    except StudioError as exc:
        if asking is None or not isinstance(exc.__cause__, httpx.TransportError):
            raise
        # before: "Label Studio at http://127.0.0.1:53759 is not reachable": whose server, which round?
        raise StudioError(
            f"{exc} (that is {asking.rater}'s server, for {round_names.get(asking.round_id)}); nothing was recorded: "
            "`curate studio start` starts a local one"
        ) from None
    if unreadable:
        more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
        edited = (
            "; that project's label config may have been edited in Label Studio: correct or delete the answer "
            "there (`curate label push` puts the config back)"
        )
        renamed = (
            f"{edited}, or a diagnosis renamed since its round was pushed is still offered there under its old "
            "name: declare that name again"
        )
        hint = renamed if "diagnosis '" in unreadable[0] else edited if "the config allows one" in unreadable[0] else ""
        raise LabelError(
            f"{len(unreadable)} annotation(s) could not be read, so nothing was recorded: {unreadable[0]}{more}{hint}"
        )
    res.annotations = len(fetched)
    record(ws, fetched, res, low_quality, third_opinion)
    return res


def record(
    ws,
    fetched: list[tuple[LabelTask, RemoteAnnotation, ParsedResult]],
    res: PullResult,
    low_quality: LowQuality | None = None,
    third_opinion: ThirdOpinion | None = None,
) -> PullResult:
    """Step 2 of `pull`: every answer read from Label Studio (each with its recorded task, parsed) recorded in one
    transaction: a revision where it changed, withdrawn where it is gone; then consensus recomputed and the audit
    rounds summed up (`res`)."""
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
            new_rows.append(
                dict(
                    task_id=task.id,
                    ls_annotation_id=a.id,
                    revision=(prev.revision + 1) if prev else 1,
                    rater=a.completed_by,
                    diagnosis=parsed.diagnosis,
                    boxes=json.dumps([list(b) for b in parsed.boxes]),
                    flags=json.dumps(parsed.flags),
                    comment=parsed.comment,
                    cancelled=a.was_cancelled,
                    withdrawn=False,
                    ls_created_at=_ts(a.created_at),
                    ls_updated_at=_ts(a.updated_at),
                    content_sha256=digest,
                    raw=json.dumps(a.raw, sort_keys=True, default=str),
                    fetched_at=now,
                    withdrawn_at=None,
                    shown=None if a.shown is None else json.dumps(a.shown),
                )
            )
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
        audits = audit_apply.Ledger.load(s)
        res.consensus = write_consensus(s, rules, audits)
        s.flush()
        res.audit = audit_apply.summary(s, audits).__dict__
        if note := audit_apply.stale_note(audits):
            res.warnings.append(note)
    return res
