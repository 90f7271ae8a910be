"""The steward's decisions (`curate dedupe split/merge/keep`) against a hostile probe.

Before: a merge with one pixel twin of a picture split from the other twin pulled the twins apart, and status counted
their pair undecided for good while the sheet never showed it (a merged pair a split held apart too); a decision after
a `curate dedupe` stopped between hashing and comparing clustered the images it had hashed; codes of an older version
made any decision empty every cluster (a keep then failed `aborted` for good); `split A B NEW` dropped a never
compared NEW without a word; a note that is no UTF-8 text failed midway (`aborted`, listed by status for good); and a
damaged verification-features cache was called the local-features cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dedupe_corpus import photo, save, variant
from photo_corpus import originals
from sqlalchemy import text
from sqlmodel import select
from typer.testing import CliRunner

from curate.cli import app
from curate.dedupe import cluster_map, uncompared_image_ids
from curate.dedupe.cluster import Edge, clusters
from curate.dedupe.run import DedupeOptions, DedupeReport, hash_missing
from curate.dedupe.stored import FOLDER, StoredFeatures
from curate.workspace import Workspace
from db.models import CommandRun, DedupeMember, DedupeOverride, Provenance

runner = CliRunner()


def curate(*args: str, code: int = 0):
    r = runner.invoke(app, list(args))
    assert r.exit_code == code, r.output
    return r


def _said(r) -> str:
    return " ".join(r.output.split())


def _ingest(root: Path, folder: Path, source: str = "clinic-x") -> None:
    curate("ingest", str(folder), "--source", source, "--workers", "1", "-w", str(root))


def _dedupe(root: Path) -> None:
    curate("dedupe", "-w", str(root), "--min-side", "64", "--workers", "1", "--no-review")


def _ids(root: Path) -> tuple[Workspace, dict[str, int]]:
    ws = Workspace.open(root)
    with ws.session() as s:
        return ws, {Path(loc).name: i for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all()}


def _keys(ws) -> dict[int, str]:
    with ws.session() as s:
        return dict(s.exec(select(DedupeMember.image_id, DedupeMember.cluster_key)).all())


def _status(root: Path) -> dict:
    return json.loads(curate("status", "-w", str(root), "--json").stdout)


def _review(root: Path) -> dict:
    return json.loads(curate("dedupe", "review", "-w", str(root), "--json").stdout)


def _to_review(root: Path) -> list[tuple[int, int]]:
    return sorted((p["image_a"], p["image_b"]) for p in _review(root)["to_review"])


@pytest.fixture(scope="module")
def twins_corpus(tmp_path_factory) -> Path:
    """a.png and a_twin.png (the same pixels, other bytes), b.jpg mirrored, c.jpg saved at quality 60."""
    folder = tmp_path_factory.mktemp("twins") / "photos"
    folder.mkdir()
    pic = originals(1)[0].convert("RGB")
    pic.save(folder / "a.png", compress_level=1)
    pic.save(folder / "a_twin.png", compress_level=9)
    save(pic.transpose(0), folder / "b.jpg", quality=90)  # FLIP_LEFT_RIGHT
    save(pic, folder / "c.jpg", quality=60)
    return folder


@pytest.fixture()
def twins(tmp_path, twins_corpus) -> tuple[Path, dict[str, int]]:
    root = tmp_path / "ws"
    curate("init", str(root))
    _ingest(root, twins_corpus)
    _dedupe(root)
    ws, ids = _ids(root)
    assert len(set(_keys(ws).values())) == 1, _keys(ws)  # one photo, one cluster
    return root, ids


def test_pixel_twins_join_before_a_merge_a_split_would_block():
    """Pure: twins 1 and 2, the steward's split 1–3 and merge 2–3. Merge edges first, 2 went to 3 and the split
    then kept 1 from its twin."""
    edges = [Edge(2, 3, "merge"), Edge(1, 2, "pixel")]
    roots = clusters([1, 2, 3], edges, {(1, 3)})
    assert roots[1] == roots[2] != roots[3]


def test_a_merge_with_a_twin_of_a_split_picture_leaves_the_twins_together(twins):
    root, ids = twins
    a, twin, b, c = ids["a.png"], ids["a_twin.png"], ids["b.jpg"], ids["c.jpg"]
    curate("dedupe", "split", str(a), str(b), "-w", str(root))
    out = json.loads(curate("dedupe", "merge", str(twin), str(b), "-w", str(root), "--json").stdout)
    assert out["apart"] == [b]  # recorded, said, and not honoured: a split with a's twin holds b apart
    ws, _ = _ids(root)
    keys = _keys(ws)
    assert keys[a] == keys[twin] != keys[b], keys
    assert keys[c] in (keys[a], keys[b])
    sheet = _to_review(root)
    assert (min(a, twin), max(a, twin)) not in sheet  # the twins are one member
    assert (min(twin, b), max(twin, b)) in sheet  # the merge held apart: one photo by the steward's word
    assert _status(root)["dedupe_undecided_pairs"] == len(sheet) == out["undecided"]


def test_status_and_the_sheet_count_the_same_undecided_pairs_after_a_merge_a_split_holds_apart(twins):
    root, ids = twins
    a, b, c = ids["a.png"], ids["b.jpg"], ids["c.jpg"]
    curate("dedupe", "split", str(a), str(b), "-w", str(root))
    curate("dedupe", "merge", str(a), str(c), "-w", str(root))
    out = json.loads(curate("dedupe", "merge", str(b), str(c), "-w", str(root), "--json").stdout)
    assert out["apart"] == [c]  # c is a's by the first merge; the split a–b keeps b out
    items = _review(root)
    held = [p for p in items["to_review"] if {p["image_a"], p["image_b"]} == {b, c}]
    assert [p["kind"] for p in held] == ["merge"], held  # shown, and said why: a split of the steward's
    assert "a split of yours keeps" in held[0]["reason"]
    sheet = _to_review(root)
    assert _status(root)["dedupe_undecided_pairs"] == len(sheet) == out["undecided"]
    data = json.loads(curate("dedupe", "-w", str(root), "--min-side", "64", "--workers", "1", "--json").stdout)
    assert data["to_review"] == len(_to_review(root)) == _status(root)["dedupe_undecided_pairs"]
    # the sheet's merge of both clusters takes the split over: the steward's word is honoured, and nothing is left
    (group,) = [g for g in items["review_groups"] if any(p["kind"] == "merge" for p in g["pairs"])]
    curate(*group["merge"].split()[1:], "-w", str(root))
    ws, _ = _ids(root)
    keys = _keys(ws)
    assert keys[b] == keys[c] == keys[a]
    assert _status(root)["dedupe_undecided_pairs"] == len(_to_review(root)) == 0


@pytest.fixture()
def stopped(tmp_path) -> tuple[Path, dict[str, int], list[int]]:
    """A workspace deduped, then three new copies ingested and hashed by a run stopped before it compared (its hash
    codes are committed batch by batch, before any comparison)."""
    folder, more = tmp_path / "photos", tmp_path / "more"
    for k in range(3):
        save(photo(60 + k), folder / f"p{k}.jpg")
    save(variant(photo(60), "reencode", 0), folder / "p0_again.jpg")
    root = tmp_path / "ws"
    curate("init", str(root))
    _ingest(root, folder)
    _dedupe(root)
    for k in range(3):
        save(variant(photo(60 + k), "mirror", 1), more / f"p{k}_mirror.jpg")
    _ingest(root, more, "web-y")
    ws, ids = _ids(root)
    new = sorted(ids[f"p{k}_mirror.jpg"] for k in range(3))
    hash_missing(ws, DedupeOptions(min_side=64, workers=1), DedupeReport())
    return root, ids, new


def test_a_decision_after_a_stopped_run_leaves_the_images_it_hashed_uncompared(stopped):
    root, ids, new = stopped
    ws, _ = _ids(root)
    assert _status(root)["dedupe_not_compared"] == 3
    curate("dedupe", "keep", str(ids["p0.jpg"]), "-w", str(root))
    assert _status(root)["dedupe_not_compared"] == 3
    with ws.session() as s:
        assert uncompared_image_ids(s, set(new)) == new
    r = curate("dedupe", "merge", str(new[0]), str(ids["p0.jpg"]), "-w", str(root), code=1)
    assert f"image {new[0]} not in a cluster yet (run `curate dedupe` first)" in _said(r)
    _dedupe(root)  # the next run compares them
    assert _status(root)["dedupe_not_compared"] == 0


def test_split_naming_a_never_compared_image_is_refused(stopped):
    root, ids, new = stopped
    ws, _ = _ids(root)
    a, b = ids["p0.jpg"], ids["p0_again.jpg"]
    r = curate("dedupe", "split", str(a), str(b), str(new[0]), "-w", str(root), code=1)
    assert f"image {new[0]} not in a cluster yet (run `curate dedupe` first)" in _said(r)
    with ws.session() as s:
        assert s.exec(select(DedupeOverride)).all() == []  # nothing recorded, not even a–b


def _stale(root: Path) -> Workspace:
    ws, _ = _ids(root)
    with ws.engine.begin() as c:
        c.execute(text("update dedupe_codes set algo = 'region-phash-v15/64/11'"))
    return ws


def test_decisions_are_refused_while_the_codes_are_from_an_older_version(twins):
    root, ids = twins
    ws = _stale(root)
    before = _keys(ws)
    stale = "the dedupe codes are from an older version: run `curate dedupe` first"
    for args in (
        ["split", str(ids["b.jpg"])],
        ["keep", str(ids["a_twin.png"])],
        ["merge", str(ids["a.png"]), str(ids["c.jpg"])],
    ):
        r = curate("dedupe", *args, "-w", str(root), code=1)
        assert stale in _said(r) and "unexpected" not in r.output
    assert _keys(ws) == before  # no cluster emptied
    with ws.session() as s:
        assert s.exec(select(DedupeOverride)).all() == []
        runs = s.exec(select(CommandRun.status).where(CommandRun.command.like("dedupe %"))).all()
    assert runs == ["failed"] * 3
    assert _status(root)["unfinished_runs"] == 0
    _dedupe(root)  # the run hashes again; decisions are taken again
    curate("dedupe", "keep", str(ids["a_twin.png"]), "-w", str(root))


@pytest.mark.parametrize(
    "decision",
    [["keep", "{c}"], ["split", "{a}", "{b}"], ["merge", "{a}", "{c}"]],
)
def test_a_note_that_is_no_utf8_text_is_refused_naming_the_option(twins, decision):
    root, ids = twins
    named = {"a": ids["a.png"], "b": ids["b.jpg"], "c": ids["c.jpg"]}
    args = [x.format(**named) for x in decision]
    note = b"bad\xffbyte".decode("utf-8", "surrogateescape")  # as Python hands a shell's non-UTF-8 argument over
    r = curate("dedupe", *args, "--note", note, "-w", str(root), code=1)
    said = _said(r)
    assert "--note is not UTF-8 text" in said and "unexpected" not in said, said
    ws, _ = _ids(root)
    with ws.session() as s:
        assert s.exec(select(DedupeOverride)).all() == []
        assert s.exec(select(CommandRun.status).where(CommandRun.command.like("dedupe %"))).all() == ["failed"]
    data = _status(root)
    assert data["unfinished_runs"] == 0
    assert "did not finish" not in curate("status", "-w", str(root)).output
    with ws.session() as s:
        assert len(set(cluster_map(s).values())) == 1  # the clusters as they were


def test_a_damaged_verification_features_cache_is_named_so(tmp_path):
    folder = tmp_path / FOLDER
    folder.mkdir(parents=True)
    (folder / "cache.db").write_bytes(b"not a cache" * 100)
    stored = StoredFeatures(tmp_path, "algo")
    try:
        (said,) = stored.notes()
    finally:
        stored.close()
    assert said.startswith("the verification-features cache was damaged and made anew"), said
