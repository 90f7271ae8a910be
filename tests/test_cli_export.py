"""`curate export`, `curate versions`, `curate diff` through the command line."""

import json
import re

import pytest
from sqlmodel import select
from test_export_fixtures import build_catalogue
from typer.testing import CliRunner

from curate.cli import app
from curate.dataset import DatasetVersion
from curate.dedupe import cluster_map
from curate.export.manifest import read_manifest
from db.models import CommandRun
from db.models.label import Consensus

runner = CliRunner()


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    return build_catalogue(tmp_path_factory.mktemp("cli"))


def run(cat, *args):
    return runner.invoke(app, [*args, "--workspace", str(cat.ws.root)])


def test_export_versions_diff(cat):
    r = run(cat, "export", "--name", "mpox", "--version", "1.0.0", "--size", "48", "--external", "kaggle", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["status"] == "written" and out["images"] == 70 and out["counts"]["external"]["mpox"] >= 6
    DatasetVersion.open(out["path"]).verify()

    r = run(cat, "export", "--name", "mpox", "--version", "1.0.0", "--size", "48", "--external", "kaggle")
    assert r.exit_code == 0 and "mpox@1.0.0 (exists)" in r.stdout and out["checksum"] in r.stdout

    with cat.ws.session() as s:
        c = s.get(Consensus, cat.ids_by_name["P03_0"])
        c.status = "discarded"
    r = run(cat, "export", "--name", "mpox", "--version", "1.0.1", "--size", "48", "--external", "kaggle", "--archive")
    assert r.exit_code == 0, r.output
    assert "mpox-1.0.1.tar" in r.stdout
    assert "image(s) of mpox@1.0.0 kept their split and fold, 0 moved" in " ".join(r.stdout.split())

    r = run(cat, "versions", "--json")
    data = json.loads(r.stdout)
    assert [(d["version"], d["parent"]) for d in data] == [("1.0.0", None), ("1.0.1", "1.0.0")]
    assert data[1]["archive"].endswith("mpox-1.0.1.tar")
    import re

    # dataset.json's format on every backend (before: SQLite "2026-12-05 18:06:31.056994", PostgreSQL "…+00:00")
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", d["created_at"]) for d in data), data
    r = run(cat, "versions")
    assert r.exit_code == 0 and "mpox@1.0.1" in r.stdout

    r = run(cat, "diff", "mpox@1.0.0", "mpox@1.0.1", "--json")
    d = json.loads(r.stdout)
    assert d["removed_ids"] == [cat.ids_by_name["P03_0"]] and d["added"] == 0  # a number, as export --json
    old_row = next(
        x
        for x in read_manifest(cat.ws.exports / "mpox" / "1.0.0" / "manifest.csv")
        if x["image_id"] == str(cat.ids_by_name["P03_0"])
    )
    was = (
        f"{old_row['split']}/fold{old_row['fold']}" if old_row["fold"] else old_row["split"],
        f"{old_row['label']}/{old_row['diagnosis']}",
    )
    assert d["removed_from"] == [[cat.ids_by_name["P03_0"], *was]] and d["added_to"] == []  # where it was
    r = run(cat, "diff", "mpox@1.0.0", "mpox@1.0.1")
    assert r.exit_code == 0 and "removed" in r.stdout and " ".join(was) in r.stdout

    with cat.ws.session() as s:
        runs = s.exec(select(CommandRun).where(CommandRun.command == "export")).all()
    assert [x.status for x in runs] == ["ok", "ok", "ok"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--version", "1.0"], "version '1.0' is not semantic"),
        (["--version", "3.0.0", "--external", "nope"], "external source 'nope' does not exist"),
        (["--version", "3.0.0", "--folds", "30"], "too few images for 30 folds"),
        (["--version", "1.0.0", "--seed", "9"], "already exists with different content"),
    ],
)
def test_export_errors_are_one_red_line(cat, args, message):
    if not (cat.ws.exports / "mpox" / "1.0.0").exists():
        assert (
            run(cat, "export", "--name", "mpox", "--version", "1.0.0", "--size", "48", "--external", "kaggle").exit_code
            == 0
        )
    r = run(cat, "export", "--name", "mpox", "--size", "48", *args)
    assert r.exit_code == 1
    err = r.stderr.strip()
    assert err.startswith("error:") and message in " ".join(err.split()) and "Traceback" not in r.output


def test_a_test_fraction_of_zero_is_refused_as_its_help_says(cat):
    """Before: --help said 0.0<=x<=0.9, and 0 was then refused as "must be between 0 and 1, got 0.0"."""
    assert "0.01<=x<=0.9" in " ".join(run(cat, "export", "--help").output.split())
    r = run(cat, "export", "--name", "mpox", "--version", "4.0.0", "--test-fraction", "0")
    assert r.exit_code == 2 and "--test-fraction" in r.output and "greater than or equal to 0.01" in r.output


def test_diff_unknown_version(cat):
    r = run(cat, "diff", "mpox@1.0.0", "mpox@9.9.9")
    assert r.exit_code == 1 and "not found" in r.stderr


def test_reshuffle_flag_and_help(cat):
    if not (cat.ws.exports / "mpox" / "1.0.0").exists():
        assert (
            run(cat, "export", "--name", "mpox", "--version", "1.0.0", "--size", "48", "--external", "kaggle").exit_code
            == 0
        )
    r = run(
        cat,
        "export",
        "--name",
        "mpox",
        "--version",
        "1.5.0",
        "--parent",
        "1.0.0",
        "--size",
        "48",
        "--external",
        "kaggle",
        "--reshuffle",
        "--json",
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["reshuffle"] is True and out["parent"] == "1.0.0" and out["moved"] == []
    assert json.loads((DatasetVersion.open(out["path"]).path / "dataset.json").read_text())["reshuffle"] is True
    help_text = " ".join(runner.invoke(app, ["export", "--help"]).stdout.split())
    assert "--reshuffle" in help_text and "keeps its split and fold" in help_text


def test_export_before_dedupe_warns_and_after_it_does_not(tmp_path):
    """A catalogue no dedupe run has compared: copies could sit in two splits, so the terminal, --json and the
    card say so; once `curate dedupe` has run, a new version carries no such warning."""
    fresh = build_catalogue(tmp_path)
    r = run(fresh, "export", "--name", "mpox", "--version", "1.0.0", "--size", "48")
    assert r.exit_code == 0, r.output
    assert "warning: 70 exported image(s) were never compared by `curate dedupe`" in " ".join(r.stdout.split())
    card = (fresh.ws.exports / "mpox" / "1.0.0" / "README.md").read_text(encoding="utf-8")
    assert "**Warning:** 70 exported image(s) were never compared" in card

    assert run(fresh, "dedupe", "--min-side", "1", "--workers", "1").exit_code == 0
    r = run(fresh, "export", "--name", "mpox", "--version", "1.1.0", "--size", "48", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["uncompared"] == 0
    assert "never compared" not in (fresh.ws.exports / "mpox" / "1.1.0" / "README.md").read_text(encoding="utf-8")


def test_a_damaged_version_is_named_not_called_different(cat):
    if not (cat.ws.exports / "mpox" / "1.0.0").exists():
        run(cat, "export", "--name", "mpox", "--version", "1.0.0", "--size", "48", "--external", "kaggle")
    version = cat.ws.exports / "mpox" / "1.0.0"
    victim = next(version.glob("train/*/img*.jpg"))
    data = victim.read_bytes()
    victim.unlink()
    try:
        r = run(cat, "export", "--name", "mpox", "--version", "1.0.0", "--size", "48", "--external", "kaggle")
        assert r.exit_code == 1
        assert f"mpox@1.0.0 is damaged ({victim.relative_to(version).as_posix()} missing)" in " ".join(r.stderr.split())
    finally:
        victim.write_bytes(data)


def test_a_version_without_at_is_explained(cat):
    r = run(cat, "audit", "leakage", "mpox")
    assert r.exit_code == 1 and "a version is NAME@VERSION, e.g. mpox@1.0.0" in " ".join(r.stderr.split())


def test_copies_of_one_photo_labelled_with_two_diagnoses_are_left_out(tmp_path):
    """The probe's case: two labelled images (two diagnoses) the steward then merged as one photo. Before, both were
    exported, one photo under two labels (and exporting one alone lost the other's case id and parent place). Now
    the cluster has no consensus, as the study's rule says: neither is exported, the exclusion table counts both
    under `conflicting_copies`, and the terminal names the images and the split that undoes a wrong merge."""
    fresh = build_catalogue(tmp_path)
    assert run(fresh, "dedupe", "--min-side", "1", "--workers", "1").exit_code == 0
    with fresh.ws.session() as s:
        labelled = {c.image_id: c.diagnosis for c in s.exec(select(Consensus)).all() if c.status == "agreed"}
    a = min(labelled)
    b = next(i for i in sorted(labelled) if labelled[i] != labelled[a])
    quiet = run(fresh, "export", "--name", "mpox", "--version", "0.9.0", "--size", "48", "--json")
    before = json.loads(quiet.stdout)
    assert before["conflicting_copies"] == 0 and "conflicting_copies" not in before["excluded"]
    assert run(fresh, "dedupe", "merge", str(a), str(b)).exit_code == 0
    r = run(fresh, "export", "--name", "mpox", "--version", "1.0.0", "--size", "48", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    with fresh.ws.session() as s:
        clusters = cluster_map(s)
    group = sorted(i for i in labelled if clusters[i] == clusters[a])  # a and b, and any labelled copy beside them
    assert {a, b} <= set(group)
    assert out["conflicting_copies"] == 1 and out["conflicting_images"] == [group]
    assert out["excluded"]["conflicting_copies"] == len(group) and out["images"] == before["images"] - len(group)
    rows = {int(row["image_id"]) for row in DatasetVersion.open(out["path"]).rows}
    assert not rows & set(group)
    card = " ".join((fresh.ws.exports / "mpox" / "1.0.0" / "README.md").read_text(encoding="utf-8").split())
    assert "1 dedupe cluster(s) left out: copies of one photo" in card
    said = " ".join(run(fresh, "export", "--name", "mpox", "--version", "1.0.1", "--size", "48").stdout.split())
    assert "warning: 1 dedupe cluster(s) left out" in said
    assert f"images {' = '.join(map(str, group))}: different photos? `curate dedupe split " in said
    splits = re.findall(r"`curate dedupe split ([\d ]+)`", said)
    # each image of the other diagnosis taken from the copies of the commonest one, never two diagnoses left together
    assert splits and all(
        labelled[int(s.split()[0])] not in {labelled[int(i)] for i in s.split()[1:]} for s in splits
    ), splits
    for command in splits:  # the commands given: they undo the wrong merge
        assert run(fresh, "dedupe", "split", *command.split()).exit_code == 0
    again = json.loads(run(fresh, "export", "--name", "mpox", "--version", "1.1.0", "--size", "48", "--json").stdout)
    assert again["conflicting_copies"] == 0 and again["images"] == before["images"]


def test_a_copy_of_a_photo_flagged_identifiable_is_left_out_with_it(tmp_path):
    """The final review's case: a flag is on the photo, but only the copy it was pulled on left the export; its
    other labelled copy (agreed, the same face) went out. Now every copy in the flagged image's cluster is left out
    (`identifiable_copy`), and pull and status name a version holding any of them."""
    fresh = build_catalogue(tmp_path)
    assert run(fresh, "dedupe", "--min-side", "1", "--workers", "1").exit_code == 0
    with fresh.ws.session() as s:
        rows = s.exec(select(Consensus)).all()
    flagged = next(c.image_id for c in rows if c.exclusion == "identifiable_features")
    agreed = next(c.image_id for c in rows if c.status == "agreed")
    v1 = json.loads(run(fresh, "export", "--name", "mpox", "--version", "1.0.0", "--size", "48", "--json").stdout)
    assert agreed in {int(r["image_id"]) for r in DatasetVersion.open(v1["path"]).rows}
    assert run(fresh, "dedupe", "merge", str(flagged), str(agreed)).exit_code == 0  # one photo after all
    out = json.loads(run(fresh, "export", "--name", "mpox", "--version", "1.1.0", "--size", "48", "--json").stdout)
    assert out["excluded"]["identifiable_copy"] >= 1
    assert agreed not in {int(r["image_id"]) for r in DatasetVersion.open(out["path"]).rows}
    held = json.loads(run(fresh, "status", "--json").stdout)["flagged_in_versions"]
    assert [(h["version"], agreed in h["images"]) for h in held] == [("mpox@1.0.0", True)]
    # a train run made from that version, and its leakage page, hold the photo's pixels too (Grad-CAM originals,
    # thumbnails): named beside the version (before: the version alone, and a face stayed in runs/…/gradcam/)
    made = fresh.ws.root / "runs" / "mpox-1.0.0" / "resnet18-s0"
    made.mkdir(parents=True)
    checksum = DatasetVersion.open(v1["path"]).checksum
    (made / "run.json").write_text(json.dumps({"dataset": {"ref": "mpox@1.0.0", "checksum": checksum}}))
    for name, ref, sums in [("mpox-1.1.0", "mpox@1.1.0", checksum), ("elsewhere", "mpox@1.0.0", "another's")]:
        (fresh.ws.root / "runs" / name).mkdir()  # another version; another workspace's version of that name
        (fresh.ws.root / "runs" / name / "run.json").write_text(json.dumps({"dataset": {"ref": ref, "checksum": sums}}))
    assert run(fresh, "audit", "leakage", "mpox@1.0.0").exit_code == 0
    held = json.loads(run(fresh, "status", "--json").stdout)["flagged_in_versions"]
    assert held[0]["made"] == ["runs/mpox-1.0.0/resnet18-s0", "reports/leakage-mpox-1.0.0.html"]
    said = " ".join(run(fresh, "status").output.split())
    assert "what was made from them here (runs/mpox-1.0.0/resnet18-s0, reports/leakage-mpox-1.0.0.html)" in said
    # an audit at another threshold writes its own page, with the same thumbnails: named too
    assert run(fresh, "audit", "leakage", "mpox@1.0.0", "--threshold", "5").exit_code == 0
    held = json.loads(run(fresh, "status", "--json").stdout)["flagged_in_versions"]
    assert held[0]["made"][1:] == ["reports/leakage-mpox-1.0.0.html", "reports/leakage-mpox-1.0.0-threshold-5.html"]
