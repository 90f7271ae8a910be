"""A SQLite catalogue restored from a backup (or copied in) while the -wal of a killed command stayed beside it: one
line naming the catalogue and its -wal, and nothing written; the catalogue's own leftover -wal is recovered as before.

SQLite cannot tell a -wal of another state (it records no identity of its catalogue): it laid that -wal's pages over
the restored file, every command went on with the mix ("Page 55 is never used", rows missing from the UNIQUE index,
a second ingest took the same photos again), and the first connection's close checkpointed it into the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from test_catalogue_damage import one_error_line
from test_workspace_hardening import REPO, curate, photos

from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace

FIRST, LATER, KILLED = 4, 30, 30  # photos in the backup, ingested after it, and by the writer killed mid-command

# A writer killed (SIGKILL, as `kill -9`) while its connection holds committed, never checkpointed pages in the -wal.
KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace
ws = Workspace.open(sys.argv[1])
ingest_folder(ws, Path(sys.argv[2]), IngestOptions(source="killed", workers=1))
os.kill(os.getpid(), signal.SIGKILL)
"""


def companions(db: Path) -> tuple[Path, Path]:
    return db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ingest(root: Path, folder: Path, source: str) -> None:
    """Photos ingested through the library, its engine closed after (the -wal checkpointed and gone)."""
    ws = Workspace.open(root)
    ingest_folder(ws, folder, IngestOptions(source=source, workers=1))
    ws.engine.dispose()
    assert not companions(root / "catalogue.db")[0].exists()


def kill_a_writer(root: Path, folder: Path) -> None:
    """A command killed mid-work: it leaves its -wal (and -shm) beside the catalogue, as `kill -9` of `dedupe` did."""
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(root), str(folder)],
        capture_output=True,
        text=True,
        env={**{k: v for k, v in os.environ.items() if k != "CURATE_DB_URL"}, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    wal, shm = companions(root / "catalogue.db")
    assert wal.stat().st_size > 0 and shm.exists()


def status(root: Path) -> dict:
    proc = curate("status", "-w", root, "--json", check=True)
    return json.loads(proc.stdout)


def integrity(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        rows = [r[0] for r in con.execute("PRAGMA integrity_check")]
    con.close()
    return rows


def test_a_catalogue_restored_beside_another_states_wal_is_refused_and_left_as_it_was(tmp_path):
    root = tmp_path / "ws"
    Workspace.init(root).engine.dispose()
    ingest(root, photos(tmp_path / "first", FIRST), "clinic")
    db = root / "catalogue.db"
    backup = db.read_bytes()
    ingest(root, photos(tmp_path / "later", LATER, start=FIRST), "web")
    kill_a_writer(root, photos(tmp_path / "killed", KILLED, start=FIRST + LATER))
    db.write_bytes(backup)  # `cp bak.db ws/catalogue.db`: the killed command's -wal stays beside it
    wal, shm = companions(db)
    before = {p.name: digest(p) for p in (db, wal)}

    for command in (["status"], ["ingest", tmp_path / "first", "--source", "clinic"], ["pipeline"]):
        err = one_error_line(curate(*command, "-w", root))
        assert f"catalogue {db} read with the catalogue.db-wal beside it is damaged (" in err, err
        assert "a catalogue restored or copied in while a -wal of another state stayed beside it" in err
        assert "move catalogue.db-wal and catalogue.db-shm aside" in err and "then run again" in err
        # the check never checkpointed the -wal into the restored file: both are as they were, byte for byte
        assert {p.name: digest(p) for p in (db, wal)} == before

    # A -wal copied in without its -shm is read and refused the same way.
    shm.unlink()
    err = one_error_line(curate("status", "-w", root))
    assert "read with the catalogue.db-wal beside it is damaged" in err
    assert {p.name: digest(p) for p in (db, wal)} == before

    # As the line says: the -wal and -shm moved aside, the restored catalogue is the backup's, whole.
    aside = tmp_path / "aside"
    aside.mkdir()
    for companion in (wal, shm):
        if companion.exists():
            companion.rename(aside / companion.name)
    assert db.read_bytes() == backup
    assert status(root)["images"] == FIRST
    curate("ingest", tmp_path / "first", "--source", "clinic", "-w", root, check=True)
    assert status(root)["images"] == FIRST  # the same photos again: the UNIQUE index holds
    assert integrity(db) == ["ok"]


def test_the_catalogues_own_wal_left_by_a_killed_command_is_recovered_not_refused(tmp_path):
    root = tmp_path / "ws"
    Workspace.init(root).engine.dispose()
    ingest(root, photos(tmp_path / "first", FIRST), "clinic")
    kill_a_writer(root, photos(tmp_path / "killed", KILLED, start=FIRST))
    db = root / "catalogue.db"

    seen = status(root)  # the next command reads the killed one's committed rows from its -wal, as before
    assert seen["images"] == FIRST + KILLED
    assert {s["source"]: s["images"] for s in seen["by_source"]} == {"clinic": FIRST, "killed": KILLED}
    assert not companions(db)[0].exists()  # checkpointed into the file by that command's close
    assert integrity(db) == ["ok"]
    curate("ingest", tmp_path / "killed", "--source", "killed", "-w", root, check=True)
    assert status(root)["images"] == FIRST + KILLED


def test_a_wal_beside_a_running_writer_is_not_refused(tmp_path):
    """A command open while another writes (its -wal and -shm beside the catalogue) reads it as before."""
    root = tmp_path / "ws"
    Workspace.init(root).engine.dispose()
    ws = Workspace.open(root)
    ingest_folder(ws, photos(tmp_path / "first", FIRST), IngestOptions(source="clinic", workers=1))
    try:
        assert companions(root / "catalogue.db")[0].stat().st_size > 0  # the writer's connection is still open
        assert status(root)["images"] == FIRST
    finally:
        ws.engine.dispose()
    assert integrity(root / "catalogue.db") == ["ok"]


def test_a_workspace_copied_whole_with_its_wal_is_not_refused(tmp_path):
    """A copy of the whole folder (catalogue, -wal and -shm of one moment, copied together) holds no foreign -wal."""
    root = tmp_path / "ws"
    Workspace.init(root).engine.dispose()
    ingest(root, photos(tmp_path / "first", FIRST), "clinic")
    kill_a_writer(root, photos(tmp_path / "killed", KILLED, start=FIRST))
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    assert status(copy)["images"] == FIRST + KILLED
