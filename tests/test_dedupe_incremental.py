"""A re-run after new photos arrive costs in proportion to what is new, on real photo bytes: local
features are computed only for the new pictures (the rest come from the catalogue, `dedupe_local`),
groups without a new picture are not verified again, and the clusters are a full run's."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from dedupe_corpus import save
from photo_corpus import leak, originals
from sqlalchemy import update
from sqlmodel import select

from curate.dedupe import cluster_map, local, verify
from curate.dedupe.pairs import Pair, Verifier, complete, load_codes
from curate.dedupe.run import ALGO, DedupeOptions, run_dedupe
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace
from db.models import DedupeCode, DedupeLocal, DedupePair, Image, Provenance

OPTS = DedupeOptions(min_side=64, workers=1)
PHOTOS = originals(24)


def _ingest(ws, folder, source: str) -> None:
    ingest_folder(ws, folder, IngestOptions(source=source, kind="public", workers=1))


def _names(ws) -> dict[str, int]:
    with ws.session() as s:
        return {Path(loc).name: i for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all()}


def _state(ws) -> tuple[dict, list]:
    """(cluster key by file name, stored pairs by file names): what a full and an incremental run must agree on."""
    name = {i: n for n, i in _names(ws).items()}
    with ws.session() as s:
        keys = cluster_map(s)
        pairs = sorted(
            (*sorted((name[p.image_a], name[p.image_b])), p.kind, p.inliers) for p in s.exec(select(DedupePair)).all()
        )
    groups: dict[str, list[str]] = {}
    for i, key in keys.items():
        groups.setdefault(key, []).append(name[i])
    return sorted(sorted(g) for g in groups.values() if len(g) > 1), pairs


def _full_run(ws_dir: Path, copy: Path):
    """A full run on the same images: a copy of the workspace whose codes were never searched."""
    shutil.copytree(ws_dir, copy)
    ws = Workspace.open(copy)
    with ws.session() as s:
        s.exec(update(DedupeCode).values(searched_with=None))
    return ws, run_dedupe(ws, OPTS)


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """A catalogue deduped once (photos, two leaked copies of one, one of another), then a copy of an
    existing photo and a new photo arrive and dedupe runs again: as in a big catalogue, where they would be
    under `local.ALONE` of it, only they ask for shared local features."""
    root = tmp_path_factory.mktemp("grown")
    first, second = root / "first", root / "second"
    for k in range(12):
        save(PHOTOS[k], first / f"photo_{k}.jpg")
    save(leak(PHOTOS[0], "watermark_crop", 1), first / "photo_0_watermark.jpg", quality=80)
    save(leak(PHOTOS[0], "mirror_crop", 2), first / "photo_0_mirror.jpg", quality=80)
    save(leak(PHOTOS[2], "frame_rescale", 3), first / "photo_2_frame.jpg", quality=80)
    save(leak(PHOTOS[3], "watermark_crop", 4), second / "photo_3_watermark.jpg", quality=75)
    save(PHOTOS[20], second / "photo_20.jpg")
    ws = Workspace.init(root / "ws")
    _ingest(ws, first, "atlas")
    r1 = run_dedupe(ws, OPTS)
    _ingest(ws, second, "forum")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(local, "ALONE", 0.5)  # 2 new of 17
        mp.setattr(local, "_asked", _asking_only(local._asked, {"photo_3_watermark.jpg", "photo_20.jpg"}, ws))
        r2 = run_dedupe(ws, OPTS)
    return ws, r1, r2


def _asking_only(asked, names: set[str], ws):
    """`local._asked`, failing when any picture but those named asks."""

    def spy(index, desc, ids, askers, owner):
        asking = {ids[k] for k in askers}
        assert asking == {_names(ws)[n] for n in names}, asking
        return asked(index, desc, ids, askers, owner)

    return spy


def test_a_re_run_computes_local_features_only_for_new_pictures_and_finds_the_copy(grown):
    ws, r1, r2 = grown
    assert (r1.searched, r1.local_cached, r1.local_computed) == ("all", 0, 15)
    assert (r2.searched, r2.local_cached, r2.local_computed) == ("incremental", 15, 2)
    assert r2.as_dict()["local_cached"] == 15  # what `curate dedupe --json` shows
    ids = _names(ws)
    with ws.session() as s:
        keys = cluster_map(s)
        kept = s.exec(select(DedupeLocal.image_id, DedupeLocal.count)).all()
    assert keys[ids["photo_3_watermark.jpg"]] == keys[ids["photo_3.jpg"]]
    assert keys[ids["photo_20.jpg"]] not in {keys[i] for n, i in ids.items() if n != "photo_20.jpg"}
    assert len({keys[ids[n]] for n in ("photo_0.jpg", "photo_0_watermark.jpg", "photo_0_mirror.jpg")}) == 1
    assert len(kept) == 17 and all(0 < count <= 128 for _, count in kept)
    # verification looked only at pairs touching the new pictures
    assert 0 < r2.sift_pairs < r1.sift_pairs / 2, (r1.sift_pairs, r2.sift_pairs)
    # nothing new: nothing computed, nothing verified again
    r3 = run_dedupe(ws, OPTS)
    assert (r3.sift_pairs, r3.local_computed, r3.clusters) == (0, 0, r2.clusters)


def test_the_incremental_run_clusters_as_a_full_run_does(grown, tmp_path):
    ws, _, r2 = grown
    full_ws, full = _full_run(ws.root, tmp_path / "full")
    assert full.searched == "all" and full.local_cached == 17 and full.local_computed == 0
    assert _state(full_ws) == _state(ws)
    assert full.sift_pairs > r2.sift_pairs


def test_a_corrupt_or_stale_cache_entry_is_recomputed_with_a_note_and_the_same_result(grown, tmp_path):
    ws, _, _ = grown
    copy = tmp_path / "ws"
    shutil.copytree(ws.root, copy)
    ws = Workspace.open(copy)
    ids = _names(ws)
    victim, old = ids["photo_3.jpg"], ids["photo_0_mirror.jpg"]
    with ws.session() as s:
        before, count = s.get(DedupeLocal, victim).descriptors, s.get(DedupeLocal, victim).count
        s.get(DedupeLocal, victim).descriptors = before[:1000]  # a torn write
        s.get(DedupeLocal, old).version = "region-phash-v1/64/11|sift/160/64/500/0.04|opencv 4.0.0"
    expected = _state(ws)
    save(PHOTOS[21], tmp_path / "new" / "photo_21.jpg")
    _ingest(ws, tmp_path / "new", "forum")
    report = run_dedupe(ws, OPTS)
    assert report.searched == "incremental" and report.local_computed == 3  # the new one, the two damaged
    corrupt = [line for line in report.recomputed if line.startswith(f"image {victim}: cached local features")]
    assert corrupt == [
        f"image {victim}: cached local features are corrupt (1000 bytes for {count} descriptors); recomputed"
    ]
    assert "1 cached local features from an older version; recomputed" in report.recomputed
    with ws.session() as s:
        assert s.get(DedupeLocal, victim).descriptors == before
        assert s.get(DedupeLocal, old).version == s.get(DedupeLocal, victim).version
    clusters, pairs = _state(ws)
    assert clusters == expected[0]  # the new, different photo changed nothing
    assert [p for p in pairs if "photo_21.jpg" not in p[:2]] == expected[1]


def test_a_hand_edited_or_copied_cache_row_is_recomputed_with_a_reason_never_trusted(grown, tmp_path):
    """Rows edited to the wrong type, and rows holding another photo's codes and features (as if copied in
    from a catalogue where that id is another photo), are each named and recomputed: no TypeError, every
    row bound to its own image afterwards, and the clusters those of an untouched catalogue."""
    ws, _, _ = grown
    copy = tmp_path / "ws"
    shutil.copytree(ws.root, copy)
    ws = Workspace.open(copy)
    expected = _state(ws)
    ids = _names(ws)
    typed, copied, counted, moved, measured, turned, tinted, saved = (
        ids[f"photo_{k}.jpg"] for k in (3, 5, 7, 8, 4, 6, 2, 10)
    )
    donor = ids["photo_9.jpg"]
    with sqlite3.connect(copy / "catalogue.db") as db:
        db.execute("UPDATE dedupe_codes SET masked = 'zz' WHERE image_id = ?", (typed,))
        db.execute("UPDATE dedupe_codes SET drawn = 7.5 WHERE image_id = ?", (measured,))
        db.execute("UPDATE dedupe_codes SET turned = 0 WHERE image_id = ?", (turned,))
        db.execute("UPDATE dedupe_codes SET tint_cb = 'blue' WHERE image_id = ?", (tinted,))
        db.execute("UPDATE dedupe_codes SET quality = 55.5 WHERE image_id = ?", (saved,))
        db.execute(
            "UPDATE dedupe_codes SET (codes, thumb, box, image_sha256) = (SELECT codes, thumb, box, image_sha256"
            " FROM dedupe_codes WHERE image_id = ?) WHERE image_id = ?",
            (donor, copied),
        )
        db.execute("UPDATE dedupe_local SET count = 'x' WHERE image_id = ?", (counted,))
        db.execute(
            "UPDATE dedupe_local SET (count, descriptors, image_sha256) = (SELECT count, descriptors, image_sha256"
            " FROM dedupe_local WHERE image_id = ?) WHERE image_id = ?",
            (donor, moved),
        )
    save(PHOTOS[21], tmp_path / "new" / "photo_21.jpg")
    _ingest(ws, tmp_path / "new", "forum")
    report = run_dedupe(ws, OPTS)
    said = "\n".join(report.recomputed)
    assert f"image {typed}: cached hash codes are corrupt (in-painted share 'zz'); recomputed" in said
    assert f"image {copied}: cached hash codes are computed from other bytes than its original" in said
    assert f"image {measured}: cached hash codes are corrupt (colour measures); recomputed" in said
    assert f"image {turned}: cached hash codes are corrupt (share of a turned picture '0.0'); recomputed" in said
    assert f"image {tinted}: cached hash codes are corrupt (tint); recomputed" in said
    assert f"image {saved}: cached hash codes are corrupt (compression quality '55.5'); recomputed" in said
    assert f"image {counted}: cached local features are corrupt (" in said
    assert f"image {moved}: cached local features are computed from other bytes than its original" in said
    assert report.local_computed == 3  # the new photo and the two damaged rows
    with ws.session() as s:
        sha = dict(s.exec(select(Image.id, Image.sha256)).all())
        for table in (DedupeCode, DedupeLocal):
            assert {r.image_id: r.image_sha256 for r in s.exec(select(table)).all()} == sha
    clusters, pairs = _state(ws)
    assert clusters == expected[0]
    assert [p for p in pairs if "photo_21.jpg" not in p[:2]] == expected[1]


def test_completion_verifies_only_groups_holding_a_touched_image(tmp_path):
    """A chain A~B~C of three different photos (as if their pairs had been verified "same"): the
    missing pair (A, C) is verified when a touched image is in the group, never otherwise."""
    folder = tmp_path / "in"
    for k in (4, 5, 6):
        save(PHOTOS[k], folder / f"photo_{k}.jpg")
    ws = Workspace.init(tmp_path / "ws")
    _ingest(ws, folder, "atlas")
    run_dedupe(ws, OPTS)
    with ws.session() as s:
        ids, _, thumbs, _ = load_codes(s, ALGO)
    a, b, c = ids.tolist()
    chain = {(a, b): Pair(a, b, "hash"), (b, c): Pair(b, c, "hash")}
    verifier = Verifier(ws, 1, dict(zip(ids.tolist(), thumbs, strict=False)))
    pairs = dict(chain)
    complete(verifier, pairs, touched={99})  # no member touched: the last run verified this group
    assert pairs == chain and verifier.sift_pairs == 0
    complete(verifier, pairs, touched={c})
    assert pairs == chain and verifier.sift_pairs == 1  # (a, c) verified: different photos, still absent
    assert verifier.check(a, c, 0.0).decision == verify.DIFFERENT
    complete(verifier, pairs)  # a full run: every group
    assert verifier.sift_pairs == 2


def test_local_features_are_kept_on_either_catalogue(ws, tmp_path):
    """SQLite and PostgreSQL (the `ws` fixture): the second run reads the first run's descriptors back
    byte for byte and finds a mirrored, cropped copy of a photo the first run saw."""
    for k in (6, 7, 8):
        save(PHOTOS[k], tmp_path / "a" / f"photo_{k}.jpg")
    save(leak(PHOTOS[7], "mirror_crop", 5), tmp_path / "b" / "photo_7_mirror.jpg", quality=80)
    _ingest(ws, tmp_path / "a", "atlas")
    first = run_dedupe(ws, OPTS)
    with ws.session() as s:
        kept = {i: bytes(d) for i, d in s.exec(select(DedupeLocal.image_id, DedupeLocal.descriptors)).all()}
    _ingest(ws, tmp_path / "b", "forum")
    second = run_dedupe(ws, OPTS)
    assert (first.local_computed, second.local_cached, second.local_computed) == (3, 3, 1) and not second.recomputed
    ids = _names(ws)
    with ws.session() as s:
        assert cluster_map(s)[ids["photo_7_mirror.jpg"]] == cluster_map(s)[ids["photo_7.jpg"]]
        again = {i: bytes(d) for i, d in s.exec(select(DedupeLocal.image_id, DedupeLocal.descriptors)).all()}
    assert {i: again[i] for i in kept} == kept and len(again) == 4
