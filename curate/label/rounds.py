"""Labeling rounds on the catalogue side: push images to blind per-rater projects, adjudicate disputes.

Blindness: every account of an open-source Label Studio server can open every
project on it, so each clinician's project lives on a server where no other
clinician of the round has an account (curate.label.servers.require_blind);
by default that is the clinician's own server (curate.studio.fleet). Each
project records the URL of its server, so pull finds every project again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, select

from curate.dedupe import labelable_image_ids, uncompared_image_ids
from curate.errors import LabelError, StudioError
from curate.files import atomic_path
from curate.label.adjudication import RaterView, adjudication_config, review_task
from curate.label.client import StudioClient
from curate.label.config import render as render_config
from curate.label.consensus import ThirdOpinion
from curate.label.diagnoses import FLAGS
from curate.label.order import Order, image_features, order_ids
from curate.label.recompute import collect, write_consensus
from curate.label.rules import recorded_rules, settle_rules
from curate.label.servers import Servers, as_servers, require_blind
from db.models import Image
from db.models.label import LabelProject, LabelRound, LabelTask

# Label Studio's LOCAL_FILES_DOCUMENT_ROOT; the embedded server uses the workspace itself.
DOCUMENT_ROOT_ENV = "CURATE_STUDIO_DOCUMENT_ROOT"
EXTENSIONS = {
    "JPEG": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tif",
    "HEIF": "heic",
    "AVIF": "avif",
    "MPO": "jpg",
}


def rating_pair(raters: list[str]) -> list[str]:
    """The two raters of a rating round, normalised (`normalise_emails`); checked before any server is asked."""
    raters = normalise_emails(raters)
    if len(raters) != 2:
        raise LabelError("a rating round has exactly two raters (--raters a@clinic,b@clinic)")
    return raters


def normalise_emails(raters: list[str]) -> list[str]:
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
        with atomic_path(link) as tmp:
            tmp.unlink()  # the name is ours; a symlink takes its place
            os.symlink(os.path.relpath(ws.store.path_for(image.sha256), link.parent), tmp)
    root = Path(os.environ.get(DOCUMENT_ROOT_ENV) or ws.root).resolve()
    try:
        served = (ws.root.resolve() / rel).relative_to(root)
    except ValueError as exc:
        raise LabelError(
            f"the workspace is not under Label Studio's document root {root} (${DOCUMENT_ROOT_ENV})"
        ) from exc
    return f"/data/local-files/?d={served.as_posix()}"


@dataclass
class PushResult:
    round_id: int
    raters: list[str]
    pushed: int
    projects: dict[str, int] = field(default_factory=dict)  # rater -> Label Studio project id
    uncompared: int = 0  # images sent that no dedupe run had compared: their copies may be labelled twice


def find_round(s: Session, kind: str, raters: list[str], server_key: str) -> LabelRound | None:
    rows = s.exec(select(LabelRound).where(LabelRound.kind == kind).order_by(LabelRound.id.desc())).all()
    for r in rows:
        if (
            sorted(json.loads(r.raters)) == sorted(raters) and r.server_url == server_key
        ):  # "b,a" is the same pair as "a,b"
            return r
    return None


def ensure_projects(
    ws, servers: Servers, rnd: LabelRound, raters: list[str], title: str, config: str, prelabel: bool = False
) -> dict[str, LabelProject]:
    """One project per clinician on their server; created remotely first, recorded right after."""
    with ws.session() as s:
        have = {p.rater: p for p in s.exec(select(LabelProject).where(LabelProject.round_id == rnd.id)).all()}
    for rater in raters:
        client = servers.client_for(rater)
        if rater in have:
            if not client.project_exists(have[rater].ls_project_id):
                raise StudioError(
                    f"Label Studio project {have[rater].ls_project_id} ({rnd.name}, {rater}) on {client.url} "
                    "was deleted in Label Studio"
                )
            continue
        (ws.root / "studio" / "files").mkdir(parents=True, exist_ok=True)
        remote = client.create_round(
            f"{title} · {rater}",
            config,
            ws.root / "studio" / "files",
            description=f"mpox-curate {rnd.name}",
            prelabel=prelabel,
        )
        with ws.session() as s:
            p = LabelProject(
                round_id=rnd.id,
                rater=rater,
                ls_project_id=remote.id,
                ls_storage_id=remote.storage_id,
                server_url=client.url,
            )
            s.add(p)
            s.flush()
            have[rater] = p
    return have


def add_tasks(ws, servers: Servers, projects: dict[str, LabelProject], image_ids: list[int], make_task) -> int:
    """Import `image_ids` into every project that does not have them yet; record task ids."""
    added = 0
    with ws.session() as s:
        images = {i.id: i for i in s.exec(select(Image).where(Image.id.in_(image_ids))).all()} if image_ids else {}
    for rater, proj in projects.items():
        with ws.session() as s:
            done = set(s.exec(select(LabelTask.image_id).where(LabelTask.project_id == proj.id)).all())
        todo = [i for i in image_ids if i not in done]
        for start in range(0, len(todo), 500):
            chunk = todo[start : start + 500]
            ids = servers.client_for(rater).import_tasks(proj.ls_project_id, [make_task(images[i]) for i in chunk])
            with ws.session() as s:
                s.add_all(
                    LabelTask(project_id=proj.id, image_id=i, ls_task_id=t) for i, t in zip(chunk, ids, strict=True)
                )
            added += len(chunk)
    return added


def _refresh_consensus(ws) -> None:
    """Images just pushed get a 'pending' Consensus row; nothing else changes."""
    with ws.session() as s:
        write_consensus(s)


def rated_image_ids(s: Session) -> set[int]:
    """Images already sent to a rating round."""
    return set(
        s.exec(select(LabelTask.image_id).join(LabelProject).join(LabelRound).where(LabelRound.kind == "rating")).all()
    )


def unrated_image_ids(s: Session) -> list[int]:
    """Labelable images not yet in a rating round: what `push` sends next.

    Dedupe keeps an image already in labelling as its cluster's representative, so a
    sharper copy arriving later is never labelable and a labelled cluster is not sent again.
    """
    rated = rated_image_ids(s)
    return [i for i in labelable_image_ids(s) if i not in rated]


def new_round(ws, kind: str, people: list[str], key: str, suffix: str = "") -> LabelRound:
    with ws.session() as s:
        n = len(s.exec(select(LabelRound.id)).all()) + 1
        rnd = LabelRound(kind=kind, name=f"Round {n}{suffix}", raters=json.dumps(people), server_url=key)
        s.add(rnd)
        s.flush()
    return rnd


def push(
    ws,
    servers: Servers | StudioClient,
    raters: list[str],
    limit: int | None = None,
    order: Order = Order.catalogue,
    seed: int = 0,
    predictions: dict[str, dict[str, float]] | None = None,
) -> PushResult:
    """Send labelable images not yet in any rating round to each rater's project (idempotent), in `order`
    (curate.label.order; uncertainty needs `predictions`: image sha256 -> class probabilities).

    Rating tasks carry the image and its id only: no prediction or model output ever reaches a rater."""
    servers = as_servers(servers)
    raters = rating_pair(raters)
    config = render_config(ws.diagnoses)  # the declared diagnoses; a mismatch with label_config.xml stops here
    for rater in raters:
        require_blind(servers, rater, [r for r in raters if r != rater])
    key = servers.key(raters)
    with ws.session() as s:
        rnd = find_round(s, "rating", raters, key)
        # Images already in this round but missing from one rater's project (an interrupted push) are completed too.
        mine = set()
        if rnd is not None:
            mine = set(
                s.exec(select(LabelTask.image_id).join(LabelProject).where(LabelProject.round_id == rnd.id)).all()
            )
        candidates = unrated_image_ids(s)
        if order == Order.uncertainty and candidates:
            shas = dict(s.exec(select(Image.id, Image.sha256).where(Image.id.in_(candidates))).all())
            probs = {i: (predictions or {})[shas[i]] for i in candidates if shas[i] in (predictions or {})}
            candidates = order_ids(candidates, order, seed, probs, image_features(s, candidates))
        else:
            candidates = order_ids(candidates, order, seed)
        if limit is not None:
            candidates = candidates[:limit]
        uncompared = len(uncompared_image_ids(s, set(candidates)))
    if rnd is None and not candidates:
        return PushResult(0, raters, 0)
    rnd = rnd or new_round(ws, "rating", raters, key)
    projects = ensure_projects(ws, servers, rnd, raters, f"mpox {rnd.name}", config)
    task = lambda img: {"image": image_link(ws, img), "image_id": img.id}  # noqa: E731
    pushed = add_tasks(ws, servers, projects, sorted(mine) + candidates, task)
    _refresh_consensus(ws)
    return PushResult(rnd.id, raters, pushed, {r: p.ls_project_id for r, p in projects.items()}, uncompared)


def adjudicate(
    ws, servers: Servers | StudioClient, reviewer: str, third_opinion: ThirdOpinion | None = None
) -> PushResult:
    """Push exactly the disputed images (raters disagree, no review yet) to the reviewer, raters anonymised.

    The choices offered follow the third-opinion rule recorded in the catalogue (curate/label/rules.py);
    a rule given here is recorded before the push, as `label pull --third-opinion` does.
    """
    servers = as_servers(servers)
    try:
        third_opinion = None if third_opinion is None else ThirdOpinion(third_opinion)
    except ValueError:
        raise LabelError(f"third opinion must be 'discard' or 'reviewer', not {third_opinion!r}") from None
    reviewer = normalise_emails([reviewer])[0]
    diagnoses = ws.diagnoses
    with ws.session() as s:
        rule = third_opinion or recorded_rules(s).third_opinion
        labels = collect(s)
        reviewed = set(
            s.exec(
                select(LabelTask.image_id).join(LabelProject).join(LabelRound).where(LabelRound.kind == "review")
            ).all()
        )
    disputed: dict[int, list[RaterView]] = {}
    raters: set[str] = set()
    for image_id, item in sorted(labels.items()):
        if image_id in reviewed or not item.outcome().needs_review:
            continue
        if reviewer in {r.rater for r in item.ratings}:
            raise LabelError(f"{reviewer} rated image {image_id}; the reviewer must be a third clinician")
        raters.update(r.rater for r in item.ratings)
        disputed[image_id] = [
            RaterView(
                diagnoses.name(r.diagnosis) if r.diagnosis else None,
                r.boxes,
                tuple(FLAGS.get(f, f) for f in sorted(r.flags)),
                r.comment,
            )
            for r in item.ratings[:2]
        ]
    with ws.session() as s:
        rnd = find_round(s, "review", [reviewer], servers.key([reviewer]))
    if not disputed and rnd is None:
        return PushResult(0, [reviewer], 0)
    require_blind(servers, reviewer, sorted(raters))
    if third_opinion is not None:
        with ws.session() as s:
            settle_rules(s, third_opinion=third_opinion)  # recorded: consensus follows it from now on
    rnd = rnd or new_round(ws, "review", [reviewer], servers.key([reviewer]), " (review)")
    projects = ensure_projects(ws, servers, rnd, [reviewer], f"mpox {rnd.name}", adjudication_config(), prelabel=True)
    choices = list(diagnoses.names.values())  # the declared list, "other diagnosis" and "not assessable"

    def task(img):
        return review_task(image_link(ws, img), img.id, disputed[img.id], choices, rule.value, img.width, img.height)

    pushed = add_tasks(ws, servers, projects, sorted(disputed), task)
    _refresh_consensus(ws)
    return PushResult(rnd.id, [reviewer], pushed, {r: p.ls_project_id for r, p in projects.items()})
