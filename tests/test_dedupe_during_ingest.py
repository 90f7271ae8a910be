"""`curate dedupe` during an ingest (issue 11, item 6): it never makes an unhashed image a representative.

On the command line the workspace writer lock makes dedupe wait for the running ingest; through the
library (no lock) dedupe clusters only the images it hashed, so photos that arrive mid-run wait for the
next run instead of becoming representatives nobody compared.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import images as I
import pytest
from conftest import wait_for
from sqlmodel import select

from curate.dedupe import labelable_image_ids
from curate.dedupe.run import DedupeOptions, run_dedupe
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace
from db.models import DedupeCode, DedupeMember, Image

REPO = Path(__file__).resolve().parents[1]


def _photos(folder: Path, n: int, start: int = 0, copies_every: int = 4) -> Path:
    """Real JPEGs, with a re-encoded near-duplicate of every `copies_every`-th one."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        (folder / f"p{i:04d}.jpg").write_bytes(I.jpeg(i, size=(480, 360)))
        if i % copies_every == 0:
            (folder / f"p{i:04d}_copy.jpg").write_bytes(I.encode(I.photo(i, (480, 360)), "JPEG", quality=70))
    return folder


def _unhashed_representatives(ws: Workspace) -> list[int]:
    with ws.session() as s:
        hashed = set(s.exec(select(DedupeCode.image_id)).all())
        reps = s.exec(select(DedupeMember.image_id).where(DedupeMember.representative)).all()
    return sorted(i for i in reps if i not in hashed)


def _cli(ws: Workspace, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "300", "CURATE_WORKSPACE": str(ws.root)}
    env.pop("CURATE_DB_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "curate", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
def test_cli_dedupe_started_during_an_ingest_waits_for_it_and_hashes_every_image(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    folder = _photos(tmp_path / "incoming", 480)
    ingest = _cli(ws, "ingest", str(folder), "--source", "clinic", "--workers", "1")
    lock = ws.root / ".curate.lock"
    # the ingest holds the writer lock and has committed its first images: dedupe now would see a partial catalogue
    wait_for(
        lambda: (
            ingest.poll() is not None or ("ingest" in (lock.read_text() if lock.exists() else "") and _count(ws) > 0)
        ),
        timeout=120,
    )
    assert ingest.poll() is None, "the ingest finished before it committed its first image; make the folder bigger"
    # freeze the ingest while it holds the lock (a stopped process keeps its flock), so the race is decided by
    # the lock and not by how fast this machine hashes
    os.kill(ingest.pid, signal.SIGSTOP)
    try:
        dedupe = _cli(ws, "dedupe", "--workers", "1", "--json")
        # until dedupe blocks on the lock (a waiting flock shows as "->" in /proc/locks)
        wait_for(lambda: dedupe.poll() is not None or "->" in Path("/proc/locks").read_text(), timeout=120)
        assert dedupe.poll() is None, "dedupe must wait for the ingest, not fail or run beside it"
    finally:
        os.kill(ingest.pid, signal.SIGCONT)
    out_i, err_i = ingest.communicate(timeout=600)
    out_d, err_d = dedupe.communicate(timeout=600)
    assert ingest.returncode == 0 and "Traceback" not in err_i, err_i[-2000:]
    assert dedupe.returncode == 0 and "Traceback" not in err_d, err_d[-2000:]
    assert "waiting for `curate ingest`" in " ".join(err_d.split()), err_d[-2000:]
    with ws.session() as s:
        images = s.exec(select(Image)).all()
        members = s.exec(select(DedupeMember)).all()
    assert len(images) == 480 + 120
    assert all(i.phash for i in images), "dedupe ran on a partial catalogue: some images were never hashed"
    assert len(members) == len(images)
    assert not _unhashed_representatives(ws)
    report = json.loads(out_d)
    assert report["duplicates"] >= 120  # every re-encoded copy found (the synthetic set holds a few look-alikes too)


def _count(ws: Workspace) -> int:
    with ws.session() as s:
        return len(s.exec(select(Image.id)).all())


def test_library_dedupe_does_not_cluster_images_that_arrive_while_it_hashes(tmp_path, db_url):
    """No lock here (two library calls): the photos ingested mid-run are left for the next run."""
    ws = Workspace.init(tmp_path / "ws", db_url=db_url)
    ingest_folder(ws, _photos(tmp_path / "first", 12), IngestOptions(source="clinic", workers=1))
    late = _photos(tmp_path / "late", 8, start=100)
    arrived: list[int] = []

    def ingest_meanwhile(stage: str, done: int, total: int | None) -> None:
        if stage == "hash" and not arrived:
            arrived.append(ingest_folder(ws, late, IngestOptions(source="clinic", workers=1)).added)

    report = run_dedupe(ws, DedupeOptions(workers=1), on_progress=ingest_meanwhile)
    assert arrived == [10] and report.hashed == 15
    assert not _unhashed_representatives(ws), "an image nobody hashed became a representative to label"
    with ws.session() as s:
        assert len(s.exec(select(DedupeMember)).all()) == 15
        assert len(labelable_image_ids(s)) == 12 + 10  # the late ones are their own cluster until the next run
    report = run_dedupe(ws, DedupeOptions(workers=1))
    assert report.hashed == 10 and report.duplicates == 3 + 2
    assert not _unhashed_representatives(ws)
    with ws.session() as s:
        assert len(labelable_image_ids(s)) == 12 + 8
