"""`curate dedupe …` through typer's CliRunner on a real workspace."""

from __future__ import annotations

import json

import pytest
from dedupe_corpus import photo, save, sibling, variant
from sqlmodel import select
from typer.testing import CliRunner

from curate.cli import app
from curate.dedupe import cluster_map, labelable_image_ids
from curate.workspace import Workspace
from db.models import CommandRun, DedupeMember, DedupeOverride, Provenance

runner = CliRunner()


@pytest.fixture()
def ws_path(tmp_path):
    folder = tmp_path / "photos"
    for k in range(4):
        save(photo(40 + k), folder / f"p{k}.jpg")
    save(variant(photo(40), "quarter_turn", 0), folder / "p0_turned.jpg")
    save(variant(photo(41), "bar", 0), folder / "p1_bar.jpg")
    save(sibling(42, 0), folder / "p2_sibling.jpg")
    root = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    r = runner.invoke(app, ["ingest", str(folder), "--source", "clinic-x", "--workers", "1", "-w", str(root)])
    assert r.exit_code == 0, r.output
    return root


def _ids(root):
    ws = Workspace.open(root)
    with ws.session() as s:
        return ws, {loc: i for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all()}


def test_dedupe_json_then_split_merge_survive_rerun(ws_path):
    r = runner.invoke(app, ["dedupe", "-w", str(ws_path), "--min-side", "64", "--workers", "1", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["images"] == 7 and data["clusters"] == 2 and data["duplicates"] == 2
    assert data["review_sheet"].endswith("reports/dedupe-review.html")
    ws, ids = _ids(ws_path)
    with ws.session() as s:
        keys = cluster_map(s)
        assert s.exec(select(CommandRun).where(CommandRun.command == "dedupe")).one().status == "ok"
    assert keys[ids["p0.jpg"]] == keys[ids["p0_turned.jpg"]]
    assert keys[ids["p1.jpg"]] == keys[ids["p1_bar.jpg"]]
    assert keys[ids["p2.jpg"]] != keys[ids["p2_sibling.jpg"]]

    r = runner.invoke(app, ["dedupe", "split", str(ids["p1_bar.jpg"]), "--note", "not the same", "-w", str(ws_path)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app, ["dedupe", "merge", str(ids["p2.jpg"]), str(ids["p2_sibling.jpg"]), "-w", str(ws_path), "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["clusters"] == 2
    r = runner.invoke(app, ["dedupe", "-w", str(ws_path), "--min-side", "64", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "dedupe summary" in r.stdout and "review sheet" in r.stdout
    with ws.session() as s:
        keys = cluster_map(s)
        assert len(s.exec(select(DedupeOverride)).all()) == 2
    assert keys[ids["p1.jpg"]] != keys[ids["p1_bar.jpg"]]
    assert keys[ids["p2.jpg"]] == keys[ids["p2_sibling.jpg"]]
    r = runner.invoke(app, ["dedupe", "decisions", "-w", str(ws_path), "--json"])
    assert [d["action"] for d in json.loads(r.stdout)] == ["split", "merge"]
    r = runner.invoke(app, ["dedupe", "review", "-w", str(ws_path)])
    assert r.exit_code == 0 and "dedupe-review.html" in "".join(r.stdout.split())
    html = (ws_path / "reports" / "dedupe-review.html").read_text()
    assert "not the same" in html and "p1_bar" not in html


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--backend", "annoy"],
            "'--backend': Value error, 'annoy' is not one of 'auto', 'brute-force', 'multi-index'",
        ),
        (["--method", "dhash"], "'--method': Value error, 'dhash' is not one of 'phash', 'region-phash'"),
        (["--radius", "40"], "'--radius': Input should be less than or equal to 32"),
        (["--neighbours", "0"], "'--neighbours': Input should be greater than or equal to 1"),
        (["--similarity", "1.5"], "'--similarity': Input should be less than or equal to 1"),
        (["--min-side", "0"], "'--min-side': Input should be greater than or equal to 1"),
    ],
)
def test_out_of_range_settings_are_usage_errors(ws_path, args, message):
    """Bounds are the CLI's types (listed in --help): exit 2, before the catalogue is opened."""
    r = runner.invoke(app, ["dedupe", "-w", str(ws_path), *args])
    assert r.exit_code == 2
    assert message in " ".join(r.output.replace("│", "").split())


def test_split_unknown_image_fails_cleanly(ws_path):
    r = runner.invoke(app, ["dedupe", "merge", "1", "999", "-w", str(ws_path)])
    assert r.exit_code == 1 and "no image with id 999" in r.output


def test_help_has_examples():
    for cmd in ([], ["split"], ["merge"], ["keep"], ["review"], ["decisions"]):
        r = runner.invoke(app, ["dedupe", *cmd, "--help"])
        assert r.exit_code == 0 and "Example:" in r.output


def _rep(ws, image: int) -> int:
    """The representative of the cluster holding `image`."""
    with ws.session() as s:
        key = s.get(DedupeMember, image).cluster_key
        return s.exec(
            select(DedupeMember.image_id).where(DedupeMember.cluster_key == key, DedupeMember.representative)
        ).one()


def test_a_second_keep_in_a_cluster_takes_the_first_back(ws_path):
    """Before: `keep A` then `keep B` left both keeps standing, so `keep B --undo` handed the cluster to A, not to
    the rule as --undo says; `dedupe decisions` listed both."""
    assert runner.invoke(app, ["dedupe", "-w", str(ws_path), "--min-side", "64", "--workers", "1"]).exit_code == 0
    ws, ids = _ids(ws_path)
    photo, turned = ids["p0.jpg"], ids["p0_turned.jpg"]
    ruled = _rep(ws, photo)
    other = turned if ruled == photo else photo
    assert runner.invoke(app, ["dedupe", "keep", str(other), "-w", str(ws_path)]).exit_code == 0
    r = runner.invoke(app, ["dedupe", "keep", str(ruled), "-w", str(ws_path)])
    assert r.exit_code == 0 and f"image {other}: its keep of" in r.output and "is taken back" in r.output
    keeps = json.loads(runner.invoke(app, ["dedupe", "decisions", "-w", str(ws_path), "--json"]).stdout)
    assert [(d["image_a"], d["action"]) for d in keeps] == [(ruled, "keep")]
    r = runner.invoke(app, ["dedupe", "keep", str(ruled), "--undo", "-w", str(ws_path), "--json"])
    assert json.loads(r.stdout)["now"] == ruled == _rep(ws, photo)  # the rule's pick, not the first keep


def test_keep_makes_the_stewards_pick_the_one_labelled_on_every_run_until_undone(ws_path):
    """`curate dedupe keep ID`: the rule picked one copy, the steward another; that one is labelled and exported,
    after a re-run too; the sheet offers the command for every other member and marks the pick; `--undo` gives
    the choice back to the rule. Wrong ids and an image never deduped are one line each."""
    r = runner.invoke(app, ["dedupe", "keep", "1", "-w", str(ws_path)])
    assert r.exit_code == 1 and "image 1 is not in a cluster yet (run `curate dedupe` first)" in " ".join(
        r.output.split()
    )
    assert runner.invoke(app, ["dedupe", "-w", str(ws_path), "--min-side", "64", "--workers", "1"]).exit_code == 0
    ws, ids = _ids(ws_path)
    photo, turned = ids["p0.jpg"], ids["p0_turned.jpg"]
    ruled = _rep(ws, photo)
    other = turned if ruled == photo else photo
    r = runner.invoke(app, ["dedupe", "keep", str(other), "--note", "the clinic's original", "-w", str(ws_path)])
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())
    assert f"image {other} represents cluster" in said and f"in place of image {ruled}" in said
    assert _rep(ws, photo) == other
    assert runner.invoke(app, ["dedupe", "-w", str(ws_path), "--min-side", "64", "--workers", "1"]).exit_code == 0
    assert _rep(ws, photo) == other  # every later run keeps it
    with ws.session() as s:
        assert other in labelable_image_ids(s) and ruled not in labelable_image_ids(s)
    items = json.loads(runner.invoke(app, ["dedupe", "review", "-w", str(ws_path), "--json"]).stdout)
    (cluster,) = [c for c in items["clusters"] if photo in [m["image"] for m in c["members"]]]
    by_id = {m["image"]: m for m in cluster["members"]}
    assert by_id[other]["kept"] is True and by_id[ruled]["keep"] == f"curate dedupe keep {ruled} -w {ws.root}"
    assert {"image_a": other, "image_b": other, "action": "keep"}.items() <= items["decisions"][0].items()
    html = (ws_path / "reports" / "dedupe-review.html").read_text()
    assert "representative (kept)" in html and f"curate dedupe keep {ruled}" in html
    r = runner.invoke(app, ["dedupe", "decisions", "-w", str(ws_path)])
    assert "keep" in r.output and "the clinic's original" in " ".join(r.output.split())
    r = runner.invoke(app, ["dedupe", "keep", str(other), "--undo", "-w", str(ws_path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["now"] == ruled == _rep(ws, photo)
    r = runner.invoke(app, ["dedupe", "keep", str(other), "--undo", "-w", str(ws_path)])
    assert r.exit_code == 1 and f"image {other} was not kept; nothing to take back" in " ".join(r.output.split())
    r = runner.invoke(app, ["dedupe", "keep", "999", "-w", str(ws_path)])
    assert r.exit_code == 1 and "no image with id 999" in r.output
    # a picture under the minimum side would never be labelled: refused, and the sheet does not offer it
    assert runner.invoke(app, ["dedupe", "-w", str(ws_path), "--min-side", "5000", "--workers", "1"]).exit_code == 0
    r = runner.invoke(app, ["dedupe", "keep", str(other), "-w", str(ws_path)])
    assert r.exit_code == 1 and "below the minimum side: it would never be labelled" in " ".join(r.output.split())
    items = json.loads(runner.invoke(app, ["dedupe", "review", "-w", str(ws_path), "--json"]).stdout)
    assert all(m.get("keep") is None for c in items["clusters"] for m in c["members"])
