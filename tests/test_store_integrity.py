"""Originals that went missing or were damaged in the store: a re-run of ingest restores them from their files,
and export refuses to seal a version from one whose bytes no longer hash to its name."""

from __future__ import annotations

import json
import os
import shutil
import stat

import images as I
import pytest
from sqlmodel import select
from test_export_fixtures import build_catalogue
from typer.testing import CliRunner

from curate.cli import app
from curate.dataset import DatasetVersion
from curate.intake.store import sha256_bytes
from db.models import Image
from db.models.export import DatasetVersionRecord

runner = CliRunner()


def flip(path, n: int = 200) -> None:
    """Invert `n` bytes in the middle of a read-only object, as a failing disk or a stray write would."""
    os.chmod(path, 0o600)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + n] = bytes(b ^ 0xFF for b in data[mid : mid + n])
    path.write_bytes(bytes(data))
    os.chmod(path, 0o400)


def ingest(folder, ws_dir, *extra):
    r = runner.invoke(app, ["ingest", str(folder), "--source", "clinic", "-w", str(ws_dir), *extra])
    assert r.exit_code == 0, r.output
    return r


# --- ingest -------------------------------------------------------------------------------------


def test_rerunning_ingest_restores_originals_missing_cut_short_or_damaged(tmp_path):
    ws_dir, folder = tmp_path / "ws", tmp_path / "in"
    folder.mkdir()
    sources = {}
    for i in range(5):
        data = I.jpeg(i)
        (folder / f"p{i}.jpg").write_bytes(data)
        sources[sha256_bytes(data)] = data
    assert runner.invoke(app, ["init", str(ws_dir)]).exit_code == 0
    ingest(folder, ws_dir)
    objects = ws_dir / "objects"
    shas = sorted(sources)
    path = {sha: objects / sha[:2] / sha[2:] for sha in shas}

    shutil.rmtree(path[shas[0]].parent)  # its whole objects/ab folder gone
    os.chmod(path[shas[1]], 0o600)
    path[shas[1]].write_bytes(sources[shas[1]][:100])  # cut short
    flip(path[shas[2]])  # same size, other bytes

    r = ingest(folder, ws_dir, "--json")
    data = json.loads(r.stdout)
    assert (data["restored"], data["already_known"], data["added"]) == (3, 5, 0)
    assert (
        "3 catalogued originals were missing or damaged in the store and restored from these files" in data["warnings"]
    )
    for sha in shas:
        assert path[sha].read_bytes() == sources[sha]
        assert stat.S_IMODE(path[sha].stat().st_mode) == 0o400  # read-only, like every original
    assert not list((ws_dir / "tmp").rglob("*"))  # written atomically: nothing left over

    # The text summary says so too; a store in order restores nothing and warns of nothing.
    os.chmod(path[shas[3]], 0o600)
    path[shas[3]].unlink()
    r = ingest(folder, ws_dir)
    assert "1 catalogued original was missing or damaged in the store and restored" in " ".join(r.stdout.split())
    data = json.loads(ingest(folder, ws_dir, "--json").stdout)
    assert data["restored"] == 0 and data["already_known"] == 5 and data["warnings"] == []


# --- export -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    return build_catalogue(tmp_path_factory.mktemp("integrity"))


def export(cat, version: str):
    return runner.invoke(
        app, ["export", "--name", "mpox", "--version", version, "--size", "48", "--json", "-w", str(cat.ws.root)]
    )


def test_export_refuses_a_damaged_original_and_seals_nothing(cat):
    ws = cat.ws
    r = export(cat, "0.9.0")  # from intact originals: what each image renders to
    assert r.exit_code == 0, r.output
    clean = {row["image_id"]: row["sha256"] for row in DatasetVersion.open(json.loads(r.stdout)["path"]).rows}

    victims = [cat.ids_by_name["P03_0"], cat.ids_by_name["web1"]]
    with ws.session() as s:
        sha = {i: s.get(Image, i).sha256 for i in victims}
    where = {i: f"objects/{sha[i][:2]}/{sha[i][2:]}" for i in victims}
    good = {i: ws.store.path_for(sha[i]).read_bytes() for i in victims}
    for i in victims:
        flip(ws.store.path_for(sha[i]))

    def refused(message: str) -> None:
        r = export(cat, "1.0.0")
        assert r.exit_code == 1, r.output
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert message in " ".join(r.stderr.split())
        assert not (ws.exports / "mpox" / "1.0.0").exists()
        with ws.session() as s:
            assert [v.version for v in s.exec(select(DatasetVersionRecord)).all()] == ["0.9.0"]
        assert not list(ws.tmp.rglob("*.part"))

    a, b = sorted(victims)
    refused(
        f"2 originals are damaged (SHA-256 differs): image {a} ({where[a]}), image {b} ({where[b]}): "
        "restore them from a backup, or re-ingest their files"
    )
    web1 = cat.ids_by_name["web1"]
    os.chmod(ws.store.path_for(sha[web1]), 0o600)  # restored from a backup
    ws.store.path_for(sha[web1]).write_bytes(good[web1])
    p03 = cat.ids_by_name["P03_0"]
    refused(
        f"original of image {p03} is damaged ({where[p03]}: SHA-256 differs): "
        "restore it from a backup, or re-ingest its file"
    )

    # Re-ingesting its folder writes the original again; the export then seals the same pixels as before.
    clinic = ws.root.parent / "incoming" / "clinic"
    r = ingest(clinic, ws.root, "--case-id-pattern", r"(?P<case>P\d+)/", "--json")
    assert json.loads(r.stdout)["restored"] == 1
    assert ws.store.path_for(sha[p03]).read_bytes() == good[p03]
    r = export(cat, "1.0.0")
    assert r.exit_code == 0, r.output
    version = DatasetVersion.open(json.loads(r.stdout)["path"])
    version.verify()
    rendered = {row["image_id"]: row["sha256"] for row in version.rows}
    assert rendered[str(p03)] == clean[str(p03)] and rendered[str(web1)] == clean[str(web1)]
    assert rendered == {k: v for k, v in clean.items() if k in rendered}
