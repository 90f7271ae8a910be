"""A new version keeps its parent's splits and folds (no train/test leakage across versions), on a real catalogue."""

import json
import shutil

import pytest
from sqlmodel import select
from test_export_fixtures import build_catalogue, jpeg_with_metadata, pattern

from curate.dataset import DatasetVersion
from curate.errors import ExportError
from curate.export import ExportOptions, ImageSpec, diff_versions, export_version
from curate.export.manifest import read_manifest
from curate.export.splits import MOVE_CONFLICT
from curate.intake.ingest import IngestOptions, ingest_folder
from db.models import Provenance
from db.models.export import DatasetVersionRecord
from db.models.label import Consensus

SPEC = ImageSpec(size=(32, 32))


def opts(version, **kw):
    return ExportOptions(name="mpox", version=version, spec=SPEC, external_sources=("kaggle",), workers=1, **kw)


def places(path):
    return {int(r["image_id"]): (r["split"], r["fold"]) for r in read_manifest(path / "manifest.csv")}


@pytest.fixture
def cat(tmp_path, monkeypatch):
    cat = build_catalogue(tmp_path)
    clusters = dict(cat.clusters)
    monkeypatch.setattr(
        "curate.export.plan.cluster_map", lambda s: {**{i: f"img{i}" for i in range(1, 10_000)}, **clusters}
    )
    cat.cluster_overrides = clusters  # tests edit this dict to merge clusters
    return cat


def add_labelled(cat, tmp_path, files):
    """Ingest new clinic photos (relative path -> diagnosis) and agree their labels; return stem -> image id."""
    folder = tmp_path / "incoming-2"
    for n, rel in enumerate(files):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(jpeg_with_metadata(pattern(120, 90, 9000 + n)))
    ingest_folder(
        cat.ws,
        folder,
        IngestOptions(
            source="clinic", kind="clinic", licence="clinic-consent", case_id_pattern=r"(?P<case>P\d+)/", workers=1
        ),
    )
    ids = {}
    with cat.ws.session() as s:
        for rel, diagnosis in files.items():
            image_id = s.exec(select(Provenance.image_id).where(Provenance.locator == rel)).one()
            ids[rel.split("/")[-1].split(".")[0]] = image_id
            s.add(
                Consensus(
                    image_id=image_id,
                    status="agreed",
                    diagnosis=diagnosis,
                    method="unanimous",
                    n_raters=2,
                    agreement=1.0,
                    boxes="[]",
                )
            )
    return ids


def test_new_version_keeps_parent_places_and_deals_only_new_groups(cat, tmp_path):
    v1 = export_version(cat.ws, opts("1.0.0"))
    before = places(v1.path)
    new = add_labelled(
        cat, tmp_path, {"P05/P05_new.jpg": "mpox", "P77/P77_0.jpg": "mpox", "P78/P78_0.jpg": "genital_warts"}
    )
    v2 = export_version(cat.ws, opts("1.1.0"))
    after = places(v2.path)
    assert v2.images == v1.images + 3 and v2.parent == "1.0.0" and not v2.reshuffle
    assert all(after[i] == p for i, p in before.items())  # every 1.0.0 image: same split, same fold
    assert v2.moved == [] and v2.kept == len(before)
    case_p05 = [i for i, c in cat.case_of.items() if c.endswith(":P05")]
    assert case_p05 and after[new["P05_new"]] == before[case_p05[0]]  # the newcomer joins its case's place
    assert after[new["P77_0"]][0] in ("train", "test") and after[new["P78_0"]][0] in ("train", "test")
    d = diff_versions(cat.ws, "mpox@1.0.0", "mpox@1.1.0")
    assert d.moved == [] and sorted(map(int, d.added)) == sorted(new.values())
    card = (v2.path / "README.md").read_text()
    assert (
        "Stable across versions" in card
        and f"Splits: {len(before)} of the parent's images kept their split and fold" in card
    )
    assert "No image of the parent moved" in card
    meta = json.loads((v2.path / "dataset.json").read_text())
    assert meta["reshuffle"] is False and meta["parent"] == "1.0.0"
    assert "reshuffle" not in json.loads((v1.path / "dataset.json").read_text())  # a first version is as before
    # Same catalogue state, seed and parent: a byte-identical rebuild.
    keep = tmp_path / "v2"
    shutil.copytree(v2.path, keep)
    shutil.rmtree(v2.path)
    with cat.ws.session() as s:
        s.delete(s.exec(select(DatasetVersionRecord).where(DatasetVersionRecord.version == "1.1.0")).one())
    again = export_version(cat.ws, opts("1.1.0"))
    assert again.status == "written" and again.checksum == v2.checksum and again.fingerprint == v2.fingerprint
    assert all(
        (keep / p.relative_to(again.path)).read_bytes() == p.read_bytes() for p in again.path.rglob("*") if p.is_file()
    )


def test_merged_groups_with_conflicting_parent_places_move_deterministically_and_are_reported(cat):
    v1 = export_version(cat.ws, opts("1.0.0"))
    before = places(v1.path)
    rows = {int(r["image_id"]): r for r in read_manifest(v1.path / "manifest.csv")}
    web = {i for i, r in rows.items() if r["source"] == "web" and i not in cat.clusters and i not in cat.case_of}
    a = min(i for i in web if before[i][0] == "train")
    # of one diagnosis: copies labelled differently have no consensus and are left out (test_cli_export)
    b = min(i for i in web if before[i][0] == "test" and rows[i]["diagnosis"] == rows[a]["diagnosis"])
    cat.cluster_overrides.update({a: "c-merged", b: "c-merged"})  # a steward merged two clusters
    v2 = export_version(cat.ws, opts("1.1.0"))
    after = places(v2.path)
    # One train and one test image: a tie goes to test, so no former test image becomes training data.
    assert after[a] == after[b] == ("test", "")
    assert v2.moved == [{"image_id": a, "from": f"train/fold{before[a][1]}", "to": "test", "reason": MOVE_CONFLICT}]
    assert all(after[i] == p for i, p in before.items() if i != a)
    d = diff_versions(cat.ws, "mpox@1.0.0", "mpox@1.1.0")
    assert d.moved == [(str(a), f"train/fold{before[a][1]}", "test")]
    card = (v2.path / "README.md").read_text()
    assert (
        "1 image(s) of the parent moved" in card
        and f"| {a} | train/fold{before[a][1]} | test | {MOVE_CONFLICT} |" in card
    )


def test_reshuffle_ignores_the_parent_and_says_so(cat, tmp_path):
    export_version(cat.ws, opts("1.0.0"))
    add_labelled(cat, tmp_path, {"P77/P77_0.jpg": "mpox", "P78/P78_0.jpg": "genital_warts"})
    kept = export_version(cat.ws, opts("1.1.0"))
    shuffled = export_version(cat.ws, opts("1.2.0", parent="1.0.0", reshuffle=True))
    scratch = export_version(
        cat.ws, ExportOptions(name="scratch", version="1.0.0", spec=SPEC, external_sources=("kaggle",), workers=1)
    )
    assert places(shuffled.path) == places(scratch.path)  # the from-scratch deal
    assert places(shuffled.path) != places(kept.path)
    assert shuffled.reshuffle and shuffled.moved == [] and shuffled.fingerprint != kept.fingerprint
    ds = DatasetVersion.open(shuffled.path)
    assert ds.meta["reshuffle"] is True and ds.meta["parent"] == "1.0.0"
    card = (shuffled.path / "README.md").read_text()
    assert "Splits dealt afresh (`--reshuffle`)" in card and "Stable across versions" not in card


def test_versions_whose_folders_were_deleted_are_passed_over_as_parents(cat, tmp_path):
    """`curate status` advises deleting the folders of versions that hold a photo flagged identifiable since.
    Before, the next export then failed for good: "parent version mpox@1.1.0 does not exist", `--reshuffle` too."""
    v1 = export_version(cat.ws, opts("1.0.0"))
    v11 = export_version(cat.ws, opts("1.1.0"))
    shutil.rmtree(v11.path)
    v2 = export_version(cat.ws, opts("2.0.0"))
    assert v2.parent == "1.0.0" and v2.parents_gone == ["1.1.0"] and places(v2.path) == places(v1.path)
    assert v2.as_dict()["parents_gone"] == ["1.1.0"]
    with pytest.raises(ExportError, match=r"mpox@1\.1\.0 does not exist .*its folder was deleted.*another --parent"):
        export_version(cat.ws, opts("2.1.0", parent="1.1.0"))
    (v2.path / "manifest.csv").chmod(0o600)
    (v2.path / "manifest.csv").unlink()  # damaged, not deleted: refused, as before (its splits are unknown)
    with pytest.raises(ExportError, match=r"mpox@2\.0\.0 under .* has no manifest\.csv"):
        export_version(cat.ws, opts("2.2.0"))
    for v in (v1, v2):
        shutil.rmtree(v.path)
    v3 = export_version(cat.ws, opts("3.0.0", reshuffle=True))
    assert v3.parent is None and v3.parents_gone == ["2.0.0", "1.1.0", "1.0.0"] and v3.images == v1.images
