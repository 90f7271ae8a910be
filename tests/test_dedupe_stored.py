"""Local features kept between runs (`curate.dedupe.stored`): a steward's next run reads the old pictures' features
back instead of taking SIFT of them again, and stores exactly the pairs a run without the cache stores. A damaged
cache or a wrong limit is left aside with one note; the run's result does not change."""

from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
from pathlib import Path

import pytest
from dedupe_corpus import save
from photo_corpus import leak, originals
from sqlalchemy import update
from sqlmodel import select

from curate.dedupe.run import DedupeOptions, run_dedupe
from curate.dedupe.stored import FOLDER, LIMIT_ENV, MOST_MB
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace
from db.models import DedupeCode, DedupePair, Provenance

OPTS = DedupeOptions(min_side=64, workers=1)
PHOTOS = originals(16)


class Exploit:
    """Code an unpickled entry would run."""

    def __reduce__(self):
        return (Path.touch, (Path(os.environ["PYTEST_EXPLOIT_MARK"]),))


def _state(ws) -> list:
    """The stored pairs by file names, kind and agreeing keypoints."""
    with ws.session() as s:
        name = {i: Path(loc).name for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all()}
        return sorted(
            (*sorted((name[p.image_a], name[p.image_b])), p.kind, p.inliers) for p in s.exec(select(DedupePair)).all()
        )


def _dedupe(ws, limit: str | None, monkeypatch):
    """`curate dedupe` with the cache limit `limit` (None: the default)."""
    if limit is None:
        monkeypatch.delenv(LIMIT_ENV, raising=False)
    else:
        monkeypatch.setenv(LIMIT_ENV, limit)
    return run_dedupe(ws, OPTS)


def _run(ws, folder: Path, limit: str | None, monkeypatch):
    ingest_folder(ws, folder, IngestOptions(source="atlas", kind="public", workers=1))
    return _dedupe(ws, limit, monkeypatch)


def _again(ws, monkeypatch, limit: str | None = None):
    """A full run once more on the same pictures (every pair verified again, as after a rules change)."""
    with ws.session() as s:
        s.exec(update(DedupeCode).values(searched_with=None))
    return _dedupe(ws, limit, monkeypatch)


@pytest.fixture
def folders(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for k in range(10):
        save(PHOTOS[k], first / f"photo_{k}.jpg")
    for folder, k, kind, name in ((first, 0, "watermark_crop", "watermark"), (first, 2, "mirror_crop", "mirror")):
        save(leak(PHOTOS[k], kind, k + 1), folder / f"photo_{k}_{name}.jpg", quality=80)
    save(leak(PHOTOS[3], "frame_rescale", 4), second / "photo_3_frame.jpg", quality=75)  # arrives later
    save(PHOTOS[12], second / "photo_12.jpg")
    return first, second


def test_the_next_run_reads_old_features_back_and_stores_what_a_run_without_them_stores(folders, tmp_path, monkeypatch):
    first, second = folders
    kept, plain = Workspace.init(tmp_path / "kept"), Workspace.init(tmp_path / "plain")
    k1, p1 = _run(kept, first, None, monkeypatch), _run(plain, first, "0", monkeypatch)
    assert (k1.features_read, p1.features_read) == (0, 0) and k1.features_taken == p1.features_taken > 0
    assert (kept.root / FOLDER).is_dir() and not (plain.root / FOLDER).exists()
    assert os.stat(kept.root / FOLDER).st_mode & 0o077 == 0  # derived from patients' photos: the owner's alone
    k2, p2 = _run(kept, second, None, monkeypatch), _run(plain, second, "0", monkeypatch)
    assert k2.features_read > 0 and p2.features_read == 0
    assert k2.features_taken < p2.features_taken, (k2.features_taken, p2.features_taken)
    assert k2.as_dict()["features_read"] == k2.features_read  # what `curate dedupe --json` shows
    assert _state(kept) == _state(plain)
    names = {n for a, b, kind, _ in _state(kept) if kind == "hash" for n in (a, b)}
    assert {"photo_3.jpg", "photo_3_frame.jpg", "photo_0_watermark.jpg", "photo_2_mirror.jpg"} <= names
    full = _again(kept, monkeypatch)  # every pair again: no SIFT taken at all at the sizes kept
    assert full.features_taken == 0 and full.features_read > 0 and _state(kept) == _state(plain)


def test_a_damaged_cache_is_made_anew_and_a_wrong_limit_left_aside_with_one_note(folders, tmp_path, monkeypatch):
    first, _ = folders
    monkeypatch.setenv("PYTEST_EXPLOIT_MARK", str(tmp_path / "unpickled"))
    ws = Workspace.init(tmp_path / "ws")
    _run(ws, first, None, monkeypatch)
    before = _state(ws)
    with sqlite3.connect(ws.root / FOLDER / "cache.db") as db:  # one entry damaged, one pickled: taken again
        db.execute("UPDATE Cache SET value = ? WHERE rowid = (SELECT min(rowid) FROM Cache)", (b"not an entry",))
        planted = pickle.dumps(Exploit())
        db.execute("UPDATE Cache SET value = ?, mode = 4 WHERE rowid = (SELECT max(rowid) FROM Cache)", (planted,))
    one = _again(ws, monkeypatch)
    assert "2 damaged entries of the verification-features cache taken again" in one.notes and one.features_taken >= 2
    assert not (tmp_path / "unpickled").exists()
    assert _state(ws) == before
    for f in (ws.root / FOLDER).iterdir():  # the index and every entry overwritten with garbage
        if f.is_file():
            f.write_bytes(b"not a cache" * 100)
        else:
            shutil.rmtree(f)
    damaged = _again(ws, monkeypatch)
    (said,) = [n for n in damaged.notes if "cache" in n]
    assert said.startswith("the verification-features cache was damaged and made anew (DatabaseError: "), said
    assert damaged.features_read == 0 and _state(ws) == before
    healed = _again(ws, monkeypatch)
    assert not [n for n in healed.notes if "cache" in n] and healed.features_read > 0 and healed.features_taken == 0
    wrong = _again(ws, monkeypatch, "lots")
    assert (
        f"${LIMIT_ENV} is 'lots', not a whole number of MB (0: no cache): no verification-features cache this run"
        in (wrong.notes)
    )
    assert wrong.features_read == 0 and _state(ws) == before
    shutil.rmtree(ws.root / FOLDER.parent)
    (ws.root / FOLDER.parent).write_text("a file where the cache's folder goes")
    blocked = _again(ws, monkeypatch)
    (said,) = [n for n in blocked.notes if "cache" in n]
    assert said.startswith("the verification-features cache was left aside (") and _state(ws) == before


@pytest.mark.parametrize(
    ("limit", "why"),
    [
        ("²", "not a whole number of MB (0: no cache)"),
        ("٣", "not a whole number of MB (0: no cache)"),
        ("-5", "not a whole number of MB (0: no cache)"),
        ("99999999999999999999", f"more MB than a disk holds (at most {MOST_MB})"),
    ],
)
def test_a_cache_limit_out_of_reach_is_left_aside_naming_the_variable(folders, tmp_path, monkeypatch, limit, why):
    """A limit "²" passed str.isdigit and int() refused it: the note said "invalid literal for int()", not which
    setting; "٣" was taken as 3 MB; 10^20 MB overflowed SQLite's integer ("OverflowError: Python int too large")."""
    ws = Workspace.init(tmp_path / "ws")
    report = _run(ws, folders[0], limit, monkeypatch)
    said = f"${LIMIT_ENV} is {limit!r}, {why}: no verification-features cache this run"
    assert said in report.notes and report.features_read == 0
    assert not (ws.root / FOLDER).exists()
