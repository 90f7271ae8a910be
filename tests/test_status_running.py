"""`curate status` beside a writer that is running now, one that was killed, and originals gone from the store.

Real processes: the writer is a child holding the workspace lock through `audited` (as every writing command
does), and status runs as `python -m curate status` in another process.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import images as I

from curate.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "300"}
ENV.pop("CURATE_DB_URL", None)

# A writing command mid-run: it holds the lock and its audit row says "running" until stdin closes.
_WRITER = """
import os, signal, sys
from curate.audit import audited
from curate.workspace import Workspace
ws = Workspace.open(sys.argv[1])
with audited(ws, sys.argv[2], {}):
    print("running", flush=True)
    if sys.stdin.read() == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
"""


def attempt(*args) -> subprocess.CompletedProcess:
    """`python -m curate ARGS` in a child, however it ends."""
    return subprocess.run(
        [sys.executable, "-m", "curate", *map(str, args)], capture_output=True, text=True, env=ENV, timeout=300
    )


def curate(*args) -> subprocess.CompletedProcess:
    proc = attempt(*args)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc


def writer(root: Path, command: str = "ingest") -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(root), command],
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "running"
    return proc


def test_status_names_the_running_writer_and_warns_only_about_dead_runs(tmp_path):
    root = tmp_path / "ws"
    Workspace.init(root)
    running = writer(root)
    try:
        shown = curate("status", "-w", root).stdout
        data = json.loads(curate("status", "-w", root, "--json").stdout)
    finally:
        running.communicate("", timeout=60)
    assert running.returncode == 0
    assert f"running now: `curate ingest` (pid {running.pid}, since " in shown
    assert "did not finish" not in shown  # the running ingest is not an unfinished run to repeat
    assert data["running_now"]["command"] == "ingest" and data["running_now"]["pid"] == running.pid
    assert data["unfinished_runs"] == 0

    finished = json.loads(curate("status", "-w", root, "--json").stdout)
    assert finished["running_now"] is None and finished["unfinished_runs"] == 0

    killed = writer(root)
    killed.communicate("kill", timeout=60)
    assert killed.returncode == -signal.SIGKILL
    shown = curate("status", "-w", root).stdout
    assert "did not finish: `curate ingest` (killed, started " in shown and "running now" not in shown
    assert "re-run it to complete." in shown
    data = json.loads(curate("status", "-w", root, "--json").stdout)
    assert data["running_now"] is None and data["unfinished_runs"] == 1


def workspace_and_photos(tmp_path: Path, n: int) -> tuple[Path, Path]:
    """A new workspace and a folder of `n` photos to ingest into it."""
    root = tmp_path / "ws"
    Workspace.init(root)
    folder = tmp_path / "clinic"
    folder.mkdir()
    for i in range(n):
        (folder / f"p{i}.jpg").write_bytes(I.jpeg(i))
    return root, folder


def test_status_counts_originals_missing_from_the_store(tmp_path):
    root, folder = workspace_and_photos(tmp_path, 3)
    curate("ingest", folder, "-s", "c", "-w", root)
    assert "missing from the store" not in curate("status", "-w", root).stdout
    assert json.loads(curate("status", "-w", root, "--json").stdout)["missing_originals"] == 0

    gone, cut = sorted(p for p in (root / "objects").rglob("*") if p.is_file())[:2]
    for p in (gone, cut):
        os.chmod(p.parent, stat.S_IRWXU)
    gone.unlink()
    data = cut.read_bytes()
    os.chmod(cut, 0o600)
    cut.write_bytes(data[: len(data) // 2])  # a cut-short original counts too

    shown = curate("status", "-w", root).stdout
    assert (
        "warning: 2 original(s) listed in the catalogue are missing from the store; "
        "re-run `curate ingest` on their folder to restore them (scraped ones: the same `curate scrape`)." in shown
    )
    assert json.loads(curate("status", "-w", root, "--json").stdout)["missing_originals"] == 2


def test_status_says_an_original_the_file_system_refuses_apart_from_a_missing_one(tmp_path):
    """A probe made a folder of objects/ unreadable: status said the original was missing and to re-run `curate
    ingest`, which does not mend a permission. Here the shard folder is a link to itself (ELOOP: refused even to
    root, which permissions are not)."""
    root, folder = workspace_and_photos(tmp_path, 1)
    curate("ingest", folder, "-s", "c", "-w", root)
    (original,) = (p for p in (root / "objects").rglob("*") if p.is_file())
    shard = original.parent
    os.chmod(shard, stat.S_IRWXU)
    moved = shard.with_name("moved")
    shard.rename(moved)
    shard.symlink_to(shard.name)  # objects/ab -> objects/ab
    data = json.loads(curate("status", "-w", root, "--json").stdout)
    assert (data["missing_originals"], data["unreadable_originals"]) == (0, 1)
    shown = curate("status", "-w", root).stdout
    assert "1 original(s) in objects/ cannot be read" in shown and "missing from the store" not in shown
    shard.unlink()
    moved.rename(shard)
    data = json.loads(curate("status", "-w", root, "--json").stdout)
    assert (data["missing_originals"], data["unreadable_originals"]) == (0, 0)


def test_a_run_aborted_by_a_fault_mid_work_is_listed_a_refused_one_is_not(tmp_path):
    """The probe's case: an ingest stopped by the catalogue's server going away, or a full disk, was recorded
    "failed" and never named by status, though it had stored part of the folder. A fault met mid-work (here the
    store cannot write one photo's shard) is "aborted" and listed until the same ingest runs to the end; a refusal
    of the input (a folder that does not exist) stays "failed" and is not."""
    import hashlib

    root, folder = workspace_and_photos(tmp_path, 6)
    refused = attempt("ingest", tmp_path / "no-such-folder", "-s", "c", "-w", root)
    assert refused.returncode == 1 and "folder not found" in refused.stderr
    assert json.loads(curate("status", "-w", root, "--json").stdout)["unfinished"] == []

    blocked = Path(hashlib.sha256(I.jpeg(4)).hexdigest())
    shard = root / "objects" / blocked.name[:2]
    shard.parent.mkdir(exist_ok=True)
    shard.write_bytes(b"")  # a file where the store needs a folder: it cannot write that photo
    stopped = attempt("ingest", folder, "-s", "c", "-w", root, "--workers", "1")
    assert stopped.returncode == 1 and "cannot write object" in stopped.stderr, stopped.stderr
    data = json.loads(curate("status", "-w", root, "--json").stdout)
    assert [(u["command"], u["status"]) for u in data["unfinished"]] == [("ingest", "aborted")]
    assert "did not finish: `curate ingest` into source c (aborted, started " in curate("status", "-w", root).stdout

    shard.unlink()
    curate("ingest", folder, "-s", "c", "-w", root)  # the same ingest, to the end
    data = json.loads(curate("status", "-w", root, "--json").stdout)
    assert data["unfinished"] == [] and data["images"] == 6


def test_status_counts_originals_no_row_lists(tmp_path):
    """The probe's case: an ingest killed between storing photos and recording them left them in objects/,
    uncatalogued, and nothing said so (its folder gone, they would stay unseen). Status counts them, except while
    a writer runs (it stores each photo before recording it); the same ingest run again records them."""
    root, folder = workspace_and_photos(tmp_path, 3)
    ws = Workspace.open(root)
    for i in range(2):  # what the kill left: stored, not recorded
        ws.store.put(I.jpeg(i))
    assert json.loads(curate("status", "-w", root, "--json").stdout)["unlisted_originals"] == 2
    shown = " ".join(curate("status", "-w", root).stdout.split())
    assert "warning: 2 original(s) in objects/ are listed by no catalogue row" in shown
    running = writer(root)
    try:
        assert json.loads(curate("status", "-w", root, "--json").stdout)["unlisted_originals"] == 0
    finally:
        running.communicate("", timeout=60)
    curate("ingest", folder, "-s", "c", "-w", root)
    data = json.loads(curate("status", "-w", root, "--json").stdout)
    assert data["unlisted_originals"] == 0 and data["images"] == 3


def test_a_lock_file_naming_runs_in_other_digits_is_read_past(tmp_path):
    """The lock file is plain JSON in the workspace: a run id "²" passed str.isdigit and int() refused it, so
    `curate status` and the next writer stopped with a traceback."""
    root, folder = workspace_and_photos(tmp_path, 2)
    (root / ".curate.lock").write_text(json.dumps({"outcomes": {"²": "ok", "٣": "failed"}, "runs": ["²"]}))
    assert "did not finish" not in curate("status", "-w", root).stdout
    curate("ingest", folder, "-s", "c", "-w", root)
    assert json.loads(curate("status", "-w", root, "--json").stdout)["images"] == 2


_KILLED_BEFORE_RECORDING = """
import os, signal, sys
import curate.audit
from curate.workspace import Workspace
curate.audit.mark_killed = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # killed before it records them
with curate.audit.audited(Workspace.open(sys.argv[1]), "export", {}):
    pass
"""


def test_a_killed_run_is_recorded_even_when_the_next_writer_is_killed_before_it_records_it(tmp_path):
    """Before: a writer taking the lock wrote its own empty list of runs over the killed holder's at once, and
    recorded them ("killed") only once the catalogue had opened; killed in between, the first run stayed
    "running" in the audit table for good."""
    root = tmp_path / "ws"
    Workspace.init(root)
    first = writer(root)
    first.communicate("kill", timeout=60)
    second = subprocess.run([sys.executable, "-c", _KILLED_BEFORE_RECORDING, str(root)], env=ENV, timeout=120)
    assert second.returncode == -signal.SIGKILL
    assert json.loads((root / ".curate.lock").read_text())["runs"] == [1]  # still there for the next writer
    curate("status", "-w", root)  # a reader records nothing
    with Workspace.open(root).session() as s:
        from sqlmodel import select

        from db.models import CommandRun

        assert s.exec(select(CommandRun.status).where(CommandRun.id == 1)).one() == "running"
    third = writer(root)
    third.communicate("", timeout=60)
    with Workspace.open(root).session() as s:
        assert dict(s.exec(select(CommandRun.id, CommandRun.status)).all()) == {1: "killed", 2: "ok"}
    assert not (root / ".curate.lock").read_text().strip()  # a clean end leaves nothing for the next


def test_a_lock_file_with_damaged_outcomes_is_read_past(tmp_path):
    """Before: outcomes that were not a table (a damaged lock file) stopped the next writer with an AttributeError."""
    root = tmp_path / "ws"
    Workspace.init(root)
    (root / ".curate.lock").write_text(json.dumps({"runs": [], "outcomes": ["x"]}))
    running = writer(root)
    running.communicate("", timeout=60)
    assert running.returncode == 0


def test_status_does_not_ask_for_a_dedupe_while_one_runs(tmp_path):
    """A probe: status said "run `curate dedupe` first" beside "running now: `curate dedupe`", inviting a second."""
    root, photos = tmp_path / "ws", tmp_path / "in"
    Workspace.init(root)
    photos.mkdir()
    for i in range(2):
        (photos / f"p{i}.jpg").write_bytes(I.jpeg(i))
    curate("ingest", photos, "-s", "clinic", "-w", root)
    running = writer(root, "dedupe")
    try:
        shown = " ".join(curate("status", "-w", root).stdout.split())
    finally:
        running.communicate("", timeout=60)
    assert "2 image(s) in no dedupe cluster" in shown and "the `curate dedupe` running now compares them" in shown
    assert "run `curate dedupe` first" not in shown
    assert "run `curate dedupe` first" in " ".join(curate("status", "-w", root).stdout.split())  # none runs now


def test_a_command_to_run_again_from_elsewhere_carries_its_workspace(tmp_path):
    """The probe's case: `curate status -w "sp ace/ws"` said "did not finish: `curate dedupe`", which, pasted
    where it was shown, runs in the current folder's workspace, or none; its export line had a quoted -w."""
    from db.models import CommandRun

    root = Workspace.init(tmp_path / "sp ace" / "ws").root
    with Workspace.open(root).session() as s:
        s.add(CommandRun(command="dedupe", status="aborted"))
        s.add(CommandRun(command="ingest", status="aborted", arguments=json.dumps({"source": "c"})))
    (left,) = [
        u for u in json.loads(curate("status", "-w", root, "--json").stdout)["unfinished"] if u["command"] == "dedupe"
    ]
    assert left["rerun"] == f"curate dedupe -w '{root}'"
    assert f"`curate dedupe -w '{root}'` (aborted" in " ".join(curate("status", "-w", root).stdout.split())
    here = subprocess.run(
        [sys.executable, "-m", "curate", "status", "--json"], cwd=root, capture_output=True, text=True, env=ENV
    )
    assert [u["rerun"] for u in json.loads(here.stdout)["unfinished"]] == [None, None]  # in it: nothing to add


def test_a_run_another_folder_holds_on_a_shared_catalogue_is_not_called_killed(tmp_path):
    """The probe's case: two folders on one catalogue (PostgreSQL, or one SQLite file). While p1's dedupe ran,
    `curate status -w p2` said "did not finish: `curate dedupe` (killed …); re-run it to complete." Its lock is
    p1's; p1's status names it running, and a kill there is p1's to tell."""
    p1 = Workspace.init(tmp_path / "p1").root
    p2 = Workspace.init(tmp_path / "p2", db_url=f"sqlite:///{p1 / 'catalogue.db'}").root
    running = writer(p1, "dedupe")
    try:
        there = json.loads(curate("status", "-w", p2, "--json").stdout)
        shown = curate("status", "-w", p2).stdout
        mine = json.loads(curate("status", "-w", p1, "--json").stdout)
    finally:
        running.communicate("kill", timeout=60)
    assert there["unfinished"] == [] and "did not finish" not in shown, there["unfinished"]
    assert mine["running_now"]["command"] == "dedupe" and mine["unfinished"] == []
    (killed,) = json.loads(curate("status", "-w", p1, "--json").stdout)["unfinished"]
    assert (killed["command"], killed["status"]) == ("dedupe", "killed")  # in its own folder, as before
    moved = p1.rename(tmp_path / "p1-moved")  # another path (or host) since: its lock file still names the run
    (killed,) = json.loads(curate("status", "-w", moved, "--json").stdout)["unfinished"]
    assert (killed["command"], killed["status"]) == ("dedupe", "killed")
