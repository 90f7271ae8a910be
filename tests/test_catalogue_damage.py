"""A workspace's SQLite catalogue gone, emptied or damaged: one line naming the file, and nothing written over it.

Opening such a catalogue once wrote a fresh, empty schema (a missing or 0-byte file) or ended in SQLAlchemy's
text and link (a malformed one), while objects/ still held every original.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import images as I
import pytest
from test_workspace_hardening import curate, photos

from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace

PHOTOS = 4


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A workspace holding PHOTOS originals and their catalogue, closed (each test works on a copy)."""
    base = tmp_path_factory.mktemp("catalogue")
    ws = Workspace.init(base / "ws")
    ingest_folder(ws, photos(base / "in", PHOTOS), IngestOptions(source="clinic", workers=1))
    ws.engine.dispose()
    return base


@pytest.fixture
def ws_dir(pristine, tmp_path) -> Path:
    shutil.copytree(pristine / "ws", tmp_path / "ws", symlinks=True)
    shutil.copytree(pristine / "in", tmp_path / "in")
    return tmp_path / "ws"


def one_error_line(proc) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "sqlalche.me" not in proc.stderr and "unexpected" not in proc.stderr
    return " ".join(proc.stderr.split())


@pytest.mark.postgres
def test_a_postgresql_catalogue_dropped_and_made_again_is_refused_not_adopted(tmp_path, pg_url):
    """Before: a database dropped and created again (a restore into the wrong one, db_url edited) was taken as the
    catalogue, `status` wrote a fresh schema into it, and ingest went on into an empty catalogue beside objects/'s
    originals, which it called unrecorded."""
    import psycopg
    from sqlalchemy.engine import make_url

    ws = Workspace.init(tmp_path / "ws", db_url=pg_url)
    ingest_folder(ws, photos(tmp_path / "in", PHOTOS), IngestOptions(source="clinic", workers=1))
    ws.engine.dispose()
    url = make_url(pg_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{url.database}"')
        c.execute(f'CREATE DATABASE "{url.database}"')
    env = {"CURATE_DB_URL": pg_url}
    for command in (["status"], ["ingest", tmp_path / "in", "--source", "again"], ["pipeline"]):
        err = one_error_line(curate(*command, "-w", tmp_path / "ws", env=env))
        assert f"holds no mpox-curate schema (a database made again?) but objects/ holds {PHOTOS} originals" in err, err
        assert f"`curate init {tmp_path / 'ws'}` to start an empty catalogue" in err
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as c:
        assert not c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()  # untouched
    assert curate("init", tmp_path / "ws", env=env).returncode == 0  # the steward's choice: an empty catalogue
    assert curate("status", "-w", tmp_path / "ws", env=env).returncode == 0


@pytest.mark.parametrize("how", ["missing", "empty (0 bytes)"])
def test_a_missing_or_empty_catalogue_is_refused_not_replaced_by_an_empty_one(ws_dir, how):
    db = ws_dir / "catalogue.db"
    if how == "missing":
        db.unlink()
    else:
        db.write_bytes(b"")
    # `pipeline` inits the workspace on every run: it refuses too, rather than start an empty catalogue
    for command in (["status"], ["ingest", ws_dir.parent / "in", "--source", "clinic"], ["pipeline"]):
        err = one_error_line(curate(*command, "-w", ws_dir))
        assert f"catalogue {db} is {how} but objects/ holds {PHOTOS} originals: restore it from a backup" in err
        assert f"`curate init {ws_dir}` to start an empty catalogue" in err
        assert db.exists() == (how != "missing") and (not db.exists() or db.stat().st_size == 0)  # nothing written
        assert not db.with_name("catalogue.db-wal").exists()

    # `curate init` is the one command that starts an empty catalogue, as the line says.
    curate("init", ws_dir, check=True)
    assert curate("status", "-w", ws_dir, check=True).returncode == 0
    assert len(list((ws_dir / "objects").rglob("*/*"))) == PHOTOS  # the originals were never touched


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda data: data[: len(data) // 3], "database disk image is malformed"),
        (lambda data: I.jpeg(7) + bytes(range(256)) * 40, "file is not a database"),
    ],
    ids=["truncated", "not-a-database"],
)
def test_a_damaged_catalogue_is_one_line_naming_the_file_and_is_left_as_it_was(ws_dir, damage, reason):
    db = ws_dir / "catalogue.db"
    db.write_bytes(damage(db.read_bytes()))
    before = db.read_bytes()
    err = one_error_line(curate("status", "-w", ws_dir))
    assert f"catalogue {db} is damaged ({reason}): restore it from a backup" in err
    assert db.read_bytes() == before
    assert sorted(p.name for p in ws_dir.glob("catalogue.db*")) == ["catalogue.db"]


def test_a_damaged_page_met_after_opening_is_the_same_line(ws_dir):
    """The schema and alembic_version read fine; the images table's page does not (a session's query hits it)."""
    db = ws_dir / "catalogue.db"
    with sqlite3.connect(db) as con:
        page = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'images'").fetchone()[0]
        size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    for extra in ("-wal", "-shm"):
        db.with_name(db.name + extra).unlink(missing_ok=True)
    with open(db, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(b"\xa5" * size)
    before = db.read_bytes()
    err = one_error_line(curate("status", "-w", ws_dir))
    assert f"catalogue {db} is damaged (database disk image is malformed): restore it from a backup" in err
    assert db.read_bytes() == before
    # A writing command meets it inside `Workspace.transact` (ingest's first look at the known images).
    err = one_error_line(curate("ingest", ws_dir.parent / "in", "--source", "clinic", "-w", ws_dir))
    assert f"catalogue {db} is damaged (database disk image is malformed)" in err


def test_a_catalogue_of_a_newer_version_or_another_application_is_one_line(tmp_path):
    """Before: "unexpected CommandError: Can't locate revision …", and a DuplicateTable error carrying the whole
    CREATE TABLE statement."""
    import sqlite3

    from curate.errors import WorkspaceError
    from curate.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws")
    ws.engine.dispose()
    with sqlite3.connect(tmp_path / "ws" / "catalogue.db") as c:
        c.execute("update alembic_version set version_num = '0099_future'")
    with pytest.raises(WorkspaceError, match=r"written by a newer mpox-curate \(schema revision '0099_future'"):
        _ = Workspace.open(tmp_path / "ws").engine
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("create table images (id integer primary key, name text)")
    with pytest.raises(WorkspaceError, match=r"already holds tables of another application \(images\)") as err:
        Workspace.init(tmp_path / "ws2", db_url=f"sqlite:///{other}")
    assert "CREATE TABLE" not in str(err.value)
