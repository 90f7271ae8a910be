"""Partial files of killed writers: the next writer removes them from tmp/, never a live writer's.

Real processes: a `curate ingest` killed with SIGKILL with an original still a `.part`, a report-like writer
(no workspace lock) holding its `.part` open meanwhile, and `curate pipeline --demo` killed mid-demo.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import images as I
from PIL import Image

from curate.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "300"}
ENV.pop("CURATE_DB_URL", None)

# The CLI, killed (-9) at the first flush of an original to disk: the whole photo sits in tmp/ as a .part.
_KILLED_AT_FSYNC = """
import os, signal
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
from curate.cli import main
main()
"""

# A writer without the workspace lock (as `label report` writes its page), holding its .part until told.
_LIVE_WRITER = """
import sys
from curate.files import atomic_path
with atomic_path(sys.argv[1], tmp_dir=sys.argv[2]) as part:
    part.write_bytes(b"half a page")
    print("writing", flush=True)
    sys.stdin.read()
"""

# A writer killed (-9) with its .part half written.
_KILLED_WRITER = """
import os, signal, sys
from curate.files import atomic_path
with atomic_path(sys.argv[1], tmp_dir=sys.argv[2]) as part:
    part.write_bytes(b"half a page")
    os.kill(os.getpid(), signal.SIGKILL)
"""

# `curate pipeline --demo` killed (-9) while saving its 8th demo photo, after writing half of it.
_KILLED_MID_DEMO = """
import os, signal
from PIL import Image
real, saved = Image.Image.save, []
def save(self, fp, *args, **kwargs):
    saved.append(fp)
    if len(saved) == 8:
        with open(fp, "wb") as fh:
            fh.write(b"\\xff\\xd8\\xff\\xe0 half a JPEG")
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, fp, *args, **kwargs)
Image.Image.save = save
from curate.cli import main
main()
"""


def curate(*args, cwd=None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "curate", *map(str, args)], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc


def parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.part"))


def test_the_next_writer_removes_a_killed_ingests_partial_original_and_keeps_a_live_writers(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    folder = tmp_path / "clinic"
    folder.mkdir()
    for i in range(3):
        (folder / f"p{i}.jpg").write_bytes(I.jpeg(i))
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_AT_FSYNC, "ingest", folder, "-s", "c", "-w", ws.root, "--workers", "1"],
        env=ENV,
        capture_output=True,
    )
    assert killed.returncode == -signal.SIGKILL
    left = parts(ws.tmp)
    assert len(left) == 1, left  # a patient photo, whole but never renamed into the store
    live = subprocess.Popen(
        [sys.executable, "-c", _LIVE_WRITER, ws.reports / "page.html", ws.tmp],
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert live.stdout.readline().strip() == "writing"
        writing = [p for p in parts(ws.tmp) if p not in left]
        assert len(writing) == 1

        rerun = curate("ingest", folder, "-s", "c", "-w", ws.root)

        assert parts(ws.tmp) == writing  # the dead writer's part is gone, the live one's untouched
        assert "removed 1 partial file(s) left by a killed run" in rerun.stderr
        assert left[0] not in rerun.stdout + rerun.stderr and left[0].split(".")[0] not in rerun.stderr
        assert "added" in rerun.stdout
    finally:
        live.communicate("", timeout=60)
    assert live.returncode == 0
    assert (ws.reports / "page.html").read_bytes() == b"half a page" and parts(ws.tmp) == []
    again = curate("ingest", folder, "-s", "c", "-w", ws.root)
    assert "partial" not in again.stderr  # nothing to remove: not a word
    assert json.loads(curate("status", "-w", ws.root, "--json").stdout)["images"] == 3


def test_a_demo_killed_mid_photo_is_written_whole_on_the_rerun(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_DEMO, "pipeline", "--demo"], env=ENV, cwd=root, capture_output=True
    )
    assert killed.returncode == -signal.SIGKILL
    incoming = root / "incoming"
    assert not incoming.exists() or not any(incoming.rglob("*.*")), "a half-written demo photo is in incoming/"

    rerun = curate("pipeline", "--demo", cwd=root)

    assert "wrote 32 synthetic demo photos" in rerun.stdout
    demo = incoming / "demo-clinic"
    assert sorted(p.name for p in demo.iterdir()) == ["genital_herpes", "genital_warts", "healthy_skin", "mpox"]
    files = sorted(demo.rglob("*.*"))
    assert len(files) == 32
    for f in files:
        with Image.open(f) as img:
            img.load()  # every photo whole: a cut JPEG raises here
    assert parts(root / "tmp") == []  # the killed run's partial demo folder was removed
    assert json.loads(curate("status", "-w", root, "--json").stdout)["images"] == 32


def test_a_tmp_folder_linked_to_a_shared_one_loses_only_curates_own_parts(tmp_path):
    """A probe linked the workspace's tmp/ to a shared scratch folder (an export whose exports/ is on another disk
    is told to link tmp/ there): the next command removed every `*.part` in it that no process held, a browser's
    download and another tool's backup among them. Now only a part named as curate names its own goes."""
    from curate.files import atomic_path

    ws = Workspace.init(tmp_path / "ws")
    scratch = tmp_path / "scratch"
    (scratch / "other").mkdir(parents=True)
    (scratch / "movie.mkv.part").write_bytes(b"someone else's download")
    (scratch / "other" / "backup.tar.part").write_bytes(b"someone else's backup")
    (scratch / "other" / "report.20240315.part").write_bytes(b"a date stamp, as tempfile's 8 characters can be")
    (scratch / "other" / "backup.20240315.part").mkdir()
    if ws.tmp.exists():
        ws.tmp.rmdir()
    ws.tmp.symlink_to(scratch)
    killed = subprocess.run(  # a writer killed mid-write leaves its part in the linked folder
        [sys.executable, "-c", _KILLED_WRITER, ws.reports / "page.html", ws.tmp], env=ENV, capture_output=True
    )
    assert killed.returncode == -signal.SIGKILL
    assert len(parts(scratch)) == 5
    curate("dedupe", "-w", ws.root)
    assert parts(scratch) == ["backup.20240315.part", "backup.tar.part", "movie.mkv.part", "report.20240315.part"]
    with atomic_path(ws.reports / "again.html", tmp_dir=ws.tmp) as part:  # what the sweep takes is what we write
        part.write_bytes(b"page")
    assert (ws.reports / "again.html").read_bytes() == b"page"
