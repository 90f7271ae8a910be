"""`curate pipeline`: the README's first command, on embedded defaults in the current folder."""

import json
import os

import images as I
import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.privacy import PRIVATE_UMASK
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


def test_pipeline_json_is_one_object_with_each_stage(tmp_path, monkeypatch, request):
    """`--json`: stdout is one object (a script's cron job reads it), with each stage's own `--json` under its name,
    the warnings that the tables would have shown, and the next commands. Before: the option did not exist."""
    monkeypatch.chdir(tmp_path)
    previous = os.umask(PRIVATE_UMASK)  # as `curate`'s main() sets it (CliRunner skips main): under 022 the two
    request.addfinalizer(lambda: os.umask(previous))  # statuses counted open cache files, which came and went
    r = runner.invoke(app, ["pipeline", "--demo", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["demo_photos"] == 32 and [i["source"] for i in data["ingest"]] == ["demo-clinic"]
    assert data["ingest"][0]["added"] == 32 and data["dedupe"]["images"] == 32 and data["warnings"] == []
    assert data["status"]["stages"]["dedupe_clusters"] == 24 and data["status"] == status(tmp_path)
    assert data["next"][2] == "curate label push --raters A,B"
    (tmp_path / "incoming" / "loose.jpg").write_bytes(I.jpeg(7))
    r = runner.invoke(app, ["pipeline", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["demo_photos"] == 0 and data["ingest"][0]["added"] == 0 and data["ingest"][0]["already_known"] == 32
    assert len(data["warnings"]) == 1 and data["warnings"][0].startswith("1 file(s) directly in incoming/ skipped")
    assert data["warnings"][0].endswith("into incoming/<source-name>/: loose.jpg")
    assert "warning:" not in r.output and "──" not in r.output  # no tables, no headings, no warning lines


def test_a_source_folder_named_like_markup_is_printed_as_its_name(tmp_path, monkeypatch):
    """Before: a folder `[link=https:evil.example]clinic[conceal]` printed its heading as a live hyperlink to
    evil.example on a terminal, the rest hidden, and as "── ingest clinic" anywhere: the source misnamed."""
    monkeypatch.chdir(tmp_path)
    name = "[link=https:evil.example]clinic[conceal]"
    (tmp_path / "incoming" / name).mkdir(parents=True)
    (tmp_path / "incoming" / name / "a.jpg").write_bytes(I.jpeg(3))
    r = runner.invoke(app, ["pipeline"])
    assert r.exit_code == 0, r.output
    assert f"── ingest {name} " in r.output


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


@pytest.mark.parametrize(
    "toml, message",
    [
        (
            'kind = "nonsense"\n',
            "incoming/bad src/source.toml: kind must be one of clinic, public, web, not 'nonsense'",
        ),
        ("licence = 5\n", "incoming/bad src/source.toml: licence must be text in quotes, not 5"),
        ('label_from_folders = "yes"\n', "incoming/bad src/source.toml: label_from_folders must be true or false"),
        ('case_id_pattern = "P\\\\d+"\n', "incoming/bad src/source.toml: case_id_pattern needs a capture group"),
        ('licence = "=cmd|x"\n', "incoming/bad src/source.toml: licence must not begin with '='"),
    ],
)
def test_a_bad_source_toml_names_its_file_and_field_before_anything_is_ingested(tmp_path, monkeypatch, toml, message):
    monkeypatch.chdir(tmp_path)
    for name in ("a-first", "bad src"):
        (tmp_path / "incoming" / name).mkdir(parents=True)
        (tmp_path / "incoming" / name / "p.jpg").write_bytes(I.jpeg(len(name)))
    (tmp_path / "incoming" / "bad src" / "source.toml").write_text(toml)
    r = runner.invoke(app, ["pipeline"])
    assert r.exit_code == 1
    assert message in " ".join(r.output.split()) and r.output.strip().count("\n") == 0
    assert status(tmp_path)["images"] == 0  # not even the good source before it


def test_a_source_folder_named_like_a_formula_or_with_a_control_character_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("=HYPERLINK(1)", "esc\x1b[31m"):
        (tmp_path / "incoming" / name).mkdir(parents=True)
        (tmp_path / "incoming" / name / "p.jpg").write_bytes(I.jpeg(1))
        r = runner.invoke(app, ["pipeline"])
        assert r.exit_code == 1 and "the source name (this folder's name) must not" in r.output, r.output
        (tmp_path / "incoming" / name / "p.jpg").unlink()
        (tmp_path / "incoming" / name).rmdir()


def test_loose_files_in_incoming_are_named_and_settings_files_are_not_skipped_images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "incoming" / "kaggle"
    (src / "Monkeypox").mkdir(parents=True)
    (src / "Monkeypox" / "M0.jpg").write_bytes(I.jpeg(500))
    (src / "map.csv").write_text("Monkeypox,mpox\n")
    (src / "source.toml").write_text('kind = "public"\nlabel_map = "map.csv"\n')
    (tmp_path / "incoming" / "stray photo.jpg").write_bytes(I.jpeg(501))
    r = runner.invoke(app, ["pipeline"])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "warning: 1 file(s) directly in incoming/ skipped" in out and ": stray photo.jpg" in out
    assert "0 files skipped" in out and "not an image" not in out and "source.toml" not in out
    assert status(tmp_path)["images"] == 1


def test_a_kind_the_catalogue_contradicts_is_refused_before_any_source_is_ingested(tmp_path, monkeypatch):
    """Before: `a-first` was ingested, then `gamma`'s kind stopped the run ("already registered as 'clinic'"),
    naming neither file nor field, and dedupe never compared the new images."""
    monkeypatch.chdir(tmp_path)
    for name in ("a-first", "gamma"):
        (tmp_path / "incoming" / name).mkdir(parents=True)
        (tmp_path / "incoming" / name / "p.jpg").write_bytes(I.jpeg(len(name)))
    assert runner.invoke(app, ["pipeline"]).exit_code == 0
    (tmp_path / "incoming" / "a-first" / "q.jpg").write_bytes(I.jpeg(77))
    (tmp_path / "incoming" / "gamma" / "source.toml").write_text('kind = "web"\n')
    r = runner.invoke(app, ["pipeline"])
    said = " ".join(r.output.split())
    assert r.exit_code == 1 and "incoming/gamma/source.toml: kind 'web' contradicts source 'gamma'" in said
    assert status(tmp_path)["images"] == 2  # the new photo of a-first waits: nothing ingested


def test_hidden_folders_are_never_sources_and_an_empty_incoming_is_said(tmp_path, monkeypatch):
    """Before: incoming/.Trashes (a Mac's deleted photos) was ingested as a source, an empty incoming/ ran dedupe
    on nothing without a word, and --demo took a folder holding only .DS_Store as not empty."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "incoming" / ".Trashes" / "501").mkdir(parents=True)
    (tmp_path / "incoming" / ".Trashes" / "501" / "deleted.jpg").write_bytes(I.jpeg(3))
    for system in ("$RECYCLE.BIN", "@eaDir"):  # a NAS share as incoming/: its recycle bin, its thumbnails
        (tmp_path / "incoming" / system).mkdir()
        (tmp_path / "incoming" / system / "copy.jpg").write_bytes(I.jpeg(len(system)))
    r = runner.invoke(app, ["pipeline"])
    said = " ".join(r.output.split())
    assert r.exit_code == 0 and "3 hidden, trash or system folder(s) in incoming/ skipped" in said
    assert "warning: no source folders in incoming/" in said
    assert status(tmp_path)["images"] == 0
    # nothing to label: where photos go, not the labelling steps (before: `curate studio start` → … → export)
    assert "next: put each source's photos in incoming/<source-name>/" in said and "studio start" not in said
    (tmp_path / "incoming" / ".DS_Store").write_bytes(b"\0")
    r = runner.invoke(app, ["pipeline", "--demo"])
    assert r.exit_code == 0 and "synthetic demo photos" in r.output and status(tmp_path)["images"] > 0
    said = " ".join(r.output.split())
    assert "next: curate studio start" in said
    # before: export straight after adjudicate, which left every reviewed image "pending" (its answers never pulled)
    assert "curate label adjudicate --reviewer C → curate label pull (the reviewer's answers) → curate export" in said


def test_a_demo_into_the_workspaces_own_folder_writes_nothing(tmp_path, monkeypatch):
    """Before: `--demo --incoming exports` wrote 32 photos into exports/demo-clinic, then refused them."""
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["pipeline", "--demo", "--incoming", "exports"])
    assert r.exit_code == 1 and "is in the workspace's own exports/ folder" in " ".join(r.output.split())
    assert list((tmp_path / "exports").iterdir()) == []


def test_another_workspace_or_its_store_is_never_a_source(tmp_path, monkeypatch):
    """A probe: `pipeline --incoming ../other` ingested the other study's objects/ (92 of its photos) as a source
    named "objects", and `ingest ../other/objects` did the same: one study's patients' photos entered another."""
    other = tmp_path / "other"
    monkeypatch.chdir(tmp_path)
    assert (
        runner.invoke(app, ["pipeline", "--demo", "-w", str(other), "--incoming", str(other / "incoming")]).exit_code
        == 0
    )
    (mine := tmp_path / "mine").mkdir()
    monkeypatch.chdir(mine)
    assert runner.invoke(app, ["init", "."]).exit_code == 0
    shard = next((other / "objects").iterdir())
    for args, said in (
        (["pipeline", "--incoming", "../other"], "../other is a workspace, whose folders hold copies of its photos"),
        (["pipeline", "--incoming", "."], ". is a workspace"),
        (["pipeline", "--incoming", str(shard)], f"is in the workspace {other}'s objects/ folder"),
        (["ingest", "../other/objects", "-s", "x"], f"is in the workspace {other}'s objects/ folder"),
        (["ingest", "../other", "-s", "x"], "is a workspace"),
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 1 and said in " ".join(r.output.split()), (args, r.output)
    assert status(mine)["images"] == 0 and status(mine)["by_source"] == []
    r = runner.invoke(app, ["ingest", str(other / "incoming"), "-s", "x"])  # where the photos came from: taken
    assert r.exit_code == 0 and status(mine)["images"] == status(other)["images"], r.output


def test_a_case_id_pattern_that_backtracks_without_end_stops_in_one_line(tmp_path, monkeypatch):
    """Before: a pattern such as (a|aa)+$ on a long name held ingest at 100 % CPU for good, saying nothing."""
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "incoming" / "gamma"
    src.mkdir(parents=True)
    (src / ("a" * 60 + "b.jpg")).write_bytes(I.jpeg(9))
    (src / "source.toml").write_text('case_id_pattern = "(a|aa)+$"\n')
    r = runner.invoke(app, ["pipeline"])
    assert r.exit_code == 1 and "the case id pattern took over 1 s on one file name" in " ".join(r.output.split())


def test_label_warnings_point_at_the_source_toml_not_an_option_the_pipeline_lacks(tmp_path, monkeypatch):
    """Before: "name other folders' labels with --label-map", an option `curate pipeline` does not have."""
    monkeypatch.chdir(tmp_path)
    web = tmp_path / "incoming" / "web"
    (web / "Monkeypox").mkdir(parents=True)
    (web / "Monkeypox" / "m.jpg").write_bytes(I.jpeg(470))
    r = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["pipeline"])
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())
    assert "labels with a label_map file named in web/source.toml (folder,label)" in said and "--label-map" not in said
    (web / "map.csv").write_text("Monkeypox,chickenpox\n")
    (web / "source.toml").write_text('label_map = "map.csv"\n')
    r = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["pipeline"])
    said = " ".join(r.output.split())
    assert r.exit_code == 0 and "a label_map file named in web/source.toml gives labels the workspace does not" in said


def test_demo_refused_by_a_loose_photo_does_not_say_use_demo(tmp_path, monkeypatch):
    """A newcomer's incoming/ held one photo, loose: `pipeline --demo` made no demo and advised "(or use --demo)"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "incoming").mkdir()
    (tmp_path / "incoming" / "photo.jpg").write_bytes(I.jpeg(5))
    said = " ".join(runner.invoke(app, ["pipeline", "--demo"]).output.split())
    assert "--demo fills only an empty incoming/: it holds files" in said and "or use --demo" not in said
