"""Migrations 0008_dedupe_verify, 0010_dedupe_local_cache, 0011_dedupe_in_place, 0012_dedupe_whole,
0013_dedupe_panels, 0014_dedupe_bound, 0015_dedupe_colour, 0016_dedupe_turned, 0018_dedupe_quality and
0019_dedupe_shows: a catalogue
made before keeps every dedupe row (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlmodel import select

from curate.workspace import Workspace
from db.engine import make_engine
from db.migrate import current_revision, head_revision, upgrade
from db.models import DedupeCode, DedupeLocal, DedupeOverride, DedupePair

HEAD = "0020_repair_gaps"  # the newest of all


def _image(c, i: int) -> None:
    """One catalogued image row, as every revision since 0001 has it."""
    c.exec_driver_sql(
        "INSERT INTO images (id, sha256, size_bytes, format, width, height, mode, frames, has_exif, has_gps,"
        " has_camera_serial, created_at) VALUES"
        f" ({i}, '{str(i) * 64}', 10, 'JPEG', 64, 64, 'RGB', 1, false, false, false, CURRENT_TIMESTAMP)"
    )


def test_catalogue_at_0004_upgrades_and_keeps_dedupe_rows(db_url, tmp_path):
    engine = make_engine(db_url)
    upgrade(engine, "0004_export")
    with engine.begin() as c:
        for i in (1, 2):
            _image(c, i)
            empty = "''::bytea" if engine.dialect.name == "postgresql" else "x''"
            c.exec_driver_sql(
                "INSERT INTO dedupe_codes (image_id, algo, codes, thumb, masked, created_at)"
                f" VALUES ({i}, 'region-phash-v1/64/11', {empty}, {empty}, 0.0, CURRENT_TIMESTAMP)"
            )
        c.exec_driver_sql(
            "INSERT INTO dedupe_pairs (image_a, image_b, kind, hamming, similarity) VALUES (1, 2, 'hash', 3, 0.97)"
        )
        c.exec_driver_sql(
            "INSERT INTO dedupe_overrides (image_a, image_b, action, note, created_at) VALUES (1, 2, 'merge', "
            "'same', CURRENT_TIMESTAMP)"
        )
    engine.dispose()
    ws = Workspace.init(tmp_path / "old-ws", db_url=db_url)
    assert current_revision(ws.engine) == head_revision()
    with ws.session() as s:
        codes = s.exec(select(DedupeCode).order_by(DedupeCode.image_id)).all()
        assert [(c.image_id, c.algo, c.flat, c.box) for c in codes] == [
            (1, "region-phash-v1/64/11", False, None),
            (2, "region-phash-v1/64/11", False, None),
        ]
        pair = s.exec(select(DedupePair)).one()
        assert (pair.kind, pair.similarity, pair.inliers, pair.reason) == ("hash", 0.97, None, None)
        assert s.exec(select(DedupeOverride)).one().note == "same"


def test_catalogue_at_0009_gains_the_local_feature_cache_and_keeps_its_rows(db_url, tmp_path):
    """Migration 0010_dedupe_local_cache adds `dedupe_local` (empty: the next run fills it); nothing else changes."""
    engine = make_engine(db_url)
    upgrade(engine, "0009_label_audit")
    blob = "'\\x00'::bytea" if engine.dialect.name == "postgresql" else "x'00'"
    with engine.begin() as c:
        for i in (1, 2):
            _image(c, i)
            c.exec_driver_sql(
                "INSERT INTO dedupe_codes (image_id, algo, codes, thumb, masked, searched_with, box, flat, created_at)"
                f" VALUES ({i}, 'region-phash-v2/64/11', {blob}, {blob}, 0.0, 'k5', '0,0,1,1', false,"
                " CURRENT_TIMESTAMP)"
            )
        c.exec_driver_sql(
            "INSERT INTO dedupe_pairs (image_a, image_b, kind, hamming, similarity, inliers, reason)"
            " VALUES (1, 2, 'untested', NULL, 0.0, 3, 'too little texture')"
        )
    engine.dispose()
    ws = Workspace.init(tmp_path / "old-ws", db_url=db_url)
    assert current_revision(ws.engine) == head_revision()
    with ws.session() as s:
        codes = s.exec(select(DedupeCode).order_by(DedupeCode.image_id)).all()
        assert [(c.image_id, c.searched_with, c.box) for c in codes] == [(1, "k5", "0,0,1,1"), (2, "k5", "0,0,1,1")]
        pair = s.exec(select(DedupePair)).one()
        assert (pair.kind, pair.inliers, pair.reason) == ("untested", 3, "too little texture")
        assert s.exec(select(DedupeLocal)).all() == []
        s.add(DedupeLocal(image_id=1, version="v", count=1, descriptors=bytes(range(128))))
    with ws.session() as s:
        assert s.get(DedupeLocal, 1).descriptors == bytes(range(128))


@pytest.mark.parametrize("revision", ["0010_dedupe_local_cache", "0018_dedupe_quality"])
def test_a_catalogues_pairs_survive_and_gain_empty_columns(db_url, tmp_path, revision):
    """Migrations 0011_dedupe_in_place and 0019_dedupe_shows add nullable columns to `dedupe_pairs`: every stored
    pair survives as it was, with no in-place correlation and nothing on what each picture shows of the other
    (the representative rule as before) until the next `curate dedupe` verifies it."""
    engine = make_engine(db_url)
    upgrade(engine, revision)
    with engine.begin() as c:
        for i in (1, 2, 3):
            _image(c, i)
        c.exec_driver_sql(
            "INSERT INTO dedupe_pairs (image_a, image_b, kind, hamming, similarity, inliers, reason) VALUES"
            " (1, 2, 'hash', NULL, 0.4, 34, '34 matching keypoints'), (2, 3, 'review', 3, 0.9, 12, 'near')"
        )
    engine.dispose()
    ws = Workspace.init(tmp_path / "old-ws", db_url=db_url)
    assert current_revision(ws.engine) == head_revision() == HEAD
    with ws.session() as s:
        pairs = s.exec(select(DedupePair).order_by(DedupePair.image_a)).all()
        said = [(p.image_a, p.image_b, p.kind, p.inliers, p.reason, p.in_place, p.a_shows, p.b_shows) for p in pairs]
        assert said == [
            (1, 2, "hash", 34, "34 matching keypoints", None, None, None),
            (2, 3, "review", 12, "near", None, None, None),
        ]


@pytest.mark.parametrize(
    ("revision", "algo", "with_whole", "gained"),
    [
        ("0011_dedupe_in_place", "region-phash-v5/64/11", False, "whole"),
        ("0012_dedupe_whole", "region-phash-v6/64/11", True, "panels"),
        ("0014_dedupe_bound", "region-phash-v11/64/11", True, "colour"),
        ("0014_dedupe_bound", "region-phash-v11/64/11", True, "drawn"),
        ("0015_dedupe_colour", "region-phash-v12/64/11", True, "turned"),
        ("0015_dedupe_colour", "region-phash-v12/64/11", True, "tint_cr"),
        ("0017_review_shown", "region-phash-v15/64/11", True, "quality"),
    ],
)
def test_a_catalogues_codes_survive_and_gain_an_empty_column(db_url, tmp_path, revision, algo, with_whole, gained):
    """Migrations 0012_dedupe_whole, 0013_dedupe_panels, 0015_dedupe_colour, 0016_dedupe_turned and
    0018_dedupe_quality add nullable columns to `dedupe_codes`: every row survives as it was, the new column empty
    (no whole-picture thumbnail; no panels: a single photo; no colour measures, no turned share, no quality: the
    representative rule as before), and its old
    algorithm version makes the next run hash it again."""
    engine = make_engine(db_url)
    upgrade(engine, revision)
    blob = "'\\x07'::bytea" if engine.dialect.name == "postgresql" else "x'07'"
    columns = "image_id, algo, codes, thumb, masked, searched_with, box, flat" + (", whole" if with_whole else "")
    values = f"1, '{algo}', {blob}, {blob}, 0.1, 'k5', '0.1,0,1,1', false" + (f", {blob}" if with_whole else "")
    with engine.begin() as c:
        _image(c, 1)
        c.exec_driver_sql(f"INSERT INTO dedupe_codes ({columns}, created_at) VALUES ({values}, CURRENT_TIMESTAMP)")
    engine.dispose()
    ws = Workspace.init(tmp_path / "old-ws", db_url=db_url)
    assert current_revision(ws.engine) == head_revision() == HEAD
    with ws.session() as s:
        row = s.get(DedupeCode, 1)
        assert (row.algo, row.codes, row.thumb, row.masked, row.box) == (algo, b"\x07", b"\x07", 0.1, "0.1,0,1,1")
        assert row.whole == (b"\x07" if with_whole else None)
        assert getattr(row, gained) is None


def test_catalogue_at_0013_binds_its_cached_rows_to_their_images_checksums(db_url, tmp_path):
    """Migration 0014_dedupe_bound: every cached row (codes and local features) is bound to the checksum of
    the image its id names, so the next run reuses it rather than computing the whole catalogue again."""
    engine = make_engine(db_url)
    upgrade(engine, "0013_dedupe_panels")
    blob = "'\\x07'::bytea" if engine.dialect.name == "postgresql" else "x'07'"
    with engine.begin() as c:
        for i in (1, 2):
            _image(c, i)
            c.exec_driver_sql(
                "INSERT INTO dedupe_codes (image_id, algo, codes, thumb, masked, box, flat, created_at)"
                f" VALUES ({i}, 'region-phash-v9/64/11', {blob}, {blob}, 0.0, '0,0,1,1', false, CURRENT_TIMESTAMP)"
            )
        c.exec_driver_sql(
            "INSERT INTO dedupe_local (image_id, version, count, descriptors, created_at)"
            f" VALUES (2, 'v', 0, {blob}, CURRENT_TIMESTAMP)"
        )
    engine.dispose()
    ws = Workspace.init(tmp_path / "old-ws", db_url=db_url)
    assert current_revision(ws.engine) == head_revision() == HEAD
    with ws.session() as s:
        assert [(r.image_id, r.image_sha256, r.codes) for r in s.exec(select(DedupeCode)).all()] == [
            (1, "1" * 64, b"\x07"),
            (2, "2" * 64, b"\x07"),
        ]
        assert s.get(DedupeLocal, 2).image_sha256 == "2" * 64
