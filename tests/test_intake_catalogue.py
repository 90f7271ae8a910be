"""The catalogue and store on SQLite and PostgreSQL: ingest, provenance, idempotence, migrations."""

import stat

import images as I
import pytest
from sqlalchemy import inspect as sa_inspect
from sqlmodel import select

from curate.errors import ConfigError
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace
from db.engine import make_engine
from db.migrate import current_revision, head_revision, upgrade
from db.models import CommandRun, Image, Provenance, Rejection, Source


def write(folder, rel, data: bytes):
    p = folder / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


@pytest.fixture
def clinic(tmp_path):
    root = tmp_path / "clinic"
    write(root, "Mpox/P0001_left.jpg", I.jpeg(1))
    write(root, "Mpox/P0001_right.jpg", I.jpeg(2))
    write(root, "Mpox/P0002.png", I.encode(I.photo(3), "PNG"))
    write(root, "Herpes/P0003.jpg", I.exif_jpeg(4))
    write(root, "Herpes/nested/deeper/P0004.webp", I.encode(I.photo(5), "WEBP"))
    write(root, "Herpes/copy_of_P0001_left.jpg", I.jpeg(1))  # same bytes, second arrival
    write(root, "Herpes/broken.jpg", I.truncated_jpeg(6))
    write(root, "Thumbs.db", b"\0\0junk")
    return root


def test_ingest_records_images_provenance_and_rejects(ws, clinic):
    report = ingest_folder(
        ws,
        clinic,
        IngestOptions(source="clinic-2022", label_from_folders=True, case_id_pattern=r"(?P<case>P\d{4})", workers=1),
    )
    assert (report.added, report.provenance, report.known, len(report.rejected), report.ignored) == (5, 1, 0, 1, 1)
    assert report.rejected == [("Herpes/broken.jpg", "truncated image")]
    with ws.session() as s:
        images = s.exec(select(Image)).all()
        assert len(images) == 5
        for img in images:  # every row has its bytes, unchanged
            assert ws.store.verify(img.sha256)
        provs = s.exec(select(Provenance)).all()
        assert len(provs) == 6
        by_loc = {p.locator: p for p in provs}
        assert by_loc["Mpox/P0001_left.jpg"].image_id == by_loc["Herpes/copy_of_P0001_left.jpg"].image_id
        assert by_loc["Mpox/P0001_left.jpg"].prior_label == "mpox"
        assert by_loc["Herpes/nested/deeper/P0004.webp"].prior_label == "herpes"
        assert by_loc["Mpox/P0001_right.jpg"].case_id == "P0001"
        rotated = s.get(Image, by_loc["Herpes/P0003.jpg"].image_id)
        assert (rotated.width, rotated.height, rotated.has_gps, rotated.has_camera_serial) == (120, 160, True, True)
        assert s.exec(select(Source)).one().kind == "clinic"
        assert [r.reason for r in s.exec(select(Rejection))] == ["truncated image"]


def test_reingest_adds_nothing(ws, clinic):
    opts = IngestOptions(source="clinic-2022", label_from_folders=True, workers=1)
    ingest_folder(ws, clinic, opts)
    again = ingest_folder(ws, clinic, opts)
    assert (again.added, again.provenance, again.known) == (0, 0, 6)
    assert again.rejected == [("Herpes/broken.jpg", "truncated image")]  # reported again...
    with ws.session() as s:
        assert len(s.exec(select(Image)).all()) == 5
        assert len(s.exec(select(Provenance)).all()) == 6
        assert len(s.exec(select(Rejection)).all()) == 1  # ...but recorded once


def test_same_bytes_from_a_second_source_adds_provenance_not_an_image(ws, clinic, tmp_path):
    ingest_folder(ws, clinic, IngestOptions(source="clinic-2022", workers=1))
    web = tmp_path / "web"
    write(web, "download (1).jpg", I.jpeg(1))
    report = ingest_folder(ws, web, IngestOptions(source="web-2023", kind="web", licence="CC-BY-4.0", workers=1))
    assert (report.added, report.provenance) == (0, 1)
    with ws.session() as s:
        img = s.exec(select(Image).join(Provenance).where(Provenance.locator == "download (1).jpg")).one()
        sources = {p.source_id for p in s.exec(select(Provenance).where(Provenance.image_id == img.id))}
        assert len(sources) == 2


def test_parallel_workers_give_the_same_catalogue(ws, tmp_path):
    root = tmp_path / "many"
    for i in range(30):
        write(root, f"img{i:03d}.jpg", I.jpeg(100 + i))
    report = ingest_folder(ws, root, IngestOptions(source="s", workers=2))
    assert report.added == 30
    with ws.session() as s:
        assert len(s.exec(select(Image)).all()) == 30


def test_store_objects_are_content_addressed_and_not_world_readable(ws, clinic):
    ingest_folder(ws, clinic, IngestOptions(source="c", workers=1))
    with ws.session() as s:
        img = s.exec(select(Image)).first()
    path = ws.store.path_for(img.sha256)
    assert path.relative_to(ws.objects).parts == (img.sha256[:2], img.sha256[2:])
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & 0o077 == 0 and mode & 0o200 == 0  # owner read-only, nothing for others
    assert stat.S_IMODE(ws.objects.stat().st_mode) & 0o077 == 0
    assert not list(ws.tmp.iterdir())  # no partial files left behind


def test_bad_options_fail_before_anything_is_written(ws, clinic):
    with pytest.raises(ConfigError, match="folder not found"):
        ingest_folder(ws, clinic / "nope", IngestOptions(source="c"))
    with pytest.raises(ConfigError, match="case-id-pattern"):
        ingest_folder(ws, clinic, IngestOptions(source="c", case_id_pattern="(unclosed"))
    with pytest.raises(ConfigError, match="kind"):
        ingest_folder(ws, clinic, IngestOptions(source="c", kind="hospital"))
    with ws.session() as s:
        assert s.exec(select(Image)).all() == []


def test_source_kind_cannot_silently_change(ws, clinic):
    ingest_folder(ws, clinic, IngestOptions(source="kaggle", kind="public", workers=1))
    with pytest.raises(ConfigError, match="already registered as 'public'"):
        ingest_folder(ws, clinic, IngestOptions(source="kaggle", kind="web", workers=1))


def test_older_catalogue_opens_with_newer_version(db_url, tmp_path, clinic):
    """A workspace made at the first schema revision upgrades in place and keeps its rows."""
    engine = make_engine(db_url)
    upgrade(engine, "0001_intake")
    assert current_revision(engine) == "0001_intake"
    with engine.begin() as c:
        c.exec_driver_sql(
            "INSERT INTO sources (name, kind, priority, created_at) VALUES ('old', 'clinic', 0, CURRENT_TIMESTAMP)"
        )
    engine.dispose()
    ws = Workspace.init(tmp_path / "old-ws", db_url=db_url)
    assert current_revision(ws.engine) == head_revision()
    assert "consensus" in sa_inspect(ws.engine).get_table_names()
    with ws.session() as s:
        assert [x.name for x in s.exec(select(Source))] == ["old"]


def test_sqlite_catalogue_uses_wal_and_foreign_keys(sqlite_ws):
    with sqlite_ws.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


def test_audit_log_records_runs_without_secrets(sqlite_ws):
    from curate.audit import audited

    with audited(sqlite_ws, "scrape", {"query": "mpox", "api_key": "s3cret", "password": "pw"}) as run:
        run.summary = {"added": 3}
    with sqlite_ws.session() as s:
        row = s.exec(select(CommandRun)).one()
    assert row.status == "ok" and '"added": 3' in row.summary
    assert "s3cret" not in row.arguments and "pw" not in row.arguments.replace("password", "")
