"""A command killed while it upgrades a catalogue's schema: the next one finds the old schema whole, or the new.

The hostile probe's case: SQLite saved each ALTER and batch copy of an upgrade on its own, so a command stopped
mid-upgrade left columns added under the old schema revision, and every later command, the suggested re-run
included, failed on "duplicate column name: turned". Here the upgrade is killed (SIGKILL) right after its k-th
schema statement, for several k, and the catalogue must then upgrade and keep its rows.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from db.engine import make_engine
from db.migrate import current_revision, head_revision, upgrade

OLD = "0012_dedupe_whole"  # five dedupe migrations and a label one to go: batch copies and added columns
KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from sqlalchemy import event
    from db.engine import make_engine
    from db.migrate import upgrade

    engine = make_engine(sys.argv[1])
    seen = []

    @event.listens_for(engine, "after_cursor_execute")
    def _kill(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(("ALTER", "CREATE", "DROP", "INSERT INTO _ALEMBIC")):
            seen.append(statement)
            if len(seen) == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    upgrade(engine)
    print("finished after", len(seen))
    """
)


def _old_catalogue(path: Path) -> str:
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine, OLD)
    with engine.begin() as c:
        c.exec_driver_sql(
            "INSERT INTO images (id, sha256, size_bytes, format, width, height, mode, frames, has_exif, has_gps,"
            " has_camera_serial, created_at) VALUES"
            f" (1, '{'a' * 64}', 10, 'JPEG', 64, 64, 'RGB', 1, false, false, false, CURRENT_TIMESTAMP)"
        )
    engine.dispose()
    return url


@pytest.mark.parametrize("k", [1, 2, 4, 6, 8, 9, 10])  # 10 of the schema statements from 0012 to 0019
def test_an_upgrade_killed_after_any_statement_leaves_a_catalogue_that_upgrades(tmp_path, k):
    url = _old_catalogue(tmp_path / "catalogue.db")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, url, str(k)], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9, (proc.stdout, proc.stderr)  # killed mid-upgrade, not finished before the k-th
    engine = make_engine(url)
    assert current_revision(engine) == OLD  # nothing of the upgrade was kept: the old schema, whole
    upgrade(engine)  # before: "duplicate column name" for good
    assert current_revision(engine) == head_revision()
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT sha256 FROM images").scalars().all() == ["a" * 64]
        assert not c.exec_driver_sql("SELECT name FROM sqlite_master WHERE name LIKE '_alembic_tmp%'").all()
    engine.dispose()


@pytest.mark.parametrize("k", [1, 6, 20])
def test_a_first_init_killed_mid_schema_leaves_an_empty_catalogue_not_another_applications(tmp_path, k):
    """Before: "the database already holds tables of another application (command_runs) …: give an empty
    database", or "table _alembic_tmp_dedupe_codes already exists", for good."""
    url = f"sqlite:///{tmp_path / 'catalogue.db'}"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, url, str(k)], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9, (proc.stdout, proc.stderr)
    engine = make_engine(url)
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").all() == []
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    engine.dispose()


OPENER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from curate.workspace import Workspace

    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # both at the same instant, imports done
    Workspace(Path("/nonexistent"), db_url=sys.argv[1]).engine.dispose()
    """
)


@pytest.mark.postgres
@pytest.mark.parametrize("start", [None, OLD])
def test_two_commands_opening_one_postgresql_catalogue_at_once_both_upgrade_it(pg_url, start):
    """The PostgreSQL probe's case: two `curate init`s of one empty database, or two `curate status` of a catalogue
    an older mpox-curate wrote, at the same moment. Before: one of them stopped, on "duplicate key value violates
    unique constraint pg_type_typname_nsp_index" or "column panels of relation dedupe_codes already exists"."""
    import time

    for _ in range(3):  # a race: more than once, each round from the same start
        engine = make_engine(pg_url)
        with engine.begin() as c:
            c.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        if start:
            upgrade(engine, start)
        engine.dispose()
        at = str(time.time() + 3)
        both = [
            subprocess.Popen([sys.executable, "-c", OPENER, pg_url, at], stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        errors = [p.communicate(timeout=120)[1] for p in both]
        assert [p.returncode for p in both] == [0, 0], errors
        assert current_revision(make_engine(pg_url)) == head_revision()
