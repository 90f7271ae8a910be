"""Labeling rounds on the catalogue side: push images to blind per-rater projects, adjudicate disputes.

Blindness: the open-source edition shows every annotation of a task to whoever
opens it, so each rater gets their own project per round and never sees the
other's labels in it (nothing in the open-source edition stops a rater from
opening another rater's project, so project titles name their rater).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, select

from curate.dedupe import labelable_image_ids
from curate.label.client import StudioClient, api_key_from_env
from curate.label.config import render as render_config
from curate.errors import LabelError, StudioError
from db.models import Image
from db.models.label import LabelProject, LabelRound, LabelTask

# Label Studio's LOCAL_FILES_DOCUMENT_ROOT; the embedded server uses the workspace itself.
DOCUMENT_ROOT_ENV = "CURATE_STUDIO_DOCUMENT_ROOT"
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif",
              "HEIF": "heic", "AVIF": "avif", "MPO": "jpg"}


def connect(ws, url: str | None = None) -> StudioClient:
    """The server at `url`, else the workspace's running embedded server; key from $LABEL_STUDIO_API_KEY."""
    from curate.studio.server import EmbeddedServer

    if url is None:
        info = EmbeddedServer(ws.root).status()
        if info is None:
            raise StudioError("no Label Studio: start the embedded one (`curate studio start`) or pass --url")
        url = info.url
    return StudioClient(url, api_key_from_env())


def _emails(raters: list[str]) -> list[str]:
    out = [r.strip().lower() for r in raters if r.strip()]
    if len(set(out)) != len(out):
        raise LabelError("each rater must be a different person")
    for r in out:
        if "@" not in r:
            raise LabelError(f"rater {r!r} is not an email address")
    return out


def image_link(ws, image: Image) -> str:
    """Expose an original under studio/files/ with an extension browsers understand; return its URL."""
    ext = EXTENSIONS.get((image.format or "").upper(), "bin")
    rel = Path("studio") / "files" / image.sha256[:2] / f"{image.sha256}.{ext}"
    link = ws.root / rel
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(ws.store.path_for(image.sha256), link.parent)
        tmp = link.with_name(link.name + ".tmp")
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)
    root = Path(os.environ.get(DOCUMENT_ROOT_ENV) or ws.root).resolve()
    try:
        served = (ws.root.resolve() / rel).relative_to(root)
    except ValueError as exc:
        raise LabelError(f"the workspace is not under Label Studio's document root {root} (${DOCUMENT_ROOT_ENV})") from exc
    return f"/data/local-files/?d={served.as_posix()}"


@dataclass
class PushResult:
    round_id: int
    raters: list[str]
    pushed: int
    projects: dict[str, int] = field(default_factory=dict)  # rater -> Label Studio project id


def _require_accounts(client: StudioClient, people: list[str]) -> None:
    known = set(client.user_emails().values())
    missing = [p for p in people if p not in known]
    if missing:
        raise LabelError(f"{missing[0]} has no Label Studio account on {client.url} (curate studio add-user {missing[0]})")


def _round_for(s: Session, kind: str, raters: list[str], server_url: str) -> LabelRound | None:
    rows = s.exec(select(LabelRound).where(LabelRound.kind == kind).order_by(LabelRound.id.desc())).all()
    for r in rows:
        if sorted(json.loads(r.raters)) == sorted(raters) and r.server_url == server_url:  # "b,a" is the same pair as "a,b"
            return r
    return None


def _ensure_projects(ws, client: StudioClient, rnd: LabelRound, raters: list[str], title: str,
                     config: str) -> dict[str, LabelProject]:
    """One project per rater; projects are created remotely first, recorded right after."""
    with ws.session() as s:
        have = {p.rater: p for p in s.exec(select(LabelProject).where(LabelProject.round_id == rnd.id)).all()}
    for rater in raters:
        if rater in have:
            if not client.project_exists(have[rater].ls_project_id):
                raise StudioError(f"Label Studio project {have[rater].ls_project_id} ({rnd.name}, {rater}) was deleted in Label Studio")
            continue
        (ws.root / "studio" / "files").mkdir(parents=True, exist_ok=True)
        remote = client.create_round(f"{title} · {rater}", config, ws.root / "studio" / "files",
                                     description=f"mpox-curate {rnd.name} for {rater} only. Do not open other raters' projects.")
        with ws.session() as s:
            p = LabelProject(round_id=rnd.id, rater=rater, ls_project_id=remote.id, ls_storage_id=remote.storage_id)
            s.add(p)
            s.flush()
            have[rater] = p
    return have


def _add_tasks(ws, client: StudioClient, projects: dict[str, LabelProject], image_ids: list[int], context: dict[int, str]) -> int:
    """Import `image_ids` into every project that does not have them yet; record task ids."""
    added = 0
    with ws.session() as s:
        images = {i.id: i for i in s.exec(select(Image).where(Image.id.in_(image_ids))).all()} if image_ids else {}
    for rater, proj in projects.items():
        with ws.session() as s:
            done = set(s.exec(select(LabelTask.image_id).where(LabelTask.project_id == proj.id)).all())
        todo = [i for i in image_ids if i not in done]
        for start in range(0, len(todo), 500):
            chunk = todo[start:start + 500]
            data = [{"image": image_link(ws, images[i]), "context": context.get(i, ""), "image_id": i} for i in chunk]
            ids = client.import_tasks(proj.ls_project_id, data)
            with ws.session() as s:
                s.add_all(LabelTask(project_id=proj.id, image_id=i, ls_task_id=t) for i, t in zip(chunk, ids))
            added += len(chunk)
    return added


def _refresh_consensus(ws) -> None:
    """Images just pushed get a 'pending' Consensus row; nothing else changes."""
    from curate.label.pull import write_consensus

    with ws.session() as s:
        write_consensus(s)


def rated_image_ids(s: Session) -> set[int]:
    """Images already sent to a rating round."""
    return set(s.exec(select(LabelTask.image_id).join(LabelProject).join(LabelRound)
                      .where(LabelRound.kind == "rating")).all())


def unrated_image_ids(s: Session) -> list[int]:
    """Labelable images not yet in a rating round: what `push` sends next.

    Dedupe keeps an image already in labelling as its cluster's representative, so a
    sharper copy arriving later is never labelable and a labelled cluster is not sent again.
    """
    rated = rated_image_ids(s)
    return [i for i in labelable_image_ids(s) if i not in rated]


def push(ws, client: StudioClient, raters: list[str], limit: int | None = None) -> PushResult:
    """Send labelable images not yet in any rating round to each rater's project (idempotent)."""
    raters = _emails(raters)
    if len(raters) != 2:
        raise LabelError("a rating round has exactly two raters (--raters a@clinic,b@clinic)")
    config = render_config(ws.diagnoses)  # the declared diagnoses; a mismatch with label_config.xml stops here
    _require_accounts(client, raters)
    with ws.session() as s:
        rnd = _round_for(s, "rating", raters, client.url)
        # Images already in this round but missing from one rater's project (an interrupted push) are completed too.
        mine = set()
        if rnd is not None:
            mine = set(s.exec(select(LabelTask.image_id).join(LabelProject).where(LabelProject.round_id == rnd.id)).all())
        candidates = unrated_image_ids(s)
    if limit is not None:
        candidates = candidates[:limit]
    if rnd is None and not candidates:
        return PushResult(0, raters, 0)
    if rnd is None:
        with ws.session() as s:
            n = len(s.exec(select(LabelRound.id)).all()) + 1
            rnd = LabelRound(kind="rating", name=f"Round {n}", raters=json.dumps(raters), server_url=client.url)
            s.add(rnd)
            s.flush()
    projects = _ensure_projects(ws, client, rnd, raters, f"mpox {rnd.name}", config)
    pushed = _add_tasks(ws, client, projects, sorted(mine) + candidates, {})
    _refresh_consensus(ws)
    return PushResult(rnd.id, raters, pushed, {r: p.ls_project_id for r, p in projects.items()})


def adjudicate(ws, client: StudioClient, reviewer: str) -> PushResult:
    """Push exactly the disputed images (raters disagree, no review yet) to the reviewer, showing both diagnoses."""
    from curate.label.pull import collect

    reviewer = _emails([reviewer])[0]
    config = render_config(ws.diagnoses)
    _require_accounts(client, [reviewer])
    with ws.session() as s:
        labels = collect(s)
        reviewed = set(s.exec(select(LabelTask.image_id).join(LabelProject).join(LabelRound)
                              .where(LabelRound.kind == "review")).all())
    disputed = {}
    for image_id, item in sorted(labels.items()):
        if image_id in reviewed or not item.outcome().needs_review:
            continue
        if reviewer in {r.rater for r in item.ratings}:
            raise LabelError(f"{reviewer} rated image {image_id}; the reviewer must be a third clinician")
        a, b = item.ratings[:2]
        name = ws.diagnoses.name
        disputed[image_id] = (f"Adjudication. {a.rater}: {name(a.diagnosis)}  |  "
                              f"{b.rater}: {name(b.diagnosis)}. Choose the diagnosis you support.")
    with ws.session() as s:
        rnd = _round_for(s, "review", [reviewer], client.url)
    if not disputed and rnd is None:
        return PushResult(0, [reviewer], 0)
    if rnd is None:
        with ws.session() as s:
            n = len(s.exec(select(LabelRound.id)).all()) + 1
            rnd = LabelRound(kind="review", name=f"Round {n} (review)", raters=json.dumps([reviewer]), server_url=client.url)
            s.add(rnd)
            s.flush()
    projects = _ensure_projects(ws, client, rnd, [reviewer], f"mpox {rnd.name}", config)
    pushed = _add_tasks(ws, client, projects, sorted(disputed), disputed)
    _refresh_consensus(ws)
    return PushResult(rnd.id, [reviewer], pushed, {r: p.ls_project_id for r, p in projects.items()})
