"""Catalogues made by older commits of this repository's own history, upgraded by today's code.

Each test builds the old catalogue's state directly: today's chain up to a revision, then what the old commit's
chain did not make dropped (or what it made otherwise added), and the old revision id stamped. The cases, from a
probe that upgraded catalogues of older commits:

- 0002_dedupe was an empty placeholder at the first commits (5d70e03..aa6ee40), filled in later under the same id:
  such a catalogue has no dedupe tables, and every command stopped on "unexpected NoSuchTableError: dedupe_codes";
- 0009_label_audit once followed 0007 (no 0008_dedupe_verify: `curate dedupe` stopped on "no such column: box"),
  0007_studio_servers once followed 0004 (no 0006_diagnoses: `curate export` on "no such table: label_rules");
- 0005_dedupe_verify, a retired branch revision, was called "written by a newer mpox-curate";
- an older catalogue on a read-only mount stopped on "attempt to write a readonly database";
- a revision table emptied was "tables of another application", one with two rows "unexpected CommandError".
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select
from workspaces import read_only_view

from curate.errors import WorkspaceError
from curate.workspace import Workspace
from db.engine import make_engine
from db.migrate import CatalogueMismatch, current_revision, head_revision, upgrade
from db.models import (
    Consensus,
    DedupeCode,
    DedupeMember,
    DedupeOverride,
    DedupePair,
    LabelAnnotation,
    LabelProject,
    LabelRules,
)

REPO = Path(__file__).resolve().parents[1]
DEDUPE_TABLES = ("dedupe_overrides", "dedupe_members", "dedupe_pairs", "dedupe_codes")
VERIFY_COLUMNS = {"dedupe_codes": ("box", "note", "flat"), "dedupe_pairs": ("inliers", "reason")}  # 0008's


def _blob(engine) -> str:
    return "'\\x07'::bytea" if engine.dialect.name == "postgresql" else "x'07'"


def _image(c, i: int) -> None:
    """One catalogued image row, as every revision since 0001 has it."""
    c.exec_driver_sql(
        "INSERT INTO images (id, sha256, size_bytes, format, width, height, mode, frames, has_exif, has_gps,"
        " has_camera_serial, created_at) VALUES"
        f" ({i}, '{str(i) * 64}', 10, 'JPEG', 64, 64, 'RGB', 1, false, false, false, CURRENT_TIMESTAMP)"
    )


def _labels(c, diagnosis: str = "other", server: bool = False) -> None:
    """A rating round on one server, a project (recording that server where `server`: 0007 made the column), a
    task and a rater's answer, and the consensus of image 1."""
    c.exec_driver_sql(
        "INSERT INTO label_rounds (id, kind, name, raters, server_url, created_at) VALUES"
        " (1, 'rating', 'Round 1', '[\"a@x.test\"]', 'http://127.0.0.1:8080', CURRENT_TIMESTAMP)"
    )
    column, value = (", server_url", ", 'http://127.0.0.1:8080'") if server else ("", "")
    c.exec_driver_sql(
        f"INSERT INTO label_projects (id, round_id, rater, ls_project_id, created_at{column})"
        f" VALUES (1, 1, 'a@x.test', 7, CURRENT_TIMESTAMP{value})"
    )
    c.exec_driver_sql(
        "INSERT INTO label_tasks (id, project_id, image_id, ls_task_id, created_at)"
        " VALUES (1, 1, 1, 70, CURRENT_TIMESTAMP)"
    )
    c.exec_driver_sql(
        "INSERT INTO label_annotations (id, task_id, ls_annotation_id, revision, rater, diagnosis, boxes, flags,"
        " cancelled, withdrawn, content_sha256, raw, fetched_at) VALUES"
        f" (1, 1, 700, 1, 'a@x.test', '{diagnosis}', '[]', '[]', false, false, '{'c' * 64}', '{{}}',"
        " CURRENT_TIMESTAMP)"
    )
    c.exec_driver_sql(
        "INSERT INTO consensus (image_id, status, diagnosis, method, n_raters, boxes, exclusion, updated_at) VALUES"
        f" (1, 'excluded', '{diagnosis}', 'two_raters', 2, '[]', 'other', CURRENT_TIMESTAMP)"
    )


def _stamp(c, revision: str) -> None:
    c.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{revision}'")


def _columns(engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def _dump(engine) -> dict:
    """Every table's columns and rows: to show a refused upgrade changed nothing."""
    seen = sa.inspect(engine)
    with engine.connect() as c:
        return {
            t: (sorted(_columns(engine, t)), sorted(map(repr, c.execute(sa.text(f"SELECT * FROM {t}")).all())))
            for t in seen.get_table_names()
        }


def _opened(tmp_path: Path, db_url: str) -> Workspace:
    """The old catalogue opened as a command opens it (a workspace pointing at it): that upgrades it."""
    ws = Workspace.init(tmp_path / "old-ws", db_url=db_url)
    assert current_revision(ws.engine) == head_revision()
    return ws


# 1. 0002_dedupe as the empty placeholder it was at 5d70e03..aa6ee40


@pytest.mark.parametrize(
    "revision",
    [
        "0004_export",  # made at aa6ee40 (the head then)
        "0009_label_audit",  # then upgraded by ce9605e (0006, 0007, 0009 after 0007): nothing touched dedupe yet
    ],
)
def test_a_catalogue_made_while_0002_was_a_placeholder_gains_the_dedupe_tables_and_keeps_its_rows(
    db_url, tmp_path, revision
):
    """Before: "unexpected NoSuchTableError: dedupe_codes" (0008_dedupe_verify alters it) for every command."""
    engine = make_engine(db_url)
    upgrade(engine, revision)
    with engine.begin() as c:
        for table in DEDUPE_TABLES:
            c.exec_driver_sql(f"DROP TABLE {table}")
        for i in (1, 2):
            _image(c, i)
        _labels(c, "not_assessable")
    engine.dispose()
    ws = _opened(tmp_path, db_url)
    with ws.session() as s:
        assert s.exec(select(DedupeCode)).all() == [] and s.exec(select(DedupePair)).all() == []
        assert s.exec(select(DedupeMember)).all() == [] and s.exec(select(DedupeOverride)).all() == []
        assert s.get(Consensus, 1).diagnosis == "not_assessable"
        assert s.get(LabelAnnotation, 1).diagnosis == "not_assessable"
        s.add(DedupeCode(image_id=1, algo="a", codes=b"\x01", thumb=b"\x02", masked=0.0, box="0,0,1,1"))
        s.add(DedupePair(image_a=1, image_b=2, kind="review", similarity=0.5, inliers=4, reason="r"))
    with ws.session() as s:
        assert (s.get(DedupeCode, 1).box, s.exec(select(DedupePair)).one().reason) == ("0,0,1,1", "r")
        assert s.exec(sa.text("SELECT count(*) FROM images")).scalar() == 2
    ws.engine.dispose()


def test_curate_status_opens_a_catalogue_made_while_0002_was_a_placeholder(tmp_path):
    """The probe's case through the command line: a workspace of aa6ee40, then any command."""
    root = tmp_path / "ws"
    Workspace.init(root).engine.dispose()
    engine = make_engine(f"sqlite:///{root / 'catalogue.db'}")
    with engine.begin() as c:  # today's catalogue taken back to 0004_export, then its dedupe tables dropped
        for table in ("consensus_history", "dedupe_local", "label_rules", *DEDUPE_TABLES):
            c.exec_driver_sql(f"DROP TABLE {table}")
        c.exec_driver_sql("ALTER TABLE label_projects DROP COLUMN server_url")
        c.exec_driver_sql("ALTER TABLE label_annotations DROP COLUMN shown")
        _image(c, 1)
        _stamp(c, "0004_export")
    engine.dispose()
    proc = subprocess.run(
        [sys.executable, "-m", "curate", "status", "--json", "-w", str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["images"] == 1
    assert current_revision(make_engine(f"sqlite:///{root / 'catalogue.db'}")) == head_revision()


# 2. revision ids reused with other parents: a revision skipped


@pytest.mark.parametrize(
    "revision",
    [
        "0009_label_audit",  # made at 06861cb or ce9605e: 0009 after 0007, no 0008
        "0019_dedupe_shows",  # and then upgraded by a version before the repair: stamped the head, still no 0008
    ],
)
def test_a_catalogue_whose_0009_followed_0007_gains_0008s_columns_and_keeps_its_rows(db_url, tmp_path, revision):
    """Before: the upgrade went through, and `curate dedupe` stopped on "no such column: box"."""
    engine = make_engine(db_url)
    upgrade(engine, revision)
    blob = _blob(engine)
    with engine.begin() as c:
        for table, columns in VERIFY_COLUMNS.items():
            for column in columns:
                c.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        for i in (1, 2):
            _image(c, i)
            c.exec_driver_sql(
                "INSERT INTO dedupe_codes (image_id, algo, codes, thumb, masked, created_at)"
                f" VALUES ({i}, 'region-phash-v1/64/11', {blob}, {blob}, 0.25, CURRENT_TIMESTAMP)"
            )
        c.exec_driver_sql(
            "INSERT INTO dedupe_pairs (image_a, image_b, kind, hamming, similarity) VALUES (1, 2, 'hash', 3, 0.97)"
        )
    engine.dispose()
    ws = _opened(tmp_path, db_url)
    assert set(VERIFY_COLUMNS["dedupe_codes"]) <= _columns(ws.engine, "dedupe_codes")
    assert set(VERIFY_COLUMNS["dedupe_pairs"]) <= _columns(ws.engine, "dedupe_pairs")
    with ws.session() as s:
        codes = s.exec(select(DedupeCode).order_by(DedupeCode.image_id)).all()
        assert [(c.image_id, c.algo, c.masked, c.box, c.note, c.flat) for c in codes] == [
            (1, "region-phash-v1/64/11", 0.25, None, None, False),
            (2, "region-phash-v1/64/11", 0.25, None, None, False),
        ]
        pair = s.exec(select(DedupePair)).one()
        assert (pair.kind, pair.hamming, pair.similarity, pair.inliers, pair.reason) == ("hash", 3, 0.97, None, None)
    ws.engine.dispose()


@pytest.mark.parametrize("revision", ["0007_studio_servers", "0019_dedupe_shows"])
def test_a_catalogue_whose_0007_followed_0004_gains_label_rules_and_its_diagnoses(db_url, tmp_path, revision):
    """Made at 9c98e11 (0007 after 0004, no 0006_diagnoses). Before: `curate export` stopped on "no such table:
    label_rules", and its "other" answers were never the "not_assessable" 0006 makes of them."""
    engine = make_engine(db_url)
    upgrade(engine, revision)
    with engine.begin() as c:
        c.exec_driver_sql("DROP TABLE label_rules")
        _image(c, 1)
        _labels(c, "other", server=True)  # before 0006, "other" was "Other / not assessable"
    engine.dispose()
    ws = _opened(tmp_path, db_url)
    with ws.session() as s:
        assert s.exec(select(LabelRules)).all() == []
        assert (s.get(Consensus, 1).diagnosis, s.get(Consensus, 1).status) == ("not_assessable", "excluded")
        assert s.get(LabelAnnotation, 1).diagnosis == "not_assessable"
        assert s.get(LabelProject, 1).server_url == "http://127.0.0.1:8080"
        s.add(LabelRules(third_opinion="adjudicate", low_quality="exclude"))
    with ws.session() as s:
        assert s.exec(select(LabelRules)).one().low_quality == "exclude"
    ws.engine.dispose()


def test_a_catalogue_that_ran_every_revision_is_left_as_it_is_by_the_repair(db_url):
    """The repair adds only what is missing: rows and schema of a whole catalogue are the same after it."""
    engine = make_engine(db_url)
    upgrade(engine, "0019_dedupe_shows")
    with engine.begin() as c:
        _image(c, 1)
        _labels(c, "other_diagnosis", server=True)
    before = _dump(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    after = _dump(engine)
    assert after.pop("alembic_version") != before.pop("alembic_version")
    assert after == before
    engine.dispose()


def test_a_gap_no_revision_mends_is_one_line_naming_it_and_nothing_is_changed(db_url, tmp_path):
    """A table or column the models have and the upgraded catalogue lacks is refused in one line naming it, the
    upgrade rolled back; before, an "unexpected" error of whichever command first read it."""
    engine = make_engine(db_url)
    upgrade(engine, "0018_dedupe_quality")
    with engine.begin() as c:
        c.exec_driver_sql("DROP TABLE dedupe_local")
        c.exec_driver_sql("ALTER TABLE consensus_history DROP COLUMN reason")
    before = _dump(engine)
    with pytest.raises(CatalogueMismatch) as err:
        upgrade(engine)
    said = str(err.value)
    assert "table dedupe_local" in said and "column consensus_history.reason" in said, said
    assert "nothing was changed" in said and "\n" not in said
    assert current_revision(engine) == "0018_dedupe_quality" and _dump(engine) == before
    engine.dispose()
    with pytest.raises(WorkspaceError, match="lacks what its revision holds"):
        Workspace.init(tmp_path / "old-ws", db_url=db_url).engine  # noqa: B018


# 3. a retired revision id


def test_a_catalogue_stamped_the_retired_0005_dedupe_verify_is_upgraded_not_called_newer(db_url, tmp_path):
    """Made at 4eb5c94 (dedupe branch: 0005_dedupe_verify after 0004, the columns 0008_dedupe_verify adds today).
    Before: "written by a newer mpox-curate (schema revision '0005_dedupe_verify', …): upgrade mpox-curate"."""
    engine = make_engine(db_url)
    upgrade(engine, "0004_export")
    blob = _blob(engine)
    with engine.begin() as c:
        c.exec_driver_sql("ALTER TABLE dedupe_codes ADD COLUMN box VARCHAR(40)")
        c.exec_driver_sql("ALTER TABLE dedupe_codes ADD COLUMN note VARCHAR(200)")
        c.exec_driver_sql("ALTER TABLE dedupe_codes ADD COLUMN flat BOOLEAN DEFAULT false NOT NULL")
        c.exec_driver_sql("ALTER TABLE dedupe_pairs ADD COLUMN inliers INTEGER")
        c.exec_driver_sql("ALTER TABLE dedupe_pairs ADD COLUMN reason VARCHAR(200)")
        for i in (1, 2):
            _image(c, i)
            c.exec_driver_sql(
                "INSERT INTO dedupe_codes (image_id, algo, codes, thumb, masked, box, note, flat, created_at) VALUES"
                f" ({i}, 'region-phash-v2/64/11', {blob}, {blob}, 0.0, '0,0,1,1', 'n', true, CURRENT_TIMESTAMP)"
            )
        c.exec_driver_sql(
            "INSERT INTO dedupe_pairs (image_a, image_b, kind, similarity, inliers, reason)"
            " VALUES (1, 2, 'review', 0.5, 12, 'near')"
        )
        _labels(c, "other")
        _stamp(c, "0005_dedupe_verify")
    engine.dispose()
    ws = _opened(tmp_path, db_url)
    with ws.session() as s:
        codes = s.exec(select(DedupeCode).order_by(DedupeCode.image_id)).all()
        assert [(c.image_id, c.box, c.note, c.flat) for c in codes] == [
            (1, "0,0,1,1", "n", True),
            (2, "0,0,1,1", "n", True),
        ]
        pair = s.exec(select(DedupePair)).one()
        assert (pair.kind, pair.inliers, pair.reason) == ("review", 12, "near")
        assert s.get(Consensus, 1).diagnosis == "not_assessable"
        assert s.get(LabelProject, 1).server_url == "http://127.0.0.1:8080"
        assert s.exec(select(LabelRules)).all() == []
    ws.engine.dispose()


# 4. an older catalogue where it cannot be written


def _old_sqlite_workspace(root: Path) -> Path:
    """A workspace whose SQLite catalogue is at 0018_dedupe_quality (0019's two columns dropped), the file alone."""
    Workspace.init(root).engine.dispose()
    db = root / "catalogue.db"
    with sqlite3.connect(db) as c:
        c.execute("ALTER TABLE dedupe_pairs DROP COLUMN a_shows")
        c.execute("ALTER TABLE dedupe_pairs DROP COLUMN b_shows")
        c.execute("UPDATE alembic_version SET version_num = '0018_dedupe_quality'")
    last = sqlite3.connect(db)
    last.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    last.close()
    for companion in ("catalogue.db-wal", "catalogue.db-shm"):
        (root / companion).unlink(missing_ok=True)
    return db


def test_an_older_catalogue_this_user_may_not_write_says_it_needs_an_upgrade(tmp_path, monkeypatch):
    """Before: "cannot open catalogue …: attempt to write a readonly database". A catalogue at today's revision
    opened the same way still reads."""
    db = _old_sqlite_workspace(tmp_path / "old")
    Workspace.init(tmp_path / "now").engine.dispose()
    before = db.read_bytes()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if mode & os.W_OK else real(p, mode, **kw))
    with pytest.raises(WorkspaceError) as err:
        Workspace.open(tmp_path / "old").engine  # noqa: B018
    said = str(err.value)
    assert f"needs a schema upgrade (from revision '0018_dedupe_quality' to '{head_revision()}')" in said, said
    assert "write access" in said and "readonly database" not in said and "\n" not in said
    assert db.read_bytes() == before
    current = Workspace.open(tmp_path / "now")
    with current.session() as s:
        assert s.exec(sa.text("SELECT count(*) FROM images")).scalar() == 0
    current.engine.dispose()


def test_an_older_catalogue_on_a_read_only_mount_says_it_needs_an_upgrade(tmp_path):
    """The probe's case: `curate status` on an older workspace mounted read-only."""
    _old_sqlite_workspace(tmp_path / "ws")
    with read_only_view(tmp_path / "ws", tmp_path / "mounted") as seen:
        proc = subprocess.run(
            [sys.executable, "-m", "curate", "status", "-w", str(seen)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "400"},
            timeout=120,
        )
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "needs a schema upgrade (from revision '0018_dedupe_quality'" in proc.stderr, proc.stderr
    assert "write access" in proc.stderr and "readonly" not in proc.stderr


@pytest.mark.postgres
def test_an_older_postgresql_catalogue_in_a_read_only_transaction_says_it_needs_an_upgrade(pg_url):
    engine = make_engine(pg_url)
    upgrade(engine, "0018_dedupe_quality")
    engine.dispose()
    read_only = sa.create_engine(pg_url, connect_args={"options": "-c default_transaction_read_only=on"})
    with pytest.raises(CatalogueMismatch, match=r"needs a schema upgrade \(from revision '0018_dedupe_quality'"):
        upgrade(read_only)
    read_only.dispose()
    assert current_revision(make_engine(pg_url)) == "0018_dedupe_quality"


# 5. a damaged revision table


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ("DELETE FROM alembic_version", "schema revision table (alembic_version) is empty"),
        (
            "INSERT INTO alembic_version (version_num) VALUES ('0018_dedupe_quality')",
            "schema revision table (alembic_version) holds 2 rows ('0018_dedupe_quality', '0020_repair_gaps')",
        ),
    ],
)
def test_a_damaged_revision_table_is_one_line_saying_so_and_nothing_is_changed(db_url, tmp_path, damage, said):
    """Before: a deleted row was "the database already holds tables of another application (command_runs,
    consensus, …)", of this toolkit's own tables; two rows "unexpected CommandError: Version table 'alembic_version'
    has more than one head present"."""
    root = tmp_path / "ws"
    ws = Workspace.init(root, db_url=db_url)
    with ws.engine.begin() as c:
        _image(c, 1)
        c.exec_driver_sql(damage)
    before = _dump(ws.engine)
    ws.engine.dispose()
    with pytest.raises(WorkspaceError) as err:
        Workspace.open(root).engine  # noqa: B018
    text = str(err.value)
    assert said.replace("0020_repair_gaps", head_revision()) in text, text
    assert "nothing was changed" in text and "restore the catalogue from a backup" in text and "\n" not in text
    assert "another application" not in text
    engine = make_engine(db_url)
    assert _dump(engine) == before
    engine.dispose()
