"""Pairs to review between the same two clusters are one decision on the sheet (CliRunner, real workspace,
real pictures): grouped in `curate dedupe review --json` and on the sheet with one merge, and the printed
commands, run as typed, take every pair of the group off the list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from photo_corpus import closeup, originals
from sqlmodel import select
from typer.testing import CliRunner
from workspaces import copied, ids_by_name

from curate.cli import app
from curate.dedupe import cluster_map
from curate.dedupe.run import recluster
from curate.workspace import Workspace
from db.models import DedupePair

runner = CliRunner()


def _cli(root: Path, *args: str):
    r = runner.invoke(app, [*args, "-w", str(root)])
    assert r.exit_code == 0, r.output
    return r


def _review(root: Path) -> dict:
    return json.loads(_cli(root, "dedupe", "review", "--json").stdout)


@pytest.fixture(scope="module")
def deduped(tmp_path_factory) -> Path:
    """A smooth close-up saved twice as PNG (the same pixels, two files: one cluster) and its crop under another
    prior label (too little texture to verify: a pair to review with each of the two), and a second close-up
    with its crop under one label, ingested first (the lower ids: its group would come first but for the labels)."""
    base = tmp_path_factory.mktemp("review_groups")
    mpox, herpes = base / "clinic" / "mpox", base / "clinic" / "genital_herpes"
    mpox.mkdir(parents=True)
    herpes.mkdir(parents=True)
    smooth = closeup(8, texture=0).convert("RGB")
    smooth.save(mpox / "smooth.png", compress_level=1)
    smooth.save(mpox / "smooth_again.png", compress_level=9)
    cut = (smooth.width // 10, smooth.height // 10, smooth.width, smooth.height)
    smooth.crop(cut).save(herpes / "smooth_crop.jpg", quality=92)
    other = closeup(11, texture=0).convert("RGB")
    other.save(herpes / "a_other.jpg", quality=92)
    other.crop(cut).save(herpes / "a_other_crop.jpg", quality=92)
    root = base / "ws"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    _cli(root, "ingest", str(base / "clinic"), "--source", "clinic-x", "--label-from-folders", "--workers", "1")
    _cli(root, "dedupe", "--min-side", "64", "--workers", "1", "--no-review")
    return root


@pytest.fixture()
def ws_root(deduped, tmp_path) -> Path:
    return copied(deduped, tmp_path)


def _group_of(data: dict, image_id: int) -> dict:
    [group] = [g for g in data["review_groups"] if image_id in {i["image"] for side in g["images"] for i in side}]
    return group


def test_pairs_between_two_clusters_are_one_decision_listed_first_when_their_labels_mix(ws_root):
    ids = ids_by_name(ws_root)
    data = _review(ws_root)
    photo, again, crop = ids["smooth.png"], ids["smooth_again.png"], ids["smooth_crop.jpg"]
    group = _group_of(data, crop)
    assert {(p["image_a"], p["image_b"]) for p in group["pairs"]} == {
        tuple(sorted((photo, crop))),
        tuple(sorted((again, crop))),
    }
    assert all("too little texture" in p["reason"] for p in group["pairs"])
    sides = [{i["image"] for i in side} for side in group["images"]]
    assert sorted(sides, key=len) == [{crop}, {photo, again}]
    assert sorted(group["sizes"]) == [1, 2]  # a merge joins whole clusters: the sheet says how big each is
    assert group["mixed_prior_labels"] and group["split"] == [
        f"curate dedupe split {crop} {photo} {again} -w {ws_root}"
    ]
    # two pairs in one group, one in the other: three pairs, two decisions, the mixed labels first though the
    # other group is as alike and its clusters come first by id
    assert data["counts"]["to_review"] == 3 and data["counts"]["to_decide"] == 2
    first, second = data["review_groups"]
    assert first["mixed_prior_labels"] and not second["mixed_prior_labels"]
    assert second["similarity"] >= first["similarity"] and ids["a_other.jpg"] < min(photo, crop)
    assert {p["group"] for p in data["to_review"] if crop in (p["image_a"], p["image_b"])} == {0}
    sheet = Path(data["review_sheet"]).read_text()
    assert sheet.count(group["merge"]) == 1 and "2 pairs between them, one decision" in sheet
    (k1, k2), (n1, n2) = group["clusters"], group["sizes"]
    named = [f"{k} ({n} picture{'s' * (n > 1)})" for k, n in ((k1, n1), (k2, n2))]
    assert f"clusters {named[0]} and {named[1]} — 2 pairs between them, one decision" in sheet
    assert sheet.index(group["merge"]) < sheet.index(data["review_groups"][1]["merge"])
    said = " ".join(_cli(ws_root, "dedupe", "review").stdout.split())  # the terminal says how many decisions
    assert "(3 pairs to review in 2 groups, one decision each)" in said
    # and `curate status` says what is left to decide, which export keeps in one split meanwhile
    assert json.loads(_cli(ws_root, "status", "--json").stdout)["dedupe_undecided_pairs"] == 3
    said = " ".join(_cli(ws_root, "status").stdout.split())
    assert "dedupe: 3 pairs found alike still undecided (to review, or kept apart on the review sheet)" in said


def test_the_one_merge_printed_takes_every_pair_of_its_group_off(ws_root):
    ids = ids_by_name(ws_root)
    before = _review(ws_root)
    group = _group_of(before, ids["smooth_crop.jpg"])
    said = " ".join(_cli(ws_root, *group["merge"].split()[1:]).stdout.split())  # as typed from the sheet
    after = _review(ws_root)
    assert f"merged — now {after['counts']['clusters']} cluster{'s' * (after['counts']['clusters'] != 1)}, " in said
    assert f" labelable, {after['counts']['to_review']} pair found alike still undecided" in said  # the other group
    assert json.loads(_cli(ws_root, "status", "--json").stdout)["dedupe_undecided_pairs"] == 1
    assert after["counts"]["to_review"] == before["counts"]["to_review"] - 2
    assert after["counts"]["to_decide"] == before["counts"]["to_decide"] - 1
    with Workspace.open(ws_root).session() as s:
        keys = cluster_map(s)
    assert keys[ids["smooth.png"]] == keys[ids["smooth_again.png"]] == keys[ids["smooth_crop.jpg"]]


def test_the_splits_printed_decide_every_pair_of_their_group(ws_root):
    ids = ids_by_name(ws_root)
    group = _group_of(_review(ws_root), ids["smooth_crop.jpg"])
    for command in group["split"]:
        out = " ".join(_cli(ws_root, *command.split()[1:]).stdout.split())
        assert "already in another cluster" not in out
    decided = json.loads(_cli(ws_root, "dedupe", "decisions", "--json").stdout)
    assert {(d["image_a"], d["image_b"], d["action"]) for d in decided} == {
        (*p, "split") for p in ((p["image_a"], p["image_b"]) for p in group["pairs"])
    }
    after = _review(ws_root)
    assert after["counts"]["to_decide"] == 1
    assert all(ids["smooth_crop.jpg"] not in (p["image_a"], p["image_b"]) for p in after["to_review"])


@pytest.fixture(scope="module")
def held(tmp_path_factory) -> Path:
    """Two clusters held together by verified pairs, not exact copies: four different photos (no pair between any
    of them), then the evidence a run would store for a1-a2 and b1-b2 ("same") and for a1-b1 and a2-b1 (to
    review). a2 and b2 were never compared, and an unchecked pair blocks a join (complete linkage)."""
    base = tmp_path_factory.mktemp("held")
    (base / "in").mkdir()
    for name, k in (("a1", 1), ("a2", 3), ("b1", 12), ("b2", 20)):
        originals()[k].convert("RGB").save(base / "in" / f"{name}.jpg", quality=92)
    root = base / "ws"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    _cli(root, "ingest", str(base / "in"), "--source", "clinic-x", "--workers", "1")
    _cli(root, "dedupe", "--min-side", "64", "--workers", "1", "--no-review")
    i = ids_by_name(root)
    ws = Workspace.open(root)
    with ws.session() as s:
        assert not s.exec(select(DedupePair)).all()
        for x, y, kind, sim in (("a1", "a2", "hash", 0.97), ("b1", "b2", "hash", 0.96), ("a1", "b1", "review", 0.9)):
            a, b = sorted((i[f"{x}.jpg"], i[f"{y}.jpg"]))
            s.add(DedupePair(image_a=a, image_b=b, kind=kind, similarity=sim, inliers=40, reason=f"{kind} evidence"))
        a, b = sorted((i["a2.jpg"], i["b1.jpg"]))
        s.add(DedupePair(image_a=a, image_b=b, kind="review", similarity=0.85, inliers=14, reason="review evidence"))
        s.flush()
        recluster(s)
    return root


def test_the_merge_printed_makes_two_clusters_held_by_verified_pairs_one(held, tmp_path):
    i = ids_by_name(held)
    data = _review(held)
    [group] = data["review_groups"]
    assert group["sizes"] == [2, 2] and len(group["pairs"]) == 2
    assert group["also"] == [i["b2.jpg"]]  # in a cluster the merge joins, named by no pair: listed on the sheet
    assert (
        f"also in these clusters, merged with them: {i['b2.jpg']} (no prior label)"
        in Path(data["review_sheet"]).read_text()
    )
    named = [int(x) for x in group["merge"].split()[3:] if x.isdigit()]  # then -w, the workspace
    assert sorted(named) == sorted(i.values()) and named[:2] == [
        group["pairs"][0]["image_a"],
        group["pairs"][0]["image_b"],
    ]
    # one pair's merge alone makes those two a unit; the rest of each cluster joins where it matches every member,
    # and b2 was never compared with a2: a pair is left to review (b1-b2, verified but not joined)
    alone = copied(held, tmp_path / "alone")
    _cli(alone, *data["to_review"][0]["merge"].split()[1:])  # the most alike pair's own command
    assert _review(alone)["counts"]["to_review"] == 1
    # the group's merge as printed: one cluster, nothing left to review
    ws_root = copied(held, tmp_path / "group")
    said = " ".join(_cli(ws_root, *group["merge"].split()[1:]).stdout.split())
    assert "merged — now 1 cluster, 1 labelable, 0 pairs found alike still undecided" in said
    assert _review(ws_root)["counts"]["to_review"] == 0
    with Workspace.open(ws_root).session() as s:
        assert len({cluster_map(s)[x] for x in i.values()}) == 1


def test_the_sheet_shows_whole_groups_and_says_how_many_pairs_it_leaves_out(ws_root, monkeypatch):
    from curate.dedupe import review

    monkeypatch.setattr(review, "SHEET_PAIRS", 1)
    data = _review(ws_root)
    sheet = Path(data["review_sheet"]).read_text()
    first, second = data["review_groups"]
    assert first["merge"] in sheet and second["merge"] not in sheet  # the first group whole: its two pairs
    assert "1 more pair to review, mixed prior labels first, the least alike last, not shown here" in sheet
    said = " ".join(_cli(ws_root, "dedupe", "review").stdout.split())
    assert "the sheet shows the first 2 of 3 pairs to review" in said


def test_a_merge_names_each_picture_once_and_takes_over_an_earlier_split_between_them(ws_root):
    ids = ids_by_name(ws_root)
    photo, again, crop = ids["smooth.png"], ids["smooth_again.png"], ids["smooth_crop.jpg"]
    said = " ".join(_cli(ws_root, "dedupe", "merge", str(photo), str(again), str(again)).stdout.split())
    assert said.startswith(f"images {photo} and {again} merged — now ")
    r = runner.invoke(app, ["dedupe", "merge", str(photo), str(photo), "-w", str(ws_root)])
    assert r.exit_code == 1 and "cannot be merged with or split from itself" in r.output
    # a split between two of the pictures a merge names would hold them apart against it: it is taken over
    _cli(ws_root, "dedupe", "split", str(crop), str(again))
    group = _group_of(_review(ws_root), crop)
    said = " ".join(_cli(ws_root, *group["merge"].split()[1:]).stdout.split())
    a, b = sorted((crop, again))
    assert f"images {a} and {b}: replaces the split of " in said and "not in image" not in said
    with Workspace.open(ws_root).session() as s:
        keys = cluster_map(s)
    assert keys[photo] == keys[again] == keys[crop]
