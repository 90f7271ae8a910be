"""`curate dedupe …` through typer's CliRunner on a real workspace."""

from __future__ import annotations

import json

import pytest
from dedupe_corpus import photo, save, sibling, variant
from sqlmodel import select
from typer.testing import CliRunner

from curate.cli import app
from curate.dedupe import cluster_map
from curate.workspace import Workspace
from db.models import CommandRun, DedupeOverride, Provenance

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
        (["--backend", "annoy"], "unknown search back-end 'annoy'"),
    ],
)
def test_bad_settings_are_one_red_line(ws_path, args, message):
    r = runner.invoke(app, ["dedupe", "-w", str(ws_path), *args])
    assert r.exit_code == 1
    assert message in " ".join(r.output.split())


@pytest.mark.parametrize(
    "args,message",
    [
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
    for cmd in ([], ["split"], ["merge"], ["review"], ["decisions"]):
        r = runner.invoke(app, ["dedupe", *cmd, "--help"])
        assert r.exit_code == 0 and "Example:" in r.output
