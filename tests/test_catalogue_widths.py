"""Values longer than a catalogue column holds: PostgreSQL refuses them ("value too long"), SQLite takes them. A
probe's case id of a 230-character folder name, a 120-character label in a label map and a 49-character export
version each ended on PostgreSQL in "unexpected DataError" with the whole INSERT and its values (the clinic's path
and case id) printed; the export had written its version first, which no command then listed."""

from __future__ import annotations

from pathlib import Path

import images as I
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from curate.cli import app
from curate.output import unexpected
from db.models import Image, Provenance

PATIENT = "Jane-Doe-" + "x" * 221  # a folder named after a patient, 230 characters


def curate(ws, *args):
    return CliRunner().invoke(app, [*args, "-w", str(ws.root)])


def test_a_case_id_too_long_is_one_line_without_the_value(ws, tmp_path: Path):
    src = tmp_path / "in"
    (src / "a-short-case").mkdir(parents=True)
    (src / "a-short-case" / "one.jpg").write_bytes(I.jpeg(1))
    (src / PATIENT).mkdir()
    (src / PATIENT / "two.jpg").write_bytes(I.jpeg(2))
    r = curate(ws, "ingest", str(src), "-s", "clinic", "--case-id-pattern", r"(?P<case>[^/]+)/")
    assert r.exit_code == 1 and r.stderr.count("\n") == 1, r.output
    assert "case id of 230 characters (at most 200)" in r.stderr and "Jane" not in r.output and "INSERT" not in r.output
    with ws.session() as s:  # refused before any file was read
        assert not s.exec(select(Provenance)).all()
    assert curate(ws, "ingest", str(src / "a-short-case"), "-s", "clinic").exit_code == 0


def test_a_label_too_long_in_a_label_map_is_refused_before_any_work(ws, tmp_path: Path):
    src = tmp_path / "in"
    (src / "lesions").mkdir(parents=True)
    (src / "lesions" / "one.jpg").write_bytes(I.jpeg(1))
    (tmp_path / "map.csv").write_text("folder,label\nlesions," + "m  " * 60 + "m\n")  # 181 typed, 121 stored
    r = curate(ws, "ingest", str(src), "-s", "clinic", "--label-map", str(tmp_path / "map.csv"))
    assert r.exit_code == 1 and "a label of 121 characters once normalised (at most 100)" in r.stderr, r.output
    with ws.session() as s:
        assert not s.exec(select(Image)).all()


def test_a_version_too_long_is_refused_before_anything_is_written(sqlite_ws):
    version = "1.0." + "1" * 45
    r = curate(sqlite_ws, "export", "--name", "mpox", "--version", version)
    assert r.exit_code == 1 and "49 characters long (at most 40)" in r.stderr, r.output
    assert not (sqlite_ws.exports / "mpox").exists()


@pytest.mark.postgres
def test_postgresql_refusing_a_value_says_which_column_and_never_the_sql(pg_url, tmp_path: Path):
    """Any other value too long (a path the checks above do not cover) is one line naming the column."""
    from sqlalchemy.exc import DataError

    from curate.errors import CatalogueFault
    from curate.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws", db_url=pg_url)
    with pytest.raises(CatalogueFault) as raised, ws.session() as s:
        s.add(Provenance(image_id=1, source_id=1, locator=f"{PATIENT}/two.jpg", prior_label=PATIENT))
        s.commit()
    said = str(raised.value)
    assert said == "the catalogue takes at most 100 characters in prior_label: give a shorter value, then re-run"
    # and any other refusal no command anticipated: one line, never the SQL and its values
    with pytest.raises(DataError) as raw, ws.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO sources (name, kind, priority) VALUES (%s, %s, 1)", (PATIENT, "x" * 30))
    said = unexpected(raw.value)
    assert said.startswith("unexpected DataError from the catalogue: value too long") and "\n" not in said
    assert "Jane" not in said and "INSERT" not in said
