"""`curate dedupe score TRUTH.csv`: the current clusters against a steward's own answer, on a real workspace."""

from __future__ import annotations

import json

import pytest
from dedupe_corpus import save
from photo_corpus import leak, originals
from sqlmodel import select
from typer.testing import CliRunner

from curate.cli import app
from curate.dedupe.evaluate import Truth, score
from curate.workspace import Workspace
from db.models import Provenance

runner = CliRunner()
PHOTOS = originals(5)
COPIES = ((0, "watermark_crop"), (1, "mirror_crop"), (2, "frame_rescale"))


def test_every_pair_inside_a_cluster_counts_and_each_kind_of_copy_has_its_recall():
    """Hand-counted: one cluster joins photo a, its crop and photo b (two false pairs of three); b's mirror is
    missed (alone), and it is listed on the review sheet; c is alone and right."""
    truth = Truth(
        {"a": "A", "a_crop": "A", "b": "B", "b_mirror": "B", "c": "C"},
        {"a": "", "a_crop": "crop", "b": "", "b_mirror": "mirror", "c": ""},
    )
    result = score(truth, {"a": 1, "a_crop": 1, "b": 1, "b_mirror": 2, "c": 3}, {frozenset(("b", "b_mirror"))})
    assert (result.cluster_pairs, result.false_pairs, result.true_pairs, result.found_pairs) == (3, 2, 2, 1)
    assert result.precision == pytest.approx(1 / 3) and result.recall == 0.5
    assert result.by_kind == {"crop": (1, 1), "mirror": (0, 1)}
    assert set(result.false) == {("a", "b"), ("a_crop", "b")} and result.missed == [("b", "b_mirror")]
    assert result.missed_to_review == 1


@pytest.fixture()
def workspace(tmp_path):
    folder = tmp_path / "photos"
    rows = [("file", "group", "kind")]
    for k, p in enumerate(PHOTOS):
        save(p, folder / f"photo_{k}.jpg")
        rows.append((f"photo_{k}.jpg", f"g{k}", ""))
    for k, kind in COPIES:
        save(leak(PHOTOS[k], kind, k + 1), folder / "copies" / f"copy_{k}.jpg", quality=80)
        rows.append((f"copies/copy_{k}.jpg", f"g{k}", kind))
    (folder / "same").mkdir()
    (folder / "same" / "again.jpg").write_bytes((folder / "photo_0.jpg").read_bytes())  # one image, two arrivals
    rows.append(("same/again.jpg", "g0", "reposted"))
    root = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    assert runner.invoke(app, ["ingest", str(folder), "-s", "atlas", "--workers", "1", "-w", str(root)]).exit_code == 0
    truth = tmp_path / "truth.csv"
    truth.write_text("\n".join(",".join(r) for r in rows) + "\nnot_ingested.jpg,g9,\n")
    return root, truth


def _score(root, truth, *more):
    r = runner.invoke(app, ["dedupe", "score", str(truth), "-w", str(root), *more])
    return r, (json.loads(r.stdout) if "--json" in more and r.exit_code == 0 else None)


def test_the_clusters_are_scored_and_a_wrong_merge_shows_as_false_pairs(workspace):
    root, truth = workspace
    refused, _ = _score(root, truth)
    assert refused.exit_code == 1
    assert "came in after the last dedupe run: run `curate dedupe` first" in refused.stderr  # nothing grouped yet
    assert runner.invoke(app, ["dedupe", "--workers", "1", "-w", str(root)]).exit_code == 0
    r, data = _score(root, truth, "--json")
    assert r.exit_code == 0, r.output
    assert (data["images"], data["precision"], data["recall"], data["false_pairs"]) == (8, 1.0, 1.0, 0)
    assert data["by_kind"] == {kind: {"found": 1, "copies": 1} for _, kind in COPIES}
    assert data["unknown"] == [11]  # the truth's line naming no image: left out of the score, and said

    ws = Workspace.open(root)
    with ws.session() as s:
        ids = {loc: i for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all()}
    merged = runner.invoke(app, ["dedupe", "merge", str(ids["photo_3.jpg"]), str(ids["photo_4.jpg"]), "-w", str(root)])
    assert merged.exit_code == 0, merged.output
    r, data = _score(root, truth, "--json")
    assert (data["false_pairs"], data["cluster_pairs"], data["precision"]) == (1, 4, 0.75)
    assert [sorted(p) for p in data["false"]] == [sorted([ids["photo_3.jpg"], ids["photo_4.jpg"]])]  # as the sheet
    table, _ = _score(root, truth)
    assert "│ false pairs" in table.stdout and "1 of 4 inside clusters" in table.stdout
    assert "recall: mirror_crop" in table.stdout and "1 (line 11)" in table.stdout
    assert "photo_" not in table.stdout + json.dumps(data)  # a file name may hold a patient's: never shown


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("name,label\na.jpg,x\n", "needs a header with the columns file and group"),
        ("file, group\n", "lists no file"),
        ("file,group\nphoto_0.jpg,g0\nphoto_0.jpg,g1\n", "line 3: names the file of line 2 again"),
        ("file,group\n\nphoto_0.jpg,\n", "line 3: needs a file and a group"),  # the blank line 2 counts
        ("file,group\nelsewhere.jpg,g0\n", "none of the 1 files of"),
        ("file,group\nelsewhere/photo_0.jpg,g0\n", "none of the 1 files of"),  # a path is not a name alone
        ("file,group\nphoto_0.jpg,g0\nsame/again.jpg,g1\n", "lines 2 and 3 name one image (the same bytes) in two"),
        (b"file,group\n\xff\xfe,g\n", "not UTF-8 text"),
    ],
)
def test_a_truth_file_it_cannot_use_is_one_line_naming_it(workspace, text, said):
    root, truth = workspace
    truth.write_bytes(text if isinstance(text, bytes) else text.encode())
    r, _ = _score(root, truth)
    assert r.exit_code == 1 and said in r.stderr and str(truth) in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_truth_file_that_is_not_there_or_a_folder_is_one_line(workspace, tmp_path):
    root, _ = workspace
    r, _ = _score(root, tmp_path / "missing.csv")
    assert r.exit_code == 1 and "cannot read" in r.stderr and "missing.csv" in r.stderr, r.output
    r, _ = _score(root, tmp_path)
    assert r.exit_code == 1 and r.stderr.strip() == f"error: cannot read {tmp_path}: it is a folder, not a file"
