"""`curate pipeline`: the README's first command, on embedded defaults in the current folder."""

import json

import images as I
from typer.testing import CliRunner

from curate.cli import app
from curate.workspace import Workspace

runner = CliRunner()


def status(root):
    r = runner.invoke(app, ["status", "-w", str(root), "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_demo_pipeline_runs_and_reruns_without_duplicates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["pipeline", "--demo"])
    assert r.exit_code == 0, r.output
    assert "synthetic demo photos" in r.output and "curate label push" in r.output
    first = status(tmp_path)
    # 4 classes x 6 photos, plus a resized and a mirrored copy of one photo per class
    assert first["images"] == 32
    assert first["stages"]["dedupe_clusters"] == 24 and first["stages"]["to_label"] == 24
    assert (tmp_path / "reports" / "dedupe-review.html").is_file()

    r = runner.invoke(app, ["pipeline", "--demo"])
    assert r.exit_code == 0, r.output
    assert "synthetic demo photos" not in r.output
    assert status(tmp_path)["images"] == 32


def test_source_toml_configures_each_incoming_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kaggle = tmp_path / "incoming" / "kaggle-msid"
    (kaggle / "Monkeypox").mkdir(parents=True)
    for i in range(3):
        (kaggle / "Monkeypox" / f"M{i}.jpg").write_bytes(I.jpeg(400 + i))
    (kaggle / "map.csv").write_text("Monkeypox,mpox\n")
    (kaggle / "source.toml").write_text('kind = "public"\nlicence = "CC-BY-4.0"\nlabel_map = "map.csv"\n')
    r = runner.invoke(app, ["pipeline"])
    assert r.exit_code == 0, r.output
    st = status(tmp_path)
    assert st["by_source"] == [
        {"source": "kaggle-msid", "kind": "public", "images": 3, "arrivals": 3, "rejected_files": 0}
    ]
    assert st["by_prior_label"] == {"mpox": 3}

    (kaggle / "source.toml").write_text('kind = "public"\nlicense = "typo"\n')
    r = runner.invoke(app, ["pipeline"])
    assert r.exit_code == 1
    assert "source.toml: unknown key(s) license" in r.output


def test_missing_incoming_folder_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["pipeline"])
    assert r.exit_code == 1 and "incoming/<source-name>/" in r.output
    assert Workspace.open(tmp_path).root == tmp_path
