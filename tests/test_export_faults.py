"""Bad input fails before anything is written; an interrupted export leaves nothing visible and resumes."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import select
from test_export_fixtures import build_catalogue

from curate.dataset import DatasetVersion
from curate.export import ExportError, ExportOptions, ImageSpec, export_version
from curate.workspace import Workspace
from db.models.export import DatasetVersionRecord
from db.models.label import Consensus

SPEC = ImageSpec(size=(48, 48))


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    return build_catalogue(tmp_path_factory.mktemp("faults"))


def nothing_written(ws) -> bool:
    with ws.session() as s:
        registered = s.exec(select(DatasetVersionRecord)).all()
    versions = [p for p in ws.exports.rglob("*") if p.is_dir()]
    partial = list(ws.tmp.glob("export-*"))
    return not registered and not versions and not partial


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"version": "1.0"}, r"version '1.0' is not semantic"),
        ({"version": "v1.0.0"}, "not semantic"),
        ({"name": "Mpox Study"}, "dataset name"),
        ({"folds": 40}, r"too few images for 40 folds plus a test split .*'mpox' has \d+ images in \d+ groups"),
        (
            {"external_sources": ("kaggle-msid",)},
            r"external source 'kaggle-msid' does not exist \(sources: clinic, kaggle, web\)",
        ),
        ({"task": "multiclass"}, "task must be one of binary, diagnosis"),
        ({"spec": ImageSpec(size=(64, 64), policy="squash")}, "resize policy must be one of"),
        ({"parent": "0.9.0"}, r"parent version mpox@0.9.0 does not exist"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(cat, kw, message):
    options = {"name": "mpox", "version": "1.0.0", "spec": SPEC, **kw}
    with pytest.raises(ExportError, match=message):
        export_version(cat.ws, ExportOptions(**options))
    assert nothing_written(cat.ws)


def test_empty_consensus_set(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    with pytest.raises(
        ExportError, match=r"labels to export \(consensus: empty\): clinicians label first \(curate studio"
    ):
        export_version(ws, ExportOptions(name="mpox", version="1.0.0"))
    assert nothing_written(ws)


def test_only_pending_and_discarded_is_empty_too(cat):
    with cat.ws.session() as s:
        saved = {c.image_id: c.status for c in s.exec(select(Consensus)).all()}
        for c in s.exec(select(Consensus)).all():
            c.status = "discarded" if c.image_id % 2 else "pending"
    try:
        with pytest.raises(ExportError, match=r"consensus: discarded \d+, pending \d+\)"):
            export_version(cat.ws, ExportOptions(name="mpox", version="1.0.0"))
        assert nothing_written(cat.ws)
    finally:
        with cat.ws.session() as s:
            for c in s.exec(select(Consensus)).all():
                c.status = saved[c.image_id]


def _stopped_after(ws, options: ExportOptions, images: int) -> None:
    """Run the export and stop it (Ctrl-C) once `images` images are rendered."""

    def stop(n, total):
        if n == images:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_version(ws, options, on_image=stop)


def test_interrupted_export_is_invisible_and_rerun_completes(cat):
    options = ExportOptions(name="mpox", version="2.0.0", spec=SPEC, workers=2)
    _stopped_after(cat.ws, options, 25)
    assert not (cat.ws.exports / "mpox" / "2.0.0").exists()
    with cat.ws.session() as s:
        assert not s.exec(select(DatasetVersionRecord)).all()
    partial = list(cat.ws.tmp.glob("export-mpox-2.0.0-*"))
    assert len(partial) == 1 and len(list(partial[0].rglob("*.jpg"))) >= 25

    resumed = export_version(cat.ws, options)
    assert resumed.status == "written" and 0 < resumed.rendered < resumed.images  # finished files were reused
    assert not list(cat.ws.tmp.glob("export-*"))
    DatasetVersion.open(resumed.path).verify()

    # The resumed version is byte-identical to an uninterrupted build.
    shutil.rmtree(resumed.path)
    with cat.ws.session() as s:
        s.delete(s.exec(select(DatasetVersionRecord)).one())
    clean = export_version(cat.ws, options)
    assert clean.rendered == clean.images and clean.checksum == resumed.checksum


def test_a_stopped_export_of_another_version_leaves_no_photos_in_tmp(cat, monkeypatch):
    """Before: a stopped export's build folder (its rendered photos) stayed in tmp/ until that very version was
    exported again, which a steward who moved on to the next version never did. The next export that finishes
    removes it, and says so."""
    said: list[str] = []
    monkeypatch.setattr("curate.export.writer.on_note", said.append)
    _stopped_after(cat.ws, ExportOptions(name="halted", version="1.0.0", spec=SPEC, workers=1), 5)
    assert len(list(cat.ws.tmp.glob("export-halted-1.0.0-*/**/*.jpg"))) >= 5
    done = export_version(cat.ws, ExportOptions(name="mpox", version="5.0.0", spec=SPEC, workers=1))
    assert done.status == "written" and not list(cat.ws.tmp.glob("export-*"))
    assert said == ["removed 1 build folder(s) of stopped exports of other versions from tmp/"]


def test_a_tmp_linked_to_a_shared_folder_is_not_swept(cat, tmp_path):
    """A tmp/ linked to a scratch folder (as an export on another disk is told to) may hold another workspace's
    build in progress, or another program's folder: the sweep of stopped builds leaves it alone."""
    shared = tmp_path / "scratch"
    theirs = shared / "export-otherws-2.0.0-0123456789abcdef"
    (theirs / "train").mkdir(parents=True)
    (theirs / "train" / "x.jpg").write_bytes(b"x")
    (shared / "export-photos-from-camera").mkdir()
    own = cat.ws.tmp.with_name("tmp-own")
    cat.ws.tmp.rename(own)
    try:
        for p in own.iterdir():
            p.rename(shared / p.name)
        cat.ws.tmp.symlink_to(shared)
        done = export_version(cat.ws, ExportOptions(name="mpox", version="6.0.0", spec=SPEC, workers=1))
    finally:
        cat.ws.tmp.unlink()
        own.rename(cat.ws.tmp)
    assert done.status == "written" and (theirs / "train" / "x.jpg").is_file()
    assert (shared / "export-photos-from-camera").is_dir()


def test_a_finished_file_changed_in_the_killed_build_is_rendered_again_not_sealed(cat):
    """A probe stopped an export, wrote another valid picture over one finished file of the build in tmp/ and cut
    another short: the re-run sealed the wrong picture into the version (its audit passed), or failed on every
    re-run reading the cut file, naming the version. Each finished file now carries its digest; one that no
    longer matches it is rendered again, and the version is the one an uninterrupted build writes."""
    options = ExportOptions(name="mpox", version="4.0.0", spec=SPEC, workers=1)
    _stopped_after(cat.ws, options, 12)
    (build,) = cat.ws.tmp.glob("export-mpox-4.0.0-*")
    done = sorted(p for p in build.rglob("*.jpg") if p.with_name(p.name + ".sha256").is_file())
    assert len(done) >= 3
    swapped, cut = done[0], done[1]
    swapped.write_bytes(done[2].read_bytes())  # another valid picture in its place
    cut.write_bytes(cut.read_bytes()[:100])
    tampered = {p.relative_to(build): p.read_bytes() for p in (swapped, cut)}

    resumed = export_version(cat.ws, options)
    assert resumed.status == "written" and resumed.rendered < resumed.images
    version = DatasetVersion.open(resumed.path)
    version.verify()
    assert not list(resumed.path.rglob("*.sha256"))  # the marks stay in the build
    for name, data in tampered.items():
        assert (resumed.path / name).read_bytes() != data
    shutil.rmtree(resumed.path)
    with cat.ws.session() as s:
        s.delete(s.exec(select(DatasetVersionRecord).where(DatasetVersionRecord.version == "4.0.0")).one())
    clean = export_version(cat.ws, options)
    assert clean.checksum == resumed.checksum


def test_export_stopped_during_its_leakage_audit_seals_nothing_and_shows_each_stage(cat):
    """The audit runs on the rendered files before the version is sealed: a kill there leaves no version and
    no record, and the re-run reuses every rendered file; its stages each have a bar that ends full."""
    options = ExportOptions(name="mpox", version="3.0.0", spec=SPEC, workers=2)

    def stop(stage, done, total):
        if stage == "compare" and done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_version(cat.ws, options, on_audit=stop)
    assert not (cat.ws.exports / "mpox" / "3.0.0").exists()
    with cat.ws.session() as s:
        assert "3.0.0" not in [r.version for r in s.exec(select(DatasetVersionRecord)).all()]
    heard: list[tuple[str, int, int | None]] = []
    done = export_version(cat.ws, options, on_audit=lambda *stage: heard.append(stage))
    assert done.status == "written" and done.rendered == 0  # every image was rendered before the stop
    DatasetVersion.open(done.path).verify()
    assert list(dict.fromkeys(stage for stage, _, _ in heard)) == ["read images", "features", "compare"]
    last = {stage: (n, total) for stage, n, total in heard}
    assert last == {
        "read images": (done.images, done.images),
        "features": (done.images, done.images),
        "compare": (2 * done.images, 2 * done.images),  # each image asks as it is and mirrored
    }


KILL_SCRIPT = """
import sys
from curate.export import ExportOptions, ImageSpec, export_version
from curate.workspace import Workspace
options = ExportOptions(name="killed", version="1.0.0", spec=ImageSpec(size=(160, 160)), workers=2)
export_version(Workspace.open(sys.argv[1]), options)
"""


@pytest.mark.slow
def test_sigkill_at_any_moment_leaves_no_half_written_version(cat):
    """Kill a real export process at several moments; each time the version is absent or complete."""
    ws = cat.ws
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    final = ws.exports / "killed" / "1.0.0"
    outcomes = []
    # Kill at: start-up, a few images in, about half-way (twice: the second run resumes the first's files).
    for images_written in (0, 5, 30, 45):
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(ws.root)], env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(ws.tmp.glob("export-killed-1.0.0-*/**/*.jpg"))) >= images_written:
                break
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)  # the export and its image workers, as a kill -9 of the job would
        proc.wait()
        with ws.session() as s:
            registered = s.exec(select(DatasetVersionRecord).where(DatasetVersionRecord.name == "killed")).all()
        partial = list(ws.tmp.glob("export-killed-1.0.0-*"))
        if final.exists():
            DatasetVersion.open(final).verify()  # complete, never half-written
            outcomes.append("complete")
        else:
            assert not registered
            outcomes.append("partial" if partial else "none")
    assert "partial" in outcomes, outcomes  # at least one kill landed mid-build
    done = export_version(ws, ExportOptions(name="killed", version="1.0.0", spec=ImageSpec(size=(160, 160))))
    assert done.status in ("written", "exists")
    DatasetVersion.open(done.path).verify()
    with ws.session() as s:
        assert len(s.exec(select(DatasetVersionRecord).where(DatasetVersionRecord.name == "killed")).all()) == 1


def test_status_gives_the_exact_command_that_finishes_a_stopped_export(tmp_path, monkeypatch):
    """Before: "did not finish: `curate export` (interrupted …)" — which version, with which options? (`rerun`
    null in --json), and its partial build stays in tmp/ until that same export runs."""
    import json
    import shlex

    from typer.testing import CliRunner

    from curate.cli import app

    ws = build_catalogue(tmp_path).ws
    words = ["export", "--name", "stopped", "--version", "1.2.0", "--size", "40", "-x", "kaggle", "--archive"]

    def stopped(*a, **kw):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr("curate.export.export_version", stopped)
        assert CliRunner().invoke(app, [*words, "-w", str(ws.root)]).exit_code == 130
    status = CliRunner().invoke(app, ["status", "--json", "-w", str(ws.root)])
    [left] = json.loads(status.stdout)["unfinished"]
    again = shlex.split(left["rerun"])
    assert again[:2] == ["curate", "export"] and {"--external", "kaggle", "--archive", "40", "1.2.0"} <= set(again)
    r = CliRunner().invoke(app, [*again[1:], "-w", str(ws.root)])
    assert r.exit_code == 0, r.output
    assert (ws.exports / "stopped" / "1.2.0").is_dir() and (ws.exports / "stopped" / "stopped-1.2.0.tar").is_file()
    assert DatasetVersion.open(ws.exports / "stopped" / "1.2.0").meta["preprocessing"]["image_size"] == [40, 40]
    status = CliRunner().invoke(app, ["status", "--json", "-w", str(ws.root)])
    assert json.loads(status.stdout)["unfinished"] == []


@pytest.mark.parametrize(
    ("name", "version", "said"),
    [
        ("a" * 100, "9" * 200 + ".0.0", "204 characters long (at most 40)"),
        ("mpox", "1" * 260 + ".0.0", "264 characters long (at most 40)"),
    ],
    ids=["build-folder", "version-folder"],
)
def test_a_name_too_long_is_a_refusal_status_does_not_ask_to_rerun(tmp_path, name, version, said):
    """A name and version too long for a folder were recorded "aborted", and `curate status` asked, for good, to
    re-run a command that could never succeed; the build folder's said "cannot create build folder" as if the
    disk had failed. Both are refusals of the input now: one line, recorded "failed". A version is refused over
    the catalogue's 40 characters since, before any folder is named (a name of 100 and a version of 40 make a
    build folder name of 213 bytes: only a file system of shorter names refuses it, said as in `writer`)."""
    import json

    from typer.testing import CliRunner

    from curate.cli import app

    ws = build_catalogue(tmp_path).ws
    r = CliRunner().invoke(app, ["export", "--name", name, "--version", version, "--size", "32", "-w", str(ws.root)])
    assert r.exit_code == 1 and said in r.output and len(r.output.strip().splitlines()) == 1, r.output
    status = CliRunner().invoke(app, ["status", "--json", "-w", str(ws.root)])
    assert json.loads(status.stdout)["unfinished"] == []
    assert not list(ws.tmp.glob("export-*")) and not (ws.exports / name).exists()


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (dict(name="-x", version="1.0.0"), "starting with a letter or digit"),
        (dict(name="mpox", version="2.0.0", parent="99999999999999999999.0.0"), "must be an earlier version"),
        (dict(name="mpox", version="2.0.0", parent="2.0.0"), "--parent 2.0.0 must be an earlier version"),
        (dict(name="abc\n", version="1.0.0"), "must be lower-case letters"),
        (dict(name="mpox", version="1.0.0\n"), "is not semantic"),
    ],
    ids=["leading-dash", "later-parent", "itself", "name-newline", "version-newline"],
)
def test_a_name_or_parent_refused_says_why(cat, options, said):
    """A name starting with '-' was refused by a message saying '-' is allowed; a parent later than the version
    being made (or the version itself) was taken."""
    with pytest.raises(ExportError) as caught:
        export_version(cat.ws, ExportOptions(**options, spec=SPEC))
    assert said in str(caught.value)
    assert not list(cat.ws.tmp.glob("export-*")) and not (cat.ws.exports / "-x").exists()
