"""Two shots of one scene (scikit-image's stereo pair: two real photos of one motorcycle, taken side by side) share
the scene's keypoints in one geometry, so verification merges them as one photo, as README.md says; the steward's
split keeps both to label (CliRunner, real workspace)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from PIL import Image
from skimage import data
from sqlmodel import select
from typer.testing import CliRunner
from workspaces import ids_by_name

from curate.cli import app
from curate.workspace import Workspace
from db.models import DedupePair

runner = CliRunner()


def _cli(root: Path, *args: str) -> str:
    r = runner.invoke(app, [*args, "-w", str(root)])
    assert r.exit_code == 0, r.output
    return r.stdout


def test_two_shots_of_one_scene_are_merged_and_a_split_keeps_both(tmp_path):
    left, right, _ = data.stereo_motorcycle()
    shots = tmp_path / "shots"
    shots.mkdir()
    for name, shot in (("left.jpg", left), ("right.jpg", right)):
        Image.fromarray(shot).save(shots / name, quality=92)
    root = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    _cli(root, "ingest", str(shots), "--source", "clinic-x", "--workers", "1")
    run = json.loads(_cli(root, "dedupe", "--workers", "1", "--json"))
    assert run["clusters"] == 1 and run["labelable"] == 1 and run["to_review"] == 0
    ids = ids_by_name(root)
    with Workspace.open(root).session() as s:
        [pair] = s.exec(select(DedupePair)).all()
    agreeing = int(re.match(r"(\d+) matching keypoints", pair.reason).group(1))
    assert pair.kind == "hash" and agreeing >= 100  # README.md: 115, on many cells, not a few
    said = " ".join(_cli(root, "dedupe", "split", str(ids["right.jpg"]), str(ids["left.jpg"])).split())
    assert "now 0 clusters, 2 labelable" in said
