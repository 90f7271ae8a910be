"""The steward's dedupe workflow as the steward sees it (CliRunner, real workspace): a reversed decision
keeps its time and says what it replaced, a split that changes nothing is refused, and
`curate dedupe review --json` lists what the sheet lists, in its order, with its commands."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from dedupe_corpus import photo, save, variant
from photo_corpus import closeup
from sqlmodel import or_, select
from typer.testing import CliRunner
from workspaces import copied, ids_by_name

from curate.cli import app
from curate.dedupe import cluster_map
from curate.workspace import Workspace
from db.models import DedupeOverride, DedupePair

runner = CliRunner()


def _cli(root: Path, *args: str, ok: bool = True):
    r = runner.invoke(app, [*args, "-w", str(root)])
    if ok:
        assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def deduped(tmp_path_factory) -> Path:
    """Two folders labelled by name: a photo and its turned copy across them (a mixed-label cluster), a
    photo and its bar-covered copy (a plain cluster), a smooth close-up and its crop (too little texture:
    a pair to review), and photos of their own."""
    base = tmp_path_factory.mktemp("decisions")
    mpox, herpes = base / "Jane_Doe_clinic" / "mpox", base / "Jane_Doe_clinic" / "genital_herpes"
    for k in range(4):
        save(photo(60 + k), mpox / f"p{k}.jpg")
    save(variant(photo(60), "quarter_turn", 0), herpes / "p0_turned.jpg")
    save(variant(photo(61), "bar", 0), mpox / "p1_bar.jpg")
    smooth = closeup(8, texture=0)
    save(smooth, mpox / "smooth.jpg")
    save(smooth.crop((smooth.width // 10, smooth.height // 10, smooth.width, smooth.height)), mpox / "smooth_crop.jpg")
    root = base / "ws"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    _cli(
        root, "ingest", str(base / "Jane_Doe_clinic"), "--source", "clinic-x", "--label-from-folders", "--workers", "1"
    )
    _cli(root, "dedupe", "--min-side", "64", "--workers", "1", "--no-review")
    return root


@pytest.fixture()
def ws_root(deduped, tmp_path) -> Path:
    """A copy of the deduped workspace each test may decide in."""
    return copied(deduped, tmp_path)


def _decisions(root: Path) -> list[dict]:
    return json.loads(_cli(root, "dedupe", "decisions", "--json").stdout)


def _backdate(root: Path, when: datetime) -> None:
    """Make every decision so far look made at `when`, so the next one's time is told from it."""
    ws = Workspace.open(root)
    with ws.session() as s:
        for o in s.exec(select(DedupeOverride)).all():
            o.created_at = when


def test_a_reversed_decision_has_its_own_time_and_says_what_it_replaced(ws_root):
    ids = ids_by_name(ws_root)
    a, b = ids["p1.jpg"], ids["p1_bar.jpg"]
    _cli(ws_root, "dedupe", "split", str(b), str(a), "--note", "different day")
    _backdate(ws_root, datetime(2020, 1, 2, 3, 4, 5))
    r = _cli(ws_root, "dedupe", "merge", str(a), str(b))
    assert "replaces the split of 2020-01-02 03:04:05 UTC" in " ".join(r.stdout.split())
    [d] = _decisions(ws_root)
    assert d["action"] == "merge"
    assert not d["at"].startswith("2020"), d  # the time the merge was made, not the split's
    review = json.loads(_cli(ws_root, "dedupe", "review", "--json").stdout)
    assert [o["at"] for o in review["decisions"]] == [d["at"]] and d["at"].endswith(" UTC")  # one way, with its zone
    assert d["note"] == 'replaces the split of 2020-01-02 03:04:05 UTC (noted "different day")'
    # the same decision again changes nothing: not its time, not its note
    _backdate(ws_root, datetime(2021, 6, 7, 8, 9, 10))
    r = _cli(ws_root, "dedupe", "merge", str(b), str(a), "--json")
    assert json.loads(r.stdout)["replaced"] == []
    assert _decisions(ws_root) == [d | {"at": "2021-06-07 08:09:10 UTC"}]  # as the table and review --json say it
    # and back again, with the steward's own words first
    r = _cli(ws_root, "dedupe", "split", str(a), str(b), "--note", "looked again", "--json")
    assert json.loads(r.stdout)["replaced"] == [
        {
            "image_a": min(a, b),
            "image_b": max(a, b),
            "action": "merge",
            "note": d["note"],
            "at": "2021-06-07 08:09:10 UTC",
        }
    ]
    [d] = _decisions(ws_root)
    assert d["action"] == "split" and d["note"].startswith(
        "looked again; replaces the merge of 2021-06-07 08:09:10 UTC"
    )
    text = " ".join(_cli(ws_root, "dedupe", "decisions").stdout.split())
    assert "replaces the merge of" in text


def test_a_long_note_keeps_what_it_replaced(ws_root):
    ids = ids_by_name(ws_root)
    a, b = ids["p1.jpg"], ids["p1_bar.jpg"]
    _cli(ws_root, "dedupe", "split", str(a), str(b))
    _backdate(ws_root, datetime(2020, 1, 2, 3, 4, 5))
    _cli(ws_root, "dedupe", "merge", str(a), str(b), "--note", "x" * 600)
    [d] = _decisions(ws_root)
    assert len(d["note"]) <= 500 and d["note"].endswith("; replaces the split of 2020-01-02 03:04:05 UTC")


def test_split_of_images_already_apart_is_refused_and_records_nothing(ws_root):
    ids = ids_by_name(ws_root)
    a, b = ids["p2.jpg"], ids["p3.jpg"]
    ws = Workspace.open(ws_root)
    with ws.session() as s:
        keys = cluster_map(s)
        linked = s.exec(
            select(DedupePair).where(or_(DedupePair.image_a.in_([a, b]), DedupePair.image_b.in_([a, b])))
        ).all()
    assert keys[a] != keys[b] and not linked
    before = json.loads(_cli(ws_root, "dedupe", "review", "--json").stdout)["counts"]
    r = _cli(ws_root, "dedupe", "split", str(a), str(b), ok=False)
    assert r.exit_code == 1
    line = " ".join(r.output.split())
    assert f"image {a} is already in a different cluster from image {b}" in line and "nothing to split" in line
    assert "split off" not in line and _decisions(ws_root) == []
    # among others that are in its cluster, the one already apart is named and left out
    c = ids["p1_bar.jpg"]
    r = _cli(ws_root, "dedupe", "split", str(ids["p1.jpg"]), str(c), str(a))
    line = " ".join(r.stdout.split())
    assert f"image {ids['p1.jpg']} split from {c} —" in line
    assert f"already in another cluster, no pair between them: {a} (nothing recorded for them)" in line
    assert [(d["image_a"], d["image_b"]) for d in _decisions(ws_root)] == [tuple(sorted((ids["p1.jpg"], c)))]
    assert (
        json.loads(_cli(ws_root, "dedupe", "review", "--json").stdout)["counts"]["clusters"] == before["clusters"] - 1
    )


def test_split_of_a_pair_to_review_is_the_stewards_decision(ws_root):
    """The sheet prints `curate dedupe split A B` for a pair to review, whose pictures are in two clusters:
    that split is recorded, and takes the pair off the list."""
    review = json.loads(_cli(ws_root, "dedupe", "review", "--json").stdout)
    [pair] = review["to_review"]
    args = pair["split"].split()[1:]  # the printed command, as typed
    r = _cli(ws_root, *args)
    assert "nothing to split" not in r.stdout and "already in another cluster" not in r.stdout
    [d] = _decisions(ws_root)
    assert (d["image_a"], d["image_b"], d["action"]) == (pair["image_a"], pair["image_b"], "split")
    assert json.loads(_cli(ws_root, "dedupe", "review", "--json").stdout)["to_review"] == []


def test_review_json_lists_what_the_sheet_lists_in_its_order(ws_root):
    ids = ids_by_name(ws_root)
    data = json.loads(_cli(ws_root, "dedupe", "review", "--json").stdout)
    sheet = Path(data["review_sheet"]).read_text()
    smooth = sorted((ids["smooth.jpg"], ids["smooth_crop.jpg"]))
    [pair] = data["to_review"]
    assert [pair["image_a"], pair["image_b"]] == smooth and pair["kind"] == "review"
    assert pair["reason"] and pair["reason"] in sheet
    assert pair["merge"] == f"curate dedupe merge {smooth[0]} {smooth[1]} -w {ws_root}"
    assert pair["split"] == f"curate dedupe split {smooth[0]} {smooth[1]} -w {ws_root}"
    assert [i["image"] for i in pair["images"]] == smooth
    assert all(i["prior_labels"] == ["mpox"] and i["sources"] == ["clinic-x"] for i in pair["images"])
    [mixed] = data["mixed_clusters"]
    turned = {ids["p0.jpg"]: ["mpox"], ids["p0_turned.jpg"]: ["genital_herpes"]}
    assert {m["image"]: m["prior_labels"] for m in mixed["members"]} == turned
    assert all(m["sources"] == ["clinic-x"] for m in mixed["members"])
    [rep] = [m for m in mixed["members"] if m["representative"]]
    [other] = [m for m in mixed["members"] if not m["representative"]]
    assert other["split"] == f"curate dedupe split {other['image']} -w {ws_root}"
    [plain] = data["clusters"]
    assert {m["image"] for m in plain["members"]} == {ids["p1.jpg"], ids["p1_bar.jpg"]}
    assert data["counts"] == {
        "to_review": 1,
        "to_decide": 1,
        "stamp_pairs": 0,
        "object_pairs": 0,
        "mixed_clusters": 1,
        "clusters": 2,
        "duplicates": 2,
        "low_res": 0,
    }
    # the sheet's order: the pair's commands, then the mixed cluster, then the plain one, each command printed
    at = [
        sheet.index(pair["merge"]),
        sheet.index(f"<h2 id='{mixed['cluster']}'>"),
        sheet.index(other["split"]),
        sheet.index(f"<h2 id='{plain['cluster']}'>"),
    ]
    assert at == sorted(at)
    # only what the sheet shows: no file or folder name of an original (the workspace: on each command, `-w`)
    text = json.dumps(data).replace(data["review_sheet"], "").replace(f" -w {ws_root}", "")
    for secret in ("Jane_Doe", "p0_turned", "smooth_crop", ".jpg", str(ws_root.parent)):
        assert secret not in text
    assert not re.search(r"locator|path", text.replace("review_sheet", ""))


def test_review_json_lists_the_decisions_with_their_time(ws_root):
    ids = ids_by_name(ws_root)
    _cli(ws_root, "dedupe", "split", str(ids["p0_turned.jpg"]), "--note", "different patients")
    data = json.loads(_cli(ws_root, "dedupe", "review", "--json").stdout)
    [d] = data["decisions"]
    assert d["action"] == "split" and d["note"] == "different patients" and d["at"].endswith(" UTC")
    assert data["mixed_clusters"] == [] and "different patients" in Path(data["review_sheet"]).read_text()


def test_a_sheet_shows_the_first_of_each_list_and_says_how_many_more_the_json_lists(ws_root, monkeypatch):
    """A browser opens the sheet: a big catalogue's would be tens of thousands of thumbnails. It shows the first
    pairs and clusters of each kind, says how many more there are, and `--json` lists every one."""
    from curate.dedupe import review

    shown = (review.SHEET_PAIRS, review.SHEET_CLUSTERS)
    monkeypatch.setattr(review, "SHEET_PAIRS", 0)
    monkeypatch.setattr(review, "SHEET_CLUSTERS", 0)
    data = json.loads(_cli(ws_root, "dedupe", "review", "--json").stdout)
    sheet = Path(data["review_sheet"]).read_text()
    assert len(data["to_review"]) == len(data["mixed_clusters"]) == len(data["clusters"]) == 1
    assert "<figure" not in sheet and "<h2 id='img" not in sheet and data["to_review"][0]["merge"] not in sheet
    assert (
        "1 more pair to review, mixed prior labels first, the least alike last, not shown here; each decision takes"
        in sheet
    )
    assert "1 more cluster with mixed prior labels, the smallest last, not shown here" in sheet
    assert "1 more other cluster, the smallest last, not shown here" in sheet
    assert sheet.count("<code>curate dedupe review --json</code> lists every one") == 3
    said = " ".join(_cli(ws_root, "dedupe", "review").stdout.split())  # the terminal says so too
    assert "(1 pair to review in 1 group, one decision each; the sheet shows the first 0 of 1 pairs to review, " in said

    monkeypatch.setattr(review, "SHEET_PAIRS", 1)
    monkeypatch.setattr(review, "SHEET_CLUSTERS", 1)
    full = Path(json.loads(_cli(ws_root, "dedupe", "review", "--json").stdout)["review_sheet"]).read_text()
    assert "not shown here" not in full and full.count("<figure") == 6  # a pair, two clusters of two
    assert "the sheet shows the first" not in _cli(ws_root, "dedupe", "review").stdout
    help_text = " ".join(_cli(ws_root, "dedupe", "review", "--help").stdout.replace("│", " ").split())
    assert (
        "shows whole groups of pairs until {} pairs, and the first {} groups and clusters".format(*shown) in help_text
    )


def test_the_sheets_not_the_same_photo_is_one_decision(tmp_path):
    """Before: the sheet printed `curate dedupe split M REP` for a member of a larger cluster; M left, but
    stayed alike to the cluster's other copies, and came back as a new group asking another decision."""
    base = tmp_path / "in"
    save(photo(70), base / "p.jpg")
    for kind in ("resize", "reencode", "bar", "tone"):
        save(variant(photo(70), kind, 0), base / f"p_{kind}.jpg")
    root = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    _cli(root, "ingest", str(base), "--source", "clinic-x", "--workers", "1")
    _cli(root, "dedupe", "--min-side", "64", "--workers", "1", "--no-review")
    [cluster] = json.loads(_cli(root, "dedupe", "review", "--json").stdout)["clusters"]
    assert cluster["size"] == 5
    member = next(m for m in cluster["members"] if not m["representative"])
    _cli(root, *member["split"].split()[1:])  # the printed command, as typed
    after = json.loads(_cli(root, "dedupe", "review", "--json").stdout)
    assert after["to_review"] == [] and after["counts"]["to_decide"] == 0
    [rest] = after["clusters"]
    assert rest["size"] == 4 and member["image"] not in {m["image"] for m in rest["members"]}


def test_a_merge_says_which_cluster_mates_it_left_out_and_how_to_take_them(tmp_path):
    """Before: merging the representatives of two clusters of copies pulled one photo away from its own copies,
    took the other's copies along, and said nothing about the copies left behind."""
    base = tmp_path / "in"
    for n in (70, 71):
        save(photo(n), base / f"p{n}.jpg")
        for kind in ("resize", "bar"):
            save(variant(photo(n), kind, 0), base / f"p{n}_{kind}.jpg")
    root = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    _cli(root, "ingest", str(base), "--source", "clinic-x", "--workers", "1")
    _cli(root, "dedupe", "--min-side", "64", "--workers", "1", "--no-review")
    first, second = json.loads(_cli(root, "dedupe", "review", "--json").stdout)["clusters"]
    reps = [next(m["image"] for m in c["members"] if m["representative"]) for c in (first, second)]
    r = _cli(root, "dedupe", "merge", *map(str, reps))
    said = " ".join(r.output.split())
    left = json.loads(_cli(root, "dedupe", "decisions", "--json").stdout)  # the merge is recorded
    assert [(d["image_a"], d["image_b"], d["action"]) for d in left] == [(*sorted(reps), "merge")]
    command = re.search(r"name them too: (curate dedupe merge [\d ]+)", said)
    assert command and "left out of the merged cluster:" in said
    _cli(root, *command[1].split()[1:])  # the printed command, as typed
    [whole] = json.loads(_cli(root, "dedupe", "review", "--json").stdout)["clusters"]
    assert whole["size"] == 6


def test_a_merge_that_an_earlier_split_keeps_apart_does_not_say_merged(ws_root):
    """A probe: after `split a b` and `merge a c`, `merge b c` printed "images b and c merged", exit 0, though c
    stayed in a's cluster, apart from b; only a later line said so."""
    ids = ids_by_name(ws_root)
    a, b, c = ids["p1.jpg"], ids["p1_bar.jpg"], ids["p2.jpg"]
    _cli(ws_root, "dedupe", "split", str(a), str(b))
    _cli(ws_root, "dedupe", "merge", str(a), str(c))
    said = " ".join(_cli(ws_root, "dedupe", "merge", str(b), str(c)).stdout.split())
    assert said.startswith(f"merge of images {b} and {c} recorded, but not in image {b}'s cluster: {c} ("), said
    assert "merged —" not in said
    together = json.loads(_cli(ws_root, "dedupe", "merge", str(b), str(c), "--json").stdout)["groups"]
    assert any({a, c} <= set(g["members"]) and b not in g["members"] for g in together), together


def test_label_candidates_json_lists_what_the_lines_list(deduped):
    """`curate label candidates` was the one command without --json: a script split its lines on spaces. Now
    --json gives each image's id and file, in the order push sends them: one photo per cluster."""
    lines = _cli(deduped, "label", "candidates").stdout.split("\n")[:-1]
    got = json.loads(_cli(deduped, "label", "candidates", "--json").stdout)
    assert [c["path"] for c in got] == lines
    by_name = ids_by_name(deduped)
    with Workspace.open(deduped).session() as s:
        clusters = cluster_map(s)
    listed = [c["image_id"] for c in got]
    assert len(set(listed)) == len(listed) and all(Path(c["path"]).is_file() for c in got)
    assert not {by_name["p1.jpg"], by_name["p1_bar.jpg"]} <= set(listed)  # a copy is not sent beside its photo
    assert len({clusters[i] for i in listed}) == len(listed)
    assert json.loads(_cli(deduped, "label", "candidates", "--json", "--limit", "2").stdout) == got[:2]
