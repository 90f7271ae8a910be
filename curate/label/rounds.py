"""Labeling rounds on the catalogue side: push images to blind per-rater projects, adjudicate disputes.

Blindness: every account of an open-source Label Studio server can open every
project on it, so each clinician's project lives on a server where no other
clinician of the round has an account (curate.label.servers.require_blind);
by default that is the clinician's own server (curate.studio.fleet). Each
project records the URL of its server, so pull finds every project again.

What a clinician's browser is served is a copy of each picture's pixels, upright (`rater_copy`), never
the original: its EXIF (GPS, serials, a thumbnail of another picture), XMP, profile and comments stay home.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlsplit

from PIL import Image as PILImage
from sqlmodel import Session, select

from curate.dedupe import labelable_image_ids, uncompared_image_ids
from curate.errors import LabelError, StoreError, StudioError, midway
from curate.files import atomic_path, write_atomic
from curate.imaging import in_srgb, open_upright, pixels_only, to_rgb
from curate.intake.store import ImageStore
from curate.label.adjudication import RaterView, adjudication_config, blind_order, review_task
from curate.label.client import StudioClient
from curate.label.config import render as render_config
from curate.label.consensus import ThirdOpinion
from curate.label.diagnoses import FLAGS
from curate.label.order import Order, image_features, order_ids
from curate.label.recompute import collect, dispute, refuse_undeclared, same_dispute, write_consensus
from curate.label.rules import recorded_rules, settle_rules
from curate.label.servers import REVIEW_SHOWS, Servers, as_servers, require_blind
from curate.parallel import run_parallel
from curate.studio.server import COPIES, make_served_root
from db.models import Image, utcnow
from db.models.label import LabelAnnotation, LabelProject, LabelRound, LabelTask

# Label Studio's LOCAL_FILES_DOCUMENT_ROOT when it is not the embedded servers' (`served_root`).
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
}  # the name an original's link had before raters got copies (`rater_copy` keeps it pointing at the copy)
COPY_EXTENSIONS = {"JPEG": "jpg", "PNG": "png"}
PHOTO_FORMATS = frozenset({"JPEG", "MPO", "WEBP", "HEIF", "AVIF"})  # lossy at the source: the copy is a JPEG
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "P", "RGBa", "La"})  # may be transparent: the copy is a PNG
COPY_QUALITY = 95
COPIES_BAR = "photos copied for raters (pixels only)"  # the progress bar of push, adjudicate and audit --push


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
        if "@" not in r or "=" in r:  # "=": `--url EMAIL=URL` could never name this rater's server
            raise LabelError(f"rater {r!r} is not an email address")
    return out


def one_email(email: str, what: str = "--reviewer") -> str:
    """`email` as `normalise_emails` keeps it, or a LabelError naming `what` when it is blank (before: IndexError)."""
    emails = normalise_emails([email])
    if not emails:
        raise LabelError(f"{what}: give the clinician's email address")
    return emails[0]


def copy_format(image: Image) -> str:
    """The format of a rater's copy: JPEG for a photo (lossy at the source) without transparency, PNG
    (lossless; transparency flattened onto white by `rater_pixels`) for the rest."""
    fmt = (image.format or "").upper()
    return "JPEG" if fmt in PHOTO_FORMATS and image.mode not in ALPHA_MODES else "PNG"


def rater_pixels(data: bytes, fmt: str) -> bytes:
    """A stored original as a rater receives it: decoded upright at full size (`open_upright`) and re-encoded
    from its pixels alone (`pixels_only`), so no EXIF (GPS, serials, its thumbnail), XMP, IPTC, ICC profile,
    comment or text chunk reaches a browser. Upright, it shows as browsers showed the original (they apply
    the EXIF orientation), so boxes in percent of the picture keep their place. Transparency is flattened onto
    white, as the export and the model see it (`to_rgb`): colour kept under transparent pixels (a face "erased"
    with a transparent brush) would otherwise reach every rater's browser, one channel away."""
    img = in_srgb(open_upright(data).image)  # the colours the export shows (`in_srgb`): a grey one's profile too
    if img.mode != "L":  # grey stays grey; every other mode, alpha included, as the export writes it
        img = to_rgb(img)
    buf = io.BytesIO()
    if fmt == "JPEG":
        pixels_only(img).save(buf, "JPEG", quality=COPY_QUALITY, subsampling="4:2:0")
    else:
        pixels_only(img).save(buf, "PNG")
    return buf.getvalue()


def _needs_copy(path: Path) -> bool:
    """Whether a rater's copy must be written from its original: missing, or a link to an original (rounds
    pushed before raters got copies). A PNG copy that kept its alpha channel is flattened in place instead
    (`replace_old_copies`), with no need of its original."""
    return path.is_symlink() or not path.is_file()


def _with_alpha(path: Path) -> bool:
    """Whether a rater's PNG copy keeps an alpha channel: written before `rater_pixels` flattened transparency,
    it may hold hidden colour, so it is written again (the header alone is read)."""
    if path.suffix != ".png":
        return False
    try:
        with PILImage.open(path) as im:
            return im.mode in ALPHA_MODES or "transparency" in im.info
    except (OSError, ValueError):
        return True  # unreadable: written again from the original


def rater_copy(ws, image: Image) -> Path:
    """The file under studio/files/ that Label Studio serves for `image`: its pixels alone (`rater_pixels`),
    owner-only, written once and atomically (a killed push leaves no half copy to serve).

    Rounds pushed before raters got copies linked the original itself there: that link is replaced by the copy,
    and a link under the original's own extension (a HEIC's, a WebP's) now points at the copy."""
    dest = _copy_path(ws, image)
    folder = dest.parent
    if _needs_copy(dest):
        data = rater_pixels(_intact(ws.store, image.sha256, image.id), copy_format(image))  # raters see that photo
        write_atomic(dest, data, ws.tmp, mode=0o600)
    old = folder / f"{image.sha256}.{EXTENSIONS.get((image.format or '').upper(), 'bin')}"
    if old != dest and old.is_symlink() and os.readlink(old) != dest.name:
        with atomic_path(old, tmp_dir=ws.tmp) as tmp:
            tmp.unlink()  # the name is ours; a link to the copy takes its place
            os.symlink(dest.name, tmp)
    return dest


def _copy_path(ws, image: Image) -> Path:
    return ws.root / COPIES / image.sha256[:2] / f"{image.sha256}.{COPY_EXTENSIONS[copy_format(image)]}"


def _pixels_job(job: tuple[str, str, str, int]) -> bytes:
    """One rater copy's bytes, made in a worker: (store folder, sha256, copy format, image id) -> encoded pixels."""
    objects, sha, fmt, image_id = job
    return rater_pixels(_intact(ImageStore(Path(objects)), sha, image_id), fmt)


def _intact(store: ImageStore, sha: str, image_id: int) -> bytes:
    """The original's bytes, only while they still match their SHA-256; else StoreError naming the image."""
    try:
        return store.read(sha, check=True)
    except StoreError as exc:
        raise StoreError(f"image {image_id}: {exc}") from None


def rater_copies(ws, image_ids: list[int], on_progress: Callable[[int, int], None] | None = None) -> int:
    """Make the rater copies (`rater_copy`) of `image_ids` that do not exist yet, decoding on every core
    (about 0.14 s per 12 MP photo on one), each written as it arrives so a killed push keeps what it made;
    return how many were made. `on_progress(done, total)` counts the copies to make."""
    if not image_ids:
        return 0
    with ws.session() as s:
        images = s.exec(select(Image).where(Image.id.in_(image_ids)).order_by(Image.id)).all()
    todo = [img for img in images if _needs_copy(_copy_path(ws, img))]
    if on_progress is not None:
        on_progress(0, len(todo))

    def commit(pairs: list[tuple[Image, bytes]]) -> None:
        for img, data in pairs:
            write_atomic(_copy_path(ws, img), data, ws.tmp, mode=0o600)

    jobs = [(str(ws.store.objects), img.sha256, copy_format(img), img.id) for img in todo]
    by_job = dict(zip((j[1] for j in jobs), todo, strict=True))
    run_parallel(
        _pixels_job,
        jobs,
        lambda pairs: commit([(by_job[job[1]], data) for job, data in pairs]),
        batch=8,
        chunksize=1,
        on_progress=on_progress,
    )
    return len(todo)


def image_link(ws, image: Image) -> str:
    """The URL under which Label Studio serves `image`'s rater copy (`rater_copy`)."""
    path = rater_copy(ws, image)
    root, folder = document_root(ws)
    return f"/data/local-files/?d={(folder / path.relative_to(ws.root / COPIES)).relative_to(root).as_posix()}"


def pictured(link: str | None) -> str | None:
    """The SHA-256 of the image whose rater copy `link` shows (`image_link`: …/studio/files/ab/<sha256>.<ext>),
    None for a link to anything else (a task added by hand). Which image a task shows is its picture's: its
    `image_id` a rater can edit (`PATCH /api/tasks/<id>`), and before, an answer on image 6's photo whose task
    said image 5 was credited to image 5."""
    parts = urlsplit(link or "")
    served = parse_qs(parts.query).get("d")
    if parts.scheme or parts.netloc or parts.path != "/data/local-files/" or not served:  # served from elsewhere
        return None
    path = PurePosixPath(served[0])
    sha = path.name.split(".", 1)[0]
    if ".." in path.parts or path.parts[-4:-1] != (*COPIES.parts, sha[:2]):  # studio/files/ab/<sha256>.jpg
        return None
    return sha if len(sha) == 64 and all(c in "0123456789abcdef" for c in sha) else None


def images_by_sha(s: Session, shas: set[str]) -> dict[str, int]:
    """The catalogue's image ids of these SHA-256s (500 a query)."""
    found, order = {}, sorted(shas)
    for start in range(0, len(order), 500):
        rows = s.exec(select(Image.sha256, Image.id).where(Image.sha256.in_(order[start : start + 500]))).all()
        found.update(rows)
    return found


def document_root(ws) -> tuple[Path, Path]:
    """(Label Studio's document root, the copies' folder as it sees it): the embedded servers' `served_root`
    and its `studio/files`, or `$CURATE_STUDIO_DOCUMENT_ROOT` (a server run by hand) and the workspace's
    `studio/files`, which must lie under it. The folder is also each project's local-files storage."""
    env = os.environ.get(DOCUMENT_ROOT_ENV)
    if not env:
        root = make_served_root(ws.root)
        return root, root / COPIES
    root, folder = Path(env).resolve(), ws.root.resolve() / COPIES
    if not folder.is_relative_to(root):
        raise LabelError(f"the workspace is not under Label Studio's document root {root} (${DOCUMENT_ROOT_ENV})")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root, folder


def replace_old_copies(ws) -> int:
    """Replace what earlier versions left under studio/files/ for every round, not only the images pushed now;
    return how many. Each link to an original (rounds pushed before raters got copies) becomes the image's rater
    copy, so a task imported then is served the copy from now on (a link whose image the catalogue no longer
    knows is removed). Each PNG copy that kept its alpha channel (colour hidden under transparency, `_with_alpha`)
    is flattened from its own pixels, as `rater_pixels` now writes it: its original is not needed."""
    files = ws.root / COPIES
    found = [p for p in files.glob("*/*") if _old_copy(p)] if files.is_dir() else []
    links = [p for p in found if p.is_symlink()]
    for p in found:
        if not p.is_symlink():
            with PILImage.open(p) as im:
                buf = io.BytesIO()
                pixels_only(to_rgb(im)).save(buf, "PNG")
            write_atomic(p, buf.getvalue(), ws.tmp, mode=0o600)
    shas = sorted({p.name.split(".", 1)[0] for p in links})
    images = []
    with ws.session() as s:
        for start in range(0, len(shas), 500):
            images += s.exec(select(Image).where(Image.sha256.in_(shas[start : start + 500]))).all()
    for image in images:
        rater_copy(ws, image)
    for p in links:
        if p.is_symlink() and "/" in os.readlink(p):
            p.unlink()
    return len(found)


def _old_copy(path: Path) -> bool:
    """A link to an original, or a PNG copy with an alpha channel (`replace_old_copies`)."""
    if path.is_symlink():
        return "/" in os.readlink(path)
    return path.suffix == ".png" and _with_alpha(path)


@dataclass
class PushResult:
    round_id: int
    raters: list[str]
    pushed: int
    projects: dict[str, int] = field(default_factory=dict)  # rater -> Label Studio project id
    uncompared: int = 0  # images sent that no dedupe run had compared: their copies may be labelled twice
    rated_by_reviewer: list[int] = field(default_factory=list)  # disputes the reviewer rated: another reviewer's
    asked_again: list[int] = field(default_factory=list)  # answered reviews a rater's change made stale: asked anew
    left_queue: list[int] = field(default_factory=list)  # unanswered reviews deleted: the raters agree now
    tasks: dict[str, int] | None = None  # rater -> tasks made (None: `pushed` shared evenly, as before)
    already: int = 0  # an audit's --top images its round held before: not sent again (said, not silently fewer)


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
    """One project per clinician on their server; created remotely first, recorded right after. A project made
    earlier is given `config` when its own differs, so raters of a running round see a newly declared diagnosis
    (never one without a diagnosis they answered: `refuse_undeclared`)."""
    refuse_undeclared(ws)
    return _projects(ws, servers, rnd, raters, title, config, prelabel)


@midway()  # the round's projects are made: a server gone leaves the push half done
def _projects(
    ws, servers: Servers, rnd: LabelRound, raters: list[str], title: str, config: str, prelabel: bool
) -> dict[str, LabelProject]:
    """`ensure_projects`' work, once its input is checked."""
    with ws.session() as s:
        have = {p.rater: p for p in s.exec(select(LabelProject).where(LabelProject.round_id == rnd.id)).all()}
    for rater in raters:
        client = servers.client_for(rater)
        if rater in have:
            current = client.project_config(have[rater].ls_project_id)
            if current is None:
                raise StudioError(
                    f"Label Studio project {have[rater].ls_project_id} ({rnd.name}, {rater}) on {client.url} "
                    "was deleted in Label Studio"
                )
            if current != config:  # a diagnosis declared since (or a config edited in Label Studio): the choices
                client.set_config(have[rater].ls_project_id, config)  # raters are offered are always today's
            continue
        remote = client.create_round(
            f"{title} · {rater}",
            config,
            document_root(ws)[1],
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


@midway()  # tasks are imported: a server gone leaves the push half done
def add_tasks(
    ws, servers: Servers, projects: dict[str, LabelProject], image_ids: list[int], make_task
) -> dict[str, int]:
    """Import `image_ids` into every project that does not have them yet; record task ids. Returns the tasks
    made or adopted for each rater (one task deleted in Label Studio and made again counts for its rater alone).

    The catalogue records a task after Label Studio made it, so a push stopped in between (Ctrl-C, SIGTERM, a
    timed-out import that the server finished) left tasks it never recorded: the re-run imported them again,
    and the rater's answers on the first copies were never read. When the project's task ids differ from the
    catalogue's, its tasks are listed: one already there for an image is recorded instead of imported, and
    a recorded task deleted in Label Studio is made again (its image had waited for raters for good). The ids
    are compared, not their number: a task added by hand beside a deleted one left the number equal, and the
    deleted one was never made again. A task is its picture's image's (`pictured`), whatever its `image_id` says."""
    made: dict[str, int] = {}
    with ws.session() as s:
        images = {i.id: i for i in s.exec(select(Image).where(Image.id.in_(image_ids))).all()} if image_ids else {}
    wanted = set(image_ids)
    for rater, proj in projects.items():
        added = 0
        client = servers.client_for(rater)
        with ws.session() as s:
            recorded = {t.image_id: t for t in s.exec(select(LabelTask).where(LabelTask.project_id == proj.id)).all()}
        todo = [i for i in image_ids if i not in recorded]
        gone: set[int] = set()
        there = client.task_ids(proj.ls_project_id)
        lost = any(t.ls_task_id not in there and (t.ls_task_id > 0 or i in wanted) for i, t in recorded.items())
        if lost or (todo and there - {t.ls_task_id for t in recorded.values()}):
            listed = client.task_pictures(proj.ls_project_id)
            with ws.session() as s:
                by_sha = images_by_sha(s, {pictured(link) for _, link in listed.values()} - {None})
            remote = {task: by_sha.get(pictured(link) or "") for task, (_, link) in listed.items()}
            first: dict[int, int] = {}
            for task_id, (mark, _) in listed.items():
                if mark is not None and remote[task_id] is not None:  # push's tasks; one added by hand is not ours
                    first.setdefault(remote[task_id], task_id)
            with ws.session() as s:
                rows = s.exec(select(LabelTask).where(LabelTask.project_id == proj.id)).all()
                # deleted in Label Studio, or its id given to another image since (Label Studio's SQLite reuses the
                # highest id): before, the other image's answers were counted for this one, and recording that task
                # failed on every re-run (UNIQUE constraint). Each is first marked, then given its image's other
                # task if Label Studio has one: two rows trading ids never hold one id at once
                stale = [row for row in rows if remote.get(row.ls_task_id) != row.image_id]
                for row in stale:
                    row.ls_task_id = _DELETED - row.id
                    s.add(row)
                    gone |= {row.image_id} & (wanted - first.keys())
                s.flush()
                for row in stale:
                    row.ls_task_id = first.get(row.image_id, row.ls_task_id)
                    s.add(row)
                s.flush()
                adopted = [(i, first[i]) for i in todo if i in first]
                s.add_all(LabelTask(project_id=proj.id, image_id=i, ls_task_id=t) for i, t in adopted)
            added += len(adopted)
            todo = [i for i in todo if i not in first]
        todo += sorted(gone)
        for start in range(0, len(todo), 500):
            chunk = todo[start : start + 500]
            ids = client.import_tasks(proj.ls_project_id, [make_task(images[i]) for i in chunk])
            with ws.session() as s:
                rows = {t.image_id: t for t in s.exec(select(LabelTask).where(LabelTask.project_id == proj.id)).all()}
                by_id = {row.ls_task_id: row for row in rows.values()}
                for i, t in zip(chunk, ids, strict=True):
                    if (clash := by_id.get(t)) is not None and clash.image_id != i:  # an id reused unseen
                        clash.ls_task_id = _DELETED - clash.id
                        s.add(clash)
                        s.flush()
                    row = rows.get(i) or LabelTask(project_id=proj.id, image_id=i, ls_task_id=t)
                    row.ls_task_id = t
                    s.add(row)
            added += len(chunk)
        made[rater] = added
    return made


_DELETED = -1  # a recorded task gone from Label Studio holds _DELETED - its row id: no Label Studio id, and unique


def _drop_stale_reviews(
    ws, client: StudioClient, project: LabelProject, disputed: dict, settled: set[int], make_task, again: set[int]
) -> list[int]:
    """Delete the reviewer's unanswered tasks that no longer show their dispute (a rater changed their answer
    since: the reviewer would choose between diagnoses nobody now gives, and an image whose raters now say
    mpox and warts was discarded for the reviewer's "herpes"); `add_tasks` then makes each again, as it makes
    any recorded task deleted in Label Studio. Only images still disputed are passed, so none is answered.

    A task of a `settled` image (no longer in dispute: its raters agree now, or one withdrew; no review
    recorded) is deleted too while nobody has answered it: the reviewer's answer would not count, and it stood
    in their queue for nothing. Should the raters disagree again, the next adjudicate makes it again.

    A task of an image `again` (answered, and a rater's diagnosis changed since: that answer no longer counts) is
    deleted although answered, so that its dispute is asked anew; the answer stays in the catalogue's history.
    Returns the settled images whose task left the queue (said to the steward)."""
    with ws.session() as s:
        recorded = {
            t.ls_task_id: t.image_id
            for t in s.exec(select(LabelTask).where(LabelTask.project_id == project.id)).all()
            if t.image_id in disputed or t.image_id in settled
        }
        images = {i.id: i for i in s.exec(select(Image).where(Image.id.in_(list(recorded.values())))).all()}
    if not recorded:
        return []
    shown = ("summary", "options", "rule")
    left: list[int] = []
    # never a task with an answer, even one not pulled yet: before, a dispute changed since the last pull deleted the
    # reviewer's fresh answer with its task (and her answer on the old summary is still hers: pull reads it)
    unanswered = client.unanswered_tasks(project.ls_project_id)
    for task_id, data in client.task_data(project.ls_project_id).items():
        image_id = recorded.get(task_id)
        if image_id in again:
            now = make_task(images[image_id])["data"]
            _withdraw_stale(ws, project.id, image_id, now["disputed"])  # first: a kill between leaves no live one
            was = data.get("disputed")  # a task already showing today's dispute, in either order, keeps its answer
            if not isinstance(was, list) or not same_dispute(was, now["disputed"]):
                client.delete_task(task_id)
            continue
        if image_id is None or task_id not in unanswered:
            continue
        if image_id in settled:
            client.delete_task(task_id)
            left.append(image_id)
            continue
        now = make_task(images[image_id])["data"]
        if any(data.get(k) != now.get(k) for k in shown):
            client.delete_task(task_id)
    return sorted(left)


def _withdraw_stale(ws, project_id: int, image_id: int, disputed: list[str]) -> None:
    """Mark withdrawn, as the next pull would once their task is deleted, the answers on an image's review task
    that were given on another dispute than `disputed`: until then such an answer made the next adjudicate ask
    again, deleting the task it had just made (and an answer given there since). Answers to today's dispute
    stay."""
    now = utcnow()
    with ws.session() as s:
        task = s.exec(
            select(LabelTask.id).where(LabelTask.project_id == project_id, LabelTask.image_id == image_id)
        ).one()
        revisions = s.exec(
            select(LabelAnnotation).where(LabelAnnotation.task_id == task).order_by(LabelAnnotation.revision)
        ).all()
        for ann in {a.ls_annotation_id: a for a in revisions}.values():  # each answer's last revision
            if not ann.withdrawn and ann.shown is not None and not same_dispute(json.loads(ann.shown), disputed):
                ann.withdrawn, ann.withdrawn_at = True, now
                s.add(ann)


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
    sharper copy arriving later is never labelable and a labelled cluster is not sent again,
    unless the steward keeps another member (`curate dedupe keep`): that one is sent.
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
    on_progress: Callable[[int, int], None] | None = None,
) -> PushResult:
    """Send labelable images not yet in any rating round to each rater's project (idempotent), in `order`
    (curate.label.order; uncertainty needs `predictions`: image sha256 -> class probabilities).
    `on_progress(done, total)` counts the rater copies made first (`rater_copies`).

    Rating tasks carry the image and its id only: no prediction or model output ever reaches a rater."""
    servers = as_servers(servers)
    raters = rating_pair(raters)
    config = render_config(ws.diagnoses)  # the declared diagnoses; a mismatch with label_config.xml stops here
    refuse_undeclared(ws)  # before any server is asked (`ensure_projects` checks it again for every round kind)
    for rater in raters:
        require_blind(servers, rater, [r for r in raters if r != rater])
    replace_old_copies(ws)  # earlier rounds' tasks are served copies too
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
    rater_copies(ws, sorted(mine) + candidates, on_progress)
    task = lambda img: {"image": image_link(ws, img), "image_id": img.id}  # noqa: E731
    made = add_tasks(ws, servers, projects, sorted(mine) + candidates, task)
    _refresh_consensus(ws)
    return PushResult(
        rnd.id, raters, sum(made.values()), {r: p.ls_project_id for r, p in projects.items()}, uncompared, tasks=made
    )


def adjudicate(
    ws,
    servers: Servers | StudioClient,
    reviewer: str,
    third_opinion: ThirdOpinion | None = None,
    on_progress: Callable[[int, int], None] | None = None,
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
    reviewer = one_email(reviewer)
    diagnoses = ws.diagnoses
    with ws.session() as s:
        rule = third_opinion or recorded_rules(s).third_opinion
        labels = collect(s)
        rnd = find_round(s, "review", [reviewer], servers.key([reviewer]))
        reviewed = dict(
            s.exec(
                select(LabelTask.image_id, LabelRound.id)
                .join(LabelProject, LabelTask.project_id == LabelProject.id)
                .join(LabelRound, LabelProject.round_id == LabelRound.id)
                .where(LabelRound.kind == "review")
            ).all()
        )
    disputed: dict[int, list[RaterView]] = {}
    shown: dict[int, list[str | None]] = {}  # the raters' diagnoses each task shows, as slugs
    settled: set[int] = set()  # in this reviewer's round, no review recorded, and the raters no longer disagree
    again: set[int] = set()  # in this reviewer's round, answered, and a rater's diagnosis changed since
    raters: set[str] = set()
    own: list[int] = []  # with three clinicians in rotating pairs each reviews the pairs they are not in
    mine = rnd.id if rnd is not None else None
    for image_id, item in sorted(labels.items()):
        # an image of this reviewer's round still disputed stays: its task, if deleted in Label Studio (the
        # pull withdrew the answer), is made again by `add_tasks`; another reviewer's images are theirs
        in_round = reviewed.get(image_id)
        if mine is not None and in_round == mine and item.review is None and not item.outcome().needs_review:
            settled.add(image_id)
        if not item.outcome().needs_review or (in_round is not None and in_round != mine):
            continue
        if reviewer in {r.rater for r in item.ratings}:
            own.append(image_id)
            continue
        raters.update(r.rater for r in item.ratings)
        if item.stale_review and in_round == mine:
            again.add(image_id)
        pair = blind_order(image_id, item.ratings[:2], lambda r: r.rater)
        shown[image_id] = dispute(pair)
        disputed[image_id] = [
            RaterView(
                diagnoses.name(r.diagnosis) if r.diagnosis else None,
                r.boxes,
                tuple(FLAGS.get(f, f) for f in sorted(r.flags)),
                r.comment,
            )
            for r in pair
        ]
    if not disputed and rnd is None:
        if own:  # before, one such image refused the whole batch: a pair's own clinician never reviews it
            raise LabelError(
                f"{reviewer} rated all {len(own)} disputed image(s) (image {own[0]} first); the reviewer must be "
                "a third clinician"
            )
        return PushResult(0, [reviewer], 0)
    require_blind(servers, reviewer, sorted(raters), REVIEW_SHOWS)
    replace_old_copies(ws)  # earlier rounds' tasks are served copies too
    if third_opinion is not None:
        with ws.session() as s:
            settle_rules(s, third_opinion=third_opinion)  # recorded: consensus follows it from now on
    rnd = rnd or new_round(ws, "review", [reviewer], servers.key([reviewer]), " (review)")
    projects = ensure_projects(ws, servers, rnd, [reviewer], f"mpox {rnd.name}", adjudication_config(), prelabel=True)
    choices = list(diagnoses.names.values())  # the declared list, "other diagnosis" and "not assessable"
    rater_copies(ws, sorted(disputed), on_progress)

    def task(img):
        return review_task(
            image_link(ws, img), img.id, disputed[img.id], choices, rule.value, img.width, img.height, shown[img.id]
        )

    left = _drop_stale_reviews(ws, servers.client_for(reviewer), projects[reviewer], disputed, settled, task, again)
    pushed = sum(add_tasks(ws, servers, projects, sorted(disputed), task).values())
    _refresh_consensus(ws)
    return PushResult(
        rnd.id,
        [reviewer],
        pushed,
        {r: p.ls_project_id for r, p in projects.items()},
        rated_by_reviewer=own,
        asked_again=sorted(again),
        left_queue=left,
    )
