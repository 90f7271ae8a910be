"""`curate audit leakage` on a damaged, empty or unnamed version: refused in one line naming what is wrong,
never passed (`--strict`) and never a traceback."""

from __future__ import annotations

import os

import pytest
from train_fixtures import write_export, write_sums
from typer.testing import CliRunner

from curate.cli import app
from curate.dataset import DatasetError, DatasetVersion
from curate.workspace import Workspace

runner = CliRunner()


@pytest.fixture()
def ws(tmp_path):
    """A workspace with mpox@1.0.0, a small version in the export contract's layout."""
    ws = Workspace.init(tmp_path / "ws")
    write_export(ws.root, size=32)
    return ws


def audit(ws, *args: str):
    return runner.invoke(app, ["audit", "leakage", *args, "--workspace", str(ws.root)])


def one_line_error(r, *words: str, code: int = 1) -> str:
    """The project's error: exit `code`, one line on stderr holding `words`, no traceback or "unexpected"."""
    assert r.exit_code == code, r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert "Traceback" not in r.output and "unexpected" not in r.output, r.output
    for w in words:
        assert w in err, (w, err)
    return err


def test_intact_version_passes_strict(ws):
    r = audit(ws, "mpox@1.0.0", "--strict", "--threshold", "100000")
    assert r.exit_code == 0 and "no suspect pairs" in r.stdout, r.output


def test_manifest_cut_to_its_header_is_refused(ws):
    manifest = ws.exports / "mpox" / "1.0.0" / "manifest.csv"
    manifest.write_text(manifest.read_text().splitlines()[0] + "\n")
    for args in ([], ["--strict"], ["--json"]):
        r = audit(ws, "mpox@1.0.0", *args)
        one_line_error(r, "mpox@1.0.0 fails its checksums", "manifest.csv")
        assert "no suspect pairs" not in r.output


def test_manifest_of_random_bytes_is_refused_naming_it(ws):
    manifest = ws.exports / "mpox" / "1.0.0" / "manifest.csv"
    manifest.write_bytes(os.urandom(4096) + b"\xff\xfe")
    err = one_line_error(audit(ws, "mpox@1.0.0", "--strict"), "mpox@1.0.0", "manifest.csv")
    assert "UnicodeDecodeError" not in err
    with pytest.raises(DatasetError, match=r"manifest\.csv is not UTF-8"):
        DatasetVersion.open("mpox@1.0.0", ws.root)


def test_changed_image_is_refused_before_the_audit(ws):
    version = ws.exports / "mpox" / "1.0.0"
    victim = next((version / "test" / "mpox").glob("*.jpg"))
    victim.write_bytes(victim.read_bytes()[:-40])
    one_line_error(audit(ws, "mpox@1.0.0"), "fails its checksums", f"1 changed (test/mpox/{victim.name})")


def test_manifest_rows_of_the_wrong_width_and_bad_sums_are_one_line(ws):
    version = ws.exports / "mpox" / "1.0.0"
    manifest = version / "manifest.csv"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([lines[0], lines[1].rsplit(",", 3)[0], *lines[2:]]) + "\n")  # a row cut short
    write_sums(version)
    one_line_error(audit(ws, "mpox@1.0.0"), "manifest.csv line 2", "expected 17 fields")
    manifest.write_text("\n".join([lines[0], lines[1] + ",extra", *lines[2:]]) + "\n")
    write_sums(version)
    one_line_error(audit(ws, "mpox@1.0.0"), "manifest.csv line 2", "expected 17 fields")
    manifest.write_text("\n".join(lines) + "\n")
    (version / "SHA256SUMS").write_bytes(b"\xff\xfe\x00garbage\n")
    one_line_error(audit(ws, "mpox@1.0.0"), "mpox@1.0.0", "SHA256SUMS")


def test_nothing_to_compare_does_not_pass_strict(tmp_path):
    """Every image in one part (train, one fold): an audit of zero pairs says so, and --strict refuses it with
    exit 3 (before: 1, as a damaged version, so a script could not tell them apart)."""
    ws = Workspace.init(tmp_path / "ws")
    write_export(ws.root, counts={"train": {"mpox": 2, "non_mpox": 2}}, folds=1, size=32)
    r = audit(ws, "mpox@1.0.0")
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert "nothing to compare: 4 image(s), none in two parts" in text and "no suspect pairs" not in text
    err = one_line_error(audit(ws, "mpox@1.0.0", "--strict"), "mpox@1.0.0", "nothing to compare", "4 image(s)", code=3)
    assert "test or external beside train" in err
    one_line_error(audit(ws, "mpox@1.0.0", "--strict", "--json"), "nothing to compare", code=3)


@pytest.mark.parametrize(("spec", "said"), [("", "dataset reference '' is empty"), ("   ", "is blank")])
def test_empty_spec_is_not_the_current_folder(ws, spec, said, monkeypatch):
    monkeypatch.chdir(ws.root)
    err = one_line_error(audit(ws, spec), said, "give NAME@VERSION")
    assert "dataset.json is missing" not in err


def test_folds_that_are_not_a_number_are_one_line(ws):
    version = ws.exports / "mpox" / "1.0.0"
    meta = (version / "dataset.json").read_text().replace('"folds": 5', '"folds": "five"')
    (version / "dataset.json").write_text(meta)
    write_sums(version)
    one_line_error(audit(ws, "mpox@1.0.0"), "dataset.json folds must be a whole number")


def test_a_version_changed_and_sealed_again_is_refused(ws):
    """The catalogue records each version's SHA256SUMS checksum when `curate export` writes it: a manifest cut to
    its header with SHA256SUMS made anew passes every check of the folder alone, and audited nothing."""
    import hashlib

    from db.models.export import DatasetVersionRecord

    version = ws.exports / "mpox" / "1.0.0"
    sealed = hashlib.sha256((version / "SHA256SUMS").read_bytes()).hexdigest()
    with ws.session() as s:
        s.add(
            DatasetVersionRecord(
                name="mpox", version="1.0.0", task="binary", checksum=sealed, fingerprint="f", path="x"
            )
        )
    assert audit(ws, "mpox@1.0.0", "--threshold", "100000").exit_code == 0  # as written: audited
    manifest = version / "manifest.csv"
    manifest.write_text(manifest.read_text().splitlines()[0] + "\n")
    write_sums(version)
    for args in ([], ["--strict"], ["--json"]):
        err = one_line_error(audit(ws, "mpox@1.0.0", *args), "mpox@1.0.0", "was changed since", sealed[:12])
        assert "aside and run the same export again" in err
    elsewhere = write_export(ws.root.parent / "other", size=32, seed=7)  # another workspace's mpox@1.0.0
    r = audit(ws, str(elsewhere), "--threshold", "100000")
    assert r.exit_code == 0 and "was changed since" not in r.output, r.output  # audited as what it is
    sums = version / "SHA256SUMS"
    sums.write_text("".join(sums.read_text().splitlines(keepends=True)[:-2]))  # two lines lost, nothing re-sealed
    one_line_error(audit(ws, "mpox@1.0.0"), "fails its checksums", "2 extra")
