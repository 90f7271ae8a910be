"""Fault injection: kill -9 a real `curate` command at seeded random moments, re-run it, check the result.

For each command (ingest, scrape, dedupe, export) a workspace is prepared once; a reference run on a
copy gives the expected outcome and the command's duration T. Each trial copies the prepared state
(the folder, and on PostgreSQL the database, cloned from a template), starts the command, sends
SIGKILL to its whole process group (workers included) at a moment drawn uniformly from [0.05 T, T],
re-runs it to completion and checks: exit 0 and no traceback; every image row has its verified
object, no image or arrival twice; no audit run left "running"; every registered export verifies
against its SHA256SUMS; and the outcome equals the reference (nothing lost, nothing duplicated).

Used by `tests/test_fault_injection.py` (a few kills per command, in CI) and `bench/faults.py`
(20 per command, prints kills survived / attempted). Label pull runs against the suite's real Label
Studio servers (one per clinician, tests/studio_server.py): `run_case("label pull", …, studio=fixture)`
with a round pushed and annotated through the clinicians' own API tokens.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import select

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import images as I

from curate.workspace import Workspace
from db.models import CommandRun, DedupeMember, Image, Provenance, Rejection, Source
from db.models.export import DatasetVersionRecord
from db.models.label import Consensus, LabelAnnotation, LabelProject, LabelTask

# --- backends: a prepared state that can be cloned cheaply -------------------------------------


class Backend:
    """Where catalogues live: 'sqlite' (inside the workspace folder) or a PostgreSQL server URL."""

    def __init__(self, server_url: str | None = None):
        self.server_url = server_url  # postgresql+psycopg://user@host:port (no database)
        self.name = "postgres" if server_url else "sqlite"

    def _admin(self, sql: str, attempts: int = 50) -> None:
        import psycopg

        for attempt in range(attempts):  # a killed client's backend may linger for a moment
            try:
                with psycopg.connect(
                    self.server_url.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True
                ) as c:
                    c.execute(sql)
                return
            except psycopg.errors.ObjectInUse:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.1)

    def new_url(self, template: str | None = None) -> str | None:
        if not self.server_url:
            return None
        name = "f_" + uuid.uuid4().hex[:12]
        self._admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""))
        return f"{self.server_url}/{name}"

    def clone(self, src_root: Path, src_url: str | None, dest_root: Path) -> Workspace:
        shutil.copytree(src_root, dest_root, symlinks=True)
        lock = dest_root / ".curate.lock"
        if lock.exists():
            lock.unlink()
        url = self.new_url(template=src_url) if src_url else None
        if url:  # the copy's catalogue is the cloned database: recorded as a steward re-pointing a workspace would
            toml = dest_root / "curate.toml"
            toml.write_text(re.sub(r'(?m)^db_url = ".*"$', f'db_url = "{url}"', toml.read_text()))
        return Workspace.open(dest_root, db_url=url)


# --- commands under test ----------------------------------------------------------------------


@dataclass
class Case:
    name: str
    prepare: Callable[..., tuple[Workspace, dict]]  # (tmp, backend, **extra) -> prepared workspace, context
    argv: Callable[[Workspace, dict], list[str]]
    outcome: Callable[[Workspace], object]
    env: Callable[[dict], dict] = lambda ctx: {}


def _photos(folder: Path, n: int, dup_every: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"p{i:03d}.jpg").write_bytes(I.jpeg(i, size=(320, 240)))
        if dup_every and i % dup_every == 0:  # a re-encoded near-duplicate
            (folder / f"p{i:03d}_copy.jpg").write_bytes(I.encode(I.photo(i, (320, 240)), "JPEG", quality=70))
    (folder / "broken.jpg").write_bytes(I.truncated_jpeg(999))
    (folder / "notes.txt").write_text("not a photo")
    return folder


def _arrivals(ws: Workspace) -> object:
    with ws.session() as s:
        prov = s.exec(
            select(Image.sha256, Source.name, Provenance.locator)
            .join(Provenance, Provenance.image_id == Image.id)
            .join(Source, Source.id == Provenance.source_id)
        ).all()
        rej = s.exec(select(Rejection.locator, Rejection.reason)).all()
    return sorted(prov), sorted(set(rej))


def _prepare_ingest(tmp: Path, backend: Backend):
    ws = Workspace.init(tmp / "ws", db_url=backend.new_url())
    return ws, {"folder": _photos(tmp / "incoming", 60)}


def _prepare_dedupe(tmp: Path, backend: Backend):
    from curate.intake.ingest import IngestOptions, ingest_folder

    ws = Workspace.init(tmp / "ws", db_url=backend.new_url())
    ingest_folder(ws, _photos(tmp / "incoming", 50, dup_every=5), IngestOptions(source="clinic", workers=1))
    return ws, {}


def _clusters(ws: Workspace) -> object:
    with ws.session() as s:
        rows = s.exec(
            select(Image.sha256, DedupeMember.cluster_key, DedupeMember.representative).join(
                DedupeMember, DedupeMember.image_id == Image.id
            )
        ).all()
    groups: dict[str, set] = {}
    for sha, key, _ in rows:
        groups.setdefault(key, set()).add(sha)
    return sorted(sorted(g) for g in groups.values()), sorted(sha for sha, _, rep in rows if rep)


def _prepare_export(tmp: Path, backend: Backend):
    from test_export_fixtures import build_catalogue

    cat = build_catalogue(tmp, db_url=backend.new_url())
    return cat.ws, {}


def _export_outcome(ws: Workspace) -> object:
    from curate.dataset import DatasetVersion

    with ws.session() as s:
        recs = s.exec(select(DatasetVersionRecord)).all()
    for r in recs:
        DatasetVersion.open(ws.root / r.path)  # verifies SHA256SUMS
    return sorted((r.name, r.version, r.checksum, r.archive_sha256) for r in recs)


def _prepare_scrape(tmp: Path, backend: Backend):
    from engine_server import EngineServer

    srv = EngineServer().__enter__()
    srv.delay = 0.03
    ws = Workspace.init(tmp / "ws", db_url=backend.new_url())
    return ws, {"server": srv}


def _scrape_outcome(ws: Workspace) -> object:
    with ws.session() as s:
        prov = s.exec(select(Image.sha256, Provenance.locator).join(Provenance, Provenance.image_id == Image.id)).all()
        rej = s.exec(select(Rejection.locator, Rejection.reason)).all()
    return sorted(prov), sorted(set(rej))


def _prepare_pull(tmp: Path, backend: Backend, studio=None, raters: int = 2, images: int = 16):
    """A round pushed to two clinicians' servers and annotated by each with their own token (not yet pulled)."""
    from label_studio_sdk import LabelStudio

    from curate.label.rounds import push

    ws = Workspace.init(studio.base / f"faults-{uuid.uuid4().hex[:10]}", db_url=backend.new_url())
    names = list(studio.urls)[:raters]
    ids = []
    with ws.session() as s:
        for i in range(images):
            data = I.jpeg(2000 + i, size=(200, 100))
            sha, _ = ws.store.put(data)
            img = Image(sha256=sha, size_bytes=len(data), format="JPEG", width=200, height=100, mode="RGB")
            s.add(img)
            s.flush()
            ids.append(img.id)
    push(ws, studio.servers(), names)
    with ws.session() as s:
        tasks = s.exec(select(LabelTask.image_id, LabelTask.ls_task_id, LabelProject.rater).join(LabelProject)).all()
    choices = ["Mpox", "Genital herpes", "Dermatosis"]
    for image_id, task, rater in tasks:  # agree on most, disagree on some
        k = ids.index(image_id)
        pick = choices[k % 3] if (k % 4 or rater == names[0]) else choices[(k + 1) % 3]
        LabelStudio(base_url=studio.urls[rater], api_key=studio.tokens[rater]).annotations.create(
            id=task,
            result=[{"from_name": "diagnosis", "to_name": "image", "type": "choices", "value": {"choices": [pick]}}],
        )
    return ws, {"studio": studio}


def _pull_outcome(ws: Workspace) -> object:
    with ws.session() as s:
        anns = s.exec(
            select(
                LabelAnnotation.ls_annotation_id,
                LabelAnnotation.rater,
                LabelAnnotation.revision,
                LabelAnnotation.withdrawn,
                LabelAnnotation.content_sha256,
            )
        ).all()
        cons = s.exec(
            select(Consensus.image_id, Consensus.status, Consensus.diagnosis, Consensus.boxes, Consensus.exclusion)
        ).all()
    assert len({a[:3] for a in anns}) == len(anns), "an annotation (server id, rater, revision) recorded twice"
    assert anns and any(c[1] == "agreed" for c in cons), "the pull recorded no annotation or no consensus"
    return sorted(anns), sorted(cons)


CASES: dict[str, Case] = {
    "ingest": Case(
        "ingest",
        _prepare_ingest,
        lambda ws, c: ["ingest", str(c["folder"]), "--source", "clinic", "--workers", "2"],
        _arrivals,
    ),
    "scrape": Case(
        "scrape",
        _prepare_scrape,
        lambda ws, c: ["scrape", "mpox rash", "--max", "0", "--threads", "2"],
        _scrape_outcome,
        env=lambda c: {"CURATE_SCRAPE_BASE_URL": c["server"].base},
    ),
    "dedupe": Case(
        "dedupe", _prepare_dedupe, lambda ws, c: ["dedupe", "--workers", "2", "--min-side", "64"], _clusters
    ),
    "export": Case(
        "export",
        _prepare_export,
        lambda ws, c: ["export", "--name", "mpox", "--version", "1.0.0", "--size", "64", "--archive", "--workers", "2"],
        _export_outcome,
    ),
    "label pull": Case(
        "label pull",
        _prepare_pull,
        lambda ws, c: ["label", "pull", *c["studio"].url_args()],
        _pull_outcome,
        env=lambda c: {
            "LABEL_STUDIO_API_KEY": c["studio"].admin_token,
            "CURATE_STUDIO_DOCUMENT_ROOT": str(c["studio"].base),
        },
    ),
}


# --- invariants -------------------------------------------------------------------------------


def check_consistent(ws: Workspace) -> None:
    """Every image row has its verified file; no sha, arrival or version twice; no run left running."""
    with ws.session() as s:
        images = s.exec(select(Image)).all()
        arrivals = s.exec(select(Provenance.image_id, Provenance.source_id, Provenance.locator)).all()
        running = s.exec(select(CommandRun).where(CommandRun.status == "running")).all()
        versions = s.exec(select(DatasetVersionRecord.name, DatasetVersionRecord.version)).all()
    assert len({i.sha256 for i in images}) == len(images), "an image recorded twice"
    for i in images:
        assert ws.store.verify(i.sha256), f"image {i.id}: object missing or corrupt"
    assert len(set(arrivals)) == len(arrivals), "an arrival recorded twice"
    assert not running, f"{len(running)} audit run(s) still 'running' after a successful re-run"
    assert len(set(versions)) == len(versions), "a dataset version registered twice"
    assert not list(ws.objects.rglob("*.part")), "a partial object under objects/"


# --- the loop ---------------------------------------------------------------------------------


@dataclass
class Result:
    command: str
    backend: str
    attempted: int = 0
    survived: int = 0
    landed_mid_run: int = 0  # kills that hit a live process (the others came after it finished)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _start(ws: Workspace, argv: list[str], env: dict) -> subprocess.Popen:
    full = {**os.environ, "PYTHONPATH": str(REPO), "CURATE_WORKSPACE": str(ws.root), **env}
    full.pop("CURATE_DB_URL", None)
    if not ws.db_url.startswith("sqlite"):
        full["CURATE_DB_URL"] = ws.db_url
    return subprocess.Popen(
        [sys.executable, "-m", "curate", *argv],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _finish(ws: Workspace, argv: list[str], env: dict) -> None:
    proc = _start(ws, argv, env)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0 and "Traceback" not in out + err, (
        f"re-run failed ({proc.returncode}): {err.strip()[-500:]}"
    )


def run_case(name: str, kills: int, seed: int, tmp: Path, backend: Backend, **extra) -> Result:
    """`extra` goes to the case's prepare (label pull: `studio=` a tests/studio_server.StudioFixture)."""
    case = CASES[name]
    result = Result(name, backend.name)
    started = time.monotonic()
    base, ctx = case.prepare(tmp / "base", backend, **extra)
    base.engine.dispose()
    try:
        ref_ws = backend.clone(base.root, _db(base), tmp / "reference")
        t0 = time.monotonic()
        _finish(ref_ws, case.argv(ref_ws, ctx), case.env(ctx))
        duration = time.monotonic() - t0
        check_consistent(ref_ws)
        expected = case.outcome(ref_ws)
        ref_ws.engine.dispose()
        rng = random.Random(seed)
        for k in range(kills):
            result.attempted += 1
            ws = backend.clone(base.root, _db(base), tmp / f"trial{k}")
            try:
                proc = _start(ws, case.argv(ws, ctx), case.env(ctx))
                time.sleep(rng.uniform(0.05, 1.0) * duration)
                if proc.poll() is None:
                    result.landed_mid_run += 1
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=60)
                _finish(ws, case.argv(ws, ctx), case.env(ctx))
                check_consistent(ws)
                got = case.outcome(ws)
                assert got == expected, "outcome differs from the uninterrupted run (lost or duplicated rows)"
                result.survived += 1
            except AssertionError as exc:
                result.failures.append(f"kill {k}: {exc}")
            finally:
                ws.engine.dispose()
                shutil.rmtree(ws.root, ignore_errors=True)
    finally:
        if "server" in ctx:
            ctx["server"].__exit__(None, None, None)
        if tmp not in base.root.parents:  # label pull's base lives under the Label Studio document root
            shutil.rmtree(base.root, ignore_errors=True)
    result.seconds = time.monotonic() - started
    return result


def _db(ws: Workspace) -> str | None:
    return None if ws.db_url.startswith("sqlite") else ws.db_url
