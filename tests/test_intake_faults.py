"""Faults at intake: odd names, unreadable files, a full or read-only workspace, kill -9 mid-run."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import images as I
import pytest
from conftest import wait_for
from sqlmodel import select

from curate.errors import StoreError, WorkspaceError
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace
from db.models import Image, Provenance


def test_odd_file_names_are_ingested_and_recorded_verbatim(sqlite_ws, tmp_path):
    root = tmp_path / "odd"
    root.mkdir()
    names = ["..jpg", "...jpg", "Ünïcødé ø 日本.jpg", "cafe\u0301.jpg", "new\nline.jpg", "-rf.jpg"]
    for i, n in enumerate(names):
        (root / n).write_bytes(I.jpeg(200 + i))
    raw = os.fsencode(str(root)) + b"/bad-\xff\xfe.jpg"  # not valid UTF-8
    with open(raw, "wb") as fh:
        fh.write(I.jpeg(299))
    report = ingest_folder(sqlite_ws, root, IngestOptions(source="odd", workers=1))
    assert report.added == len(names) + 1 and not report.rejected
    with sqlite_ws.session() as s:
        locs = set(s.exec(select(Provenance.locator)).all())
    assert set(names) <= locs
    assert "bad-\\xff\\xfe.jpg" in locs
    # nothing was written outside the store
    assert sorted(p.name for p in sqlite_ws.root.iterdir()) == [
        "catalogue.db",
        "catalogue.db-shm",
        "catalogue.db-wal",
        "curate.toml",
        "exports",
        "objects",
        "reports",
        "tmp",
    ]


def test_unreadable_entries_are_rejected_and_the_run_goes_on(sqlite_ws, tmp_path):
    root = tmp_path / "mixed"
    root.mkdir()
    (root / "ok.jpg").write_bytes(I.jpeg(1))
    (root / "dangling.jpg").symlink_to(root / "does-not-exist.jpg")
    (root / "fifo.jpg").mkdir()  # a folder with an image name is walked, not read
    (root / "zero.png").write_bytes(b"")
    report = ingest_folder(sqlite_ws, root, IngestOptions(source="m", workers=1))
    assert report.added == 1
    reasons = dict(report.rejected)
    assert reasons["dangling.jpg"].startswith("unreadable")
    assert reasons["zero.png"] == "empty file"


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "small"
    if not _mount_tmpfs(mnt, "2m"):
        pytest.skip("needs root to mount a small tmpfs")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_stops_with_one_line_and_keeps_what_was_saved(small_disk, tmp_path):
    ws = Workspace.init(small_disk / "ws", db_url=f"sqlite:///{tmp_path / 'cat.db'}")
    root = tmp_path / "big"
    root.mkdir()
    for i in range(40):  # ~ 3.5 MB of noisy photos into a 2 MB disk
        (root / f"{i:02d}.png").write_bytes(I.encode(I.photo(i, (256, 192)), "PNG"))
    with pytest.raises(StoreError, match="disk full"):
        ingest_folder(ws, root, IngestOptions(source="s", workers=1, batch=5))
    with ws.session() as s:
        rows = s.exec(select(Image)).all()
    assert rows, "images saved before the disk filled must stay recorded"
    assert all(ws.store.verify(r.sha256) for r in rows)
    assert not list(ws.tmp.iterdir())


def test_read_only_workspace_gives_a_clear_error(tmp_path):
    mnt = tmp_path / "ro"
    if not _mount_tmpfs(mnt, "4m"):
        pytest.skip("needs root to mount a tmpfs")
    try:
        Workspace.init(mnt / "ws").engine.dispose()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "a.jpg").write_bytes(I.jpeg(1))
        with pytest.raises(WorkspaceError, match="readonly|read-only|unable to open"):
            ws = Workspace.open(mnt / "ws")
            ingest_folder(ws, tmp_path / "in", IngestOptions(source="s", workers=1))
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.slow
def test_kill_9_mid_ingest_leaves_a_consistent_catalogue_and_rerun_completes(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    root = tmp_path / "photos"
    root.mkdir()
    n = 160
    for i in range(n):
        (root / f"p{i:03d}.jpg").write_bytes(I.jpeg(1000 + i, (640, 480)))
    cmd = [
        sys.executable,
        "-m",
        "curate",
        "ingest",
        str(root),
        "--source",
        "clinic",
        "--workspace",
        str(ws.root),
        "--json",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def some_rows():
        with ws.session() as s:
            return len(s.exec(select(Image.id)).all()) >= 10

    try:
        wait_for(some_rows, timeout=60, interval=0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    with ws.session() as s:
        rows = s.exec(select(Image)).all()
        provs = s.exec(select(Provenance)).all()
    assert 0 < len(rows) < n, "the kill should land mid-run"
    assert all(ws.store.verify(r.sha256) for r in rows), "a row without its file"
    assert len({r.sha256 for r in rows}) == len(rows)
    assert len(provs) == len(rows)

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with ws.session() as s:
        assert len(s.exec(select(Image)).all()) == n
        assert len(s.exec(select(Provenance)).all()) == n
    stored = list(ws.store.iter_shas())
    assert len(stored) == n  # no file stored twice, no orphan left
