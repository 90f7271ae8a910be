"""What export, diff and the leakage audit take from a version they did not just write is checked first.

Before (a hostile probe): an edited parent's manifest moved a test image into train ("0 moved"); `--archive` on an
existing version packed a damaged image and a stray notes file and recorded the archive as good; a cut archive
was reported with its old digest; `curate diff` diffed an edited version as it stood; a dataset.json whose
version field was changed pointed the recorded-checksum check at another version; a non-text version field was a
TypeError; an archive that could not be packed left the written version unlisted."""

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from test_export_fixtures import build_catalogue

from curate.dataset import DatasetError, DatasetVersion
from curate.export import ExportError, ExportOptions, ImageSpec, diff_versions, export_version, list_versions
from curate.export.leakage import audit_version
from curate.export.writer import recorded_checksum


def opts(version="1.0.0", **kw):
    kw.setdefault("spec", ImageSpec(size=(64, 64)))
    kw.setdefault("external_sources", ("kaggle",))
    kw.setdefault("workers", 1)
    return ExportOptions(name="mpox", version=version, **kw)


@pytest.fixture
def cat(tmp_path, monkeypatch):
    cat = build_catalogue(tmp_path)
    monkeypatch.setattr(
        "curate.export.plan.cluster_map", lambda s: {**{i: f"img{i}" for i in range(1, 10_000)}, **cat.clusters}
    )
    cat.first = export_version(cat.ws, opts())
    for p in [cat.first.path, *cat.first.path.rglob("*")]:  # as a steward with a shell would: made writable
        p.chmod(0o700 if p.is_dir() else 0o600)
    return cat


def _reseal(folder):
    sums = folder / "SHA256SUMS"
    names = [line.split("  ", 1)[1] for line in sums.read_text().splitlines()]
    sums.write_text("".join(f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in names))


def test_an_edited_parent_is_refused_not_followed(cat):
    manifest = cat.first.path / "manifest.csv"
    kept = manifest.read_bytes()
    lines = manifest.read_text().splitlines(keepends=True)
    i = next(k for k, line in enumerate(lines) if ",test," in line)
    # a test image made train in the parent's manifest (its file's folder too, so the manifest's shape holds)
    lines[i] = lines[i].replace(",test,,", ",train,0,").replace("test/", "train/")
    manifest.write_text("".join(lines))
    for reshuffle in (False, True):  # reshuffled, the card's history would still be told from the edited manifest
        with pytest.raises(ExportError, match=r"parent version cannot be trusted: mpox@1.0.0 fails its checksums"):
            export_version(cat.ws, opts("1.1.0", reshuffle=reshuffle))
    assert not (cat.ws.exports / "mpox" / "1.1.0").exists()
    manifest.write_bytes(kept)  # restored, as the message says
    assert export_version(cat.ws, opts("1.1.0")).status == "written"


def test_a_version_folder_the_catalogue_never_recorded_is_no_parent(cat):
    """The probe's case: 1.0.0 copied to 1.5.0, a test image moved into train in its files and manifest, sealed
    again. Before: 2.0.0 took 1.5.0 as its parent ("42 image(s) of mpox@1.5.0 kept their split and fold, 0 moved")
    and the test image trained; `curate versions` did not list 1.5.0."""
    copy = cat.ws.exports / "mpox" / "1.5.0"
    shutil.copytree(cat.first.path, copy)
    manifest = copy / "manifest.csv"
    lines = manifest.read_text().splitlines(keepends=True)
    i = next(k for k, line in enumerate(lines) if ",test," in line)
    moved = lines[i].split(",", 1)[0]
    (copy / moved.replace("test/", "train/", 1)).parent.mkdir(parents=True, exist_ok=True)
    (copy / moved).rename(copy / moved.replace("test/", "train/", 1))
    lines[i] = lines[i].replace(",test,,", ",train,0,").replace("test/", "train/", 1)
    manifest.write_text("".join(lines))
    sums = copy / "SHA256SUMS"
    sums.write_text(sums.read_text().replace(f"  {moved}\n", f"  {moved.replace('test/', 'train/', 1)}\n"))
    _reseal(copy)
    DatasetVersion.open(copy).verify()  # sealed again: its own checksums hold
    for parent in (None, "1.5.0"):  # the highest earlier version, or named
        with pytest.raises(ExportError, match=r"the catalogue records no parent version mpox@1.5.0, so the splits"):
            export_version(cat.ws, opts("2.0.0", parent=parent))
    assert not (cat.ws.exports / "mpox" / "2.0.0").exists()
    # that very version again: before, "already exists with different content", a new number advised, and that
    # one refused in turn for this unrecorded parent
    with pytest.raises(ExportError, match=r"1\.5\.0 holds a version the catalogue does not record, with other"):
        export_version(cat.ws, opts("1.5.0"))
    # the version advised instead is one this folder would not be the parent of (before: 1.5.1, then refused)
    with pytest.raises(ExportError, match=r"different content .*\(1\.0\.1 is free\)$"):
        export_version(cat.ws, opts("1.0.0", seed=1))
    shutil.copytree(copy, cat.ws.exports / "mpox" / "1.0.1")
    with pytest.raises(ExportError, match=r"\(1\.0\.2 is free once 1\.0\.1, a folder the catalogue does not record"):
        export_version(cat.ws, opts("1.0.0", seed=1))
    shutil.rmtree(cat.ws.exports / "mpox" / "1.0.1")
    shutil.rmtree(copy)  # moved out, as the message says: 1.0.0 is the parent
    assert export_version(cat.ws, opts("2.0.0")).parent == "1.0.0"


def test_an_export_run_again_over_its_version_checks_every_byte(cat):
    """Before: a photo's bytes replaced (or a photo added) in a written version, `curate export` of that version
    again said "already written … with this content; nothing changed", exit 0, while audit and train refused it."""
    photos = sorted(p for p in (cat.first.path / "train").rglob("*.jpg"))
    kept = photos[0].read_bytes()
    photos[0].write_bytes(photos[1].read_bytes())
    with pytest.raises(ExportError, match=r"mpox@1.0.0 fails its checksums: 1 changed .*; move .* aside"):
        export_version(cat.ws, opts())
    photos[0].write_bytes(kept)
    assert export_version(cat.ws, opts()).status == "exists"


def test_an_archive_vouches_only_for_a_sound_version_and_holds_only_its_files(cat):
    stray = cat.first.path / "notes.txt"
    stray.write_text("patient: Jane Doe\n")
    with pytest.raises(ExportError, match=r"mpox@1.0.0 fails its checksums: 1 extra \(notes.txt\); move .* aside"):
        export_version(cat.ws, opts(archive=True))
    assert not (cat.ws.exports / "mpox" / "mpox-1.0.0.tar").exists()
    stray.unlink()
    done = export_version(cat.ws, opts(archive=True))
    with tarfile.open(done.archive) as tar:
        names = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name and m.isfile()}
    assert names == {line.split("  ", 1)[1] for line in (done.path / "SHA256SUMS").read_text().splitlines()} | {
        "SHA256SUMS"
    }
    # a cut archive is not reported with its old digest: it is packed again, the same bytes as before
    done.archive.chmod(0o600)
    with open(done.archive, "r+b") as f:
        f.truncate(1000)
    again = export_version(cat.ws, opts(archive=True))
    assert again.archive_sha256 == done.archive_sha256 == hashlib.sha256(again.archive.read_bytes()).hexdigest()


def test_diff_checks_each_versions_files(cat):
    export_version(cat.ws, opts("1.0.1"))
    image = next(p for p in (cat.first.path / "train").rglob("*.jpg"))
    image.unlink()
    with pytest.raises(ExportError, match=r"mpox@1.0.0 fails its checksums: 1 missing"):
        diff_versions(cat.ws, "mpox@1.0.0", "mpox@1.0.1")


def test_a_version_that_claims_another_number_is_checked_as_the_folder_it_is(cat):
    folder = cat.first.path
    meta = json.loads((folder / "dataset.json").read_text())
    (folder / "dataset.json").write_text(json.dumps({**meta, "version": "1.0.9"}))
    _reseal(folder)
    recorded = lambda name, version: recorded_checksum(cat.ws, name, version)  # noqa: E731
    with pytest.raises(DatasetError, match=r"dataset.json names mpox@1.0.9, but the folder is mpox@1.0.0's"):
        audit_version("mpox@1.0.0", cat.ws.root, recorded=recorded)
    with pytest.raises(ExportError, match="dataset.json names mpox@1.0.9"):
        diff_versions(cat.ws, "mpox@1.0.0", "mpox@1.0.0")
    copy = cat.ws.root.parent / "copy"  # a copy elsewhere, opened by path, is its own: no recorded checksum
    shutil.copytree(folder, copy)
    assert DatasetVersion.open(copy).version == "1.0.9"


@pytest.mark.parametrize("value", [1, "", "a/b", "x\x00y", ".."], ids=["number", "blank", "slash", "nul", "dots"])
def test_a_version_field_that_is_not_a_name_is_named(cat, value):
    folder = cat.first.path
    meta = json.loads((folder / "dataset.json").read_text())
    (folder / "dataset.json").write_text(json.dumps({**meta, "version": value}))
    with pytest.raises(DatasetError, match=r"dataset.json version must be a name without slashes"):
        DatasetVersion.open(folder)


def test_an_archive_that_cannot_be_packed_leaves_the_version_listed(cat, monkeypatch):
    """tarfile's USTAR limits refused a long name and version (before versions over 40 characters were refused,
    the way to reach it here); any path it refuses still leaves the version written and listed."""
    import curate.export.writer as writer

    def refused(*args, **kwargs):
        raise ValueError("path is too long")

    monkeypatch.setattr(writer, "_tar_entry", refused)
    options = ExportOptions(name="m" * 100, version="7.0.0", spec=ImageSpec(size=(64, 64)), workers=1, archive=True)
    with pytest.raises(ExportError, match=r"cannot pack .*the version itself is written and listed"):
        export_version(cat.ws, options)
    assert [(r.name, r.version) for r in list_versions(cat.ws, "m" * 100)] == [(options.name, options.version)]


def test_exports_on_another_disk_is_said_before_any_image_is_rendered(tmp_path, monkeypatch):
    import os
    import tempfile

    other = Path(tempfile.mkdtemp(dir="/dev/shm")) if Path("/dev/shm").is_dir() else None
    if other is None or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem here")
    try:
        cat = build_catalogue(tmp_path)
        monkeypatch.setattr(
            "curate.export.plan.cluster_map", lambda s: {**{i: f"img{i}" for i in range(1, 10_000)}, **cat.clusters}
        )
        shutil.rmtree(cat.ws.exports, ignore_errors=True)
        cat.ws.exports.symlink_to(other)
        rendered = []
        with pytest.raises(ExportError, match=r"is on another disk than .*link tmp/ to a folder on the exports disk"):
            export_version(cat.ws, opts(), on_image=lambda done, total: rendered.append(done))
        assert rendered == []
    finally:
        shutil.rmtree(other, ignore_errors=True)


def test_the_recorded_checksum_is_checked_through_a_linked_name_folder_and_copies_are_their_own(cat, tmp_path):
    """A same-disk link `exports/mpox` -> elsewhere: before, the resealed version passed. An archive unpacked beside
    the versions (`exports/mpox/mpox-1.0.0/`) is a copy: before, it was "changed since curate export wrote it"."""
    elsewhere = tmp_path / "elsewhere"
    shutil.move(cat.ws.exports / "mpox", elsewhere)
    (cat.ws.exports / "mpox").symlink_to(elsewhere)
    unpacked = cat.ws.exports / "mpox" / "mpox-1.0.0"
    shutil.copytree(cat.first.path, unpacked)
    assert diff_versions(cat.ws, str(unpacked), "mpox@1.0.0").unchanged > 0  # intact, not registered there
    readme = elsewhere / "1.0.0" / "README.md"
    readme.write_text(readme.read_text() + "\nedited\n")
    _reseal(elsewhere / "1.0.0")
    with pytest.raises(ExportError, match="was changed since `curate export` wrote it"):
        diff_versions(cat.ws, "mpox@1.0.0", str(unpacked))


def test_an_existing_version_is_recognised_and_archived_whatever_its_parent_became(cat):
    second = export_version(cat.ws, opts("1.1.0"))
    next((cat.first.path / "train").rglob("*.jpg")).unlink()  # the parent damaged afterwards
    again = export_version(cat.ws, opts("1.1.0", archive=True))
    assert again.status == "exists" and again.checksum == second.checksum and again.archive.is_file()


def test_versions_says_what_became_of_each_folder(cat):
    """Before (a probe restoring backups): a version whose folder was gone, or whose manifest was deleted, was
    listed as written, and a version folder the catalogue did not record was not mentioned."""
    from typer.testing import CliRunner

    from curate.cli import app

    def versions():
        r = CliRunner().invoke(app, ["versions", "--json", "-w", str(cat.ws.root)])
        assert r.exit_code == 0, r.output
        return {d["version"]: d["folder"] for d in json.loads(r.stdout)}, r.stderr

    assert versions() == ({"1.0.0": "ok"}, "")
    shutil.copytree(cat.first.path, cat.ws.exports / "mpox" / "1.5.0")
    states, said = versions()
    assert states == {"1.0.0": "ok"} and "exports/mpox/1.5.0 is a version folder the catalogue does not record" in (
        " ".join(said.split())
    )
    manifest = cat.first.path / "manifest.csv"
    kept = manifest.read_bytes()
    manifest.unlink()
    assert versions()[0] == {"1.0.0": "damaged: manifest.csv missing"}
    # status says both too (before: only `curate versions` did)
    data = json.loads(CliRunner().invoke(app, ["status", "--json", "-w", str(cat.ws.root)]).stdout)
    assert data["versions_not_whole"] == [{"version": "mpox@1.0.0", "folder": "damaged: manifest.csv missing"}]
    assert data["versions_unrecorded"] == ["exports/mpox/1.5.0"]
    shown = " ".join(CliRunner().invoke(app, ["status", "-w", str(cat.ws.root)]).stdout.split())
    assert "warning: mpox@1.0.0: damaged: manifest.csv missing" in shown, shown
    assert "does not record: exports/mpox/1.5.0" in shown, shown
    manifest.write_bytes(kept)
    sums = cat.first.path / "SHA256SUMS"
    sums.write_text(sums.read_text() + sums.read_text().splitlines()[0] + "\n")  # sealed again by hand
    assert versions()[0] == {"1.0.0": "changed since written"}
    cat.first.path.rename(cat.ws.root / "aside")
    assert versions()[0] == {"1.0.0": "folder missing"}
    table = CliRunner().invoke(app, ["versions", "-w", str(cat.ws.root)])
    assert table.exit_code == 0 and "folder missing" in table.stdout
    # a version folder deleted (on purpose, often): versions says so, status does not warn of it for good
    data = json.loads(CliRunner().invoke(app, ["status", "--json", "-w", str(cat.ws.root)]).stdout)
    assert data["versions_not_whole"] == []
