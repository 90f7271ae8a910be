"""Exports built from a real catalogue: groups, stratification, bytes, metadata, ROI, card, checksums."""

import filecmp
import hashlib
import json
import re
import shutil
import tarfile
from collections import Counter, defaultdict

import numpy as np
import pytest
from PIL import Image
from sqlmodel import select
from test_export_fixtures import build_catalogue, jpeg_markers, oriented

from curate.dataset import SPLITS, DatasetError, DatasetVersion, split_counts
from curate.export import ExportError, ExportOptions, ImageSpec, export_version, list_versions
from curate.export.images import roi_region, union_box
from curate.export.manifest import read_manifest
from db.models.export import DatasetVersionRecord
from db.models.label import Consensus

SPEC = ImageSpec(size=(64, 64))


def opts(version="1.0.0", **kw):
    kw.setdefault("spec", SPEC)
    kw.setdefault("external_sources", ("kaggle",))
    return ExportOptions(name="mpox", version=version, **kw)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    cat = build_catalogue(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            "curate.export.plan.cluster_map", lambda s: {**{i: f"img{i}" for i in range(1, 10_000)}, **cat.clusters}
        )
        result = export_version(cat.ws, opts(workers=2))
        yield cat, result, mp


def test_layout_manifest_and_reader(built):
    cat, result, _ = built
    assert result.status == "written" and result.images == 70 and result.path == cat.ws.exports / "mpox" / "1.0.0"
    ds = DatasetVersion.open("mpox@1.0.0", workspace=cat.ws.root)
    ds.verify()
    assert ds.checksum == result.checksum and ds.classes == ["mpox", "non_mpox"] and ds.meta["folds"] == 5
    assert ds.meta["image_size"] == [64, 64] and ds.meta["resize_policy"] == "stretch" and ds.meta["parent"] is None
    rows = ds.rows
    assert [r["file"] for r in rows] == sorted(r["file"] for r in rows)
    for r in rows:
        assert re.fullmatch(rf"{r['split']}/{r['label']}/img\d{{6}}\.jpg", r["file"])
        assert hashlib.sha256((ds.path / r["file"]).read_bytes()).hexdigest() == r["sha256"]
        assert r["roi_file"] == (f"roi/{r['file']}" if r["roi_box"] else "")
    assert {r["source"] for r in rows if r["split"] == "external"} >= {"kaggle"}
    assert all(r["split"] == "external" for r in rows if r["source"] == "kaggle")
    assert len(ds.samples("train", fold=0)) + len(ds.samples("train", exclude_fold=0)) == len(ds.samples("train"))
    # No patient or path information in any file name.
    names = [p.name for p in ds.path.rglob("*")]
    assert not any(re.search(r"P\d\d|web|kag|clinic", n) for n in names)
    with cat.ws.session() as s:
        rec = s.exec(select(DatasetVersionRecord)).one()
    assert (rec.name, rec.version, rec.checksum, rec.images) == ("mpox", "1.0.0", result.checksum, 70)


def test_no_group_straddles_splits_or_folds(built):
    cat, result, _ = built
    rows = read_manifest(result.path / "manifest.csv")
    place = {int(r["image_id"]): (r["split"], r["fold"]) for r in rows}
    by_cluster, by_case = defaultdict(set), defaultdict(set)
    for r in rows:
        by_cluster[r["cluster"]].add(place[int(r["image_id"])])
        case = cat.case_of.get(int(r["image_id"]))
        if case:
            by_case[case].add(place[int(r["image_id"])])
    assert all(len(p) == 1 for p in by_cluster.values()) and all(len(p) == 1 for p in by_case.values())
    multi = [c for c, n in Counter(cat.case_of.values()).items() if n > 1]
    assert len(multi) >= 10  # the fixture really has several photos per case
    # The web/clinic near-duplicates share a cluster (and so a place); the kaggle twin pulled web_kdup to external.
    ids = cat.ids_by_name
    assert place[ids["web0"]] == place[ids["P01_dup"]] == place[ids["P01_0"]]
    assert place[ids["web_kdup"]] == ("external", "") and result.pulled_external == 1


def test_stratification_within_tolerance(built):
    _, result, _ = built
    rows = read_manifest(result.path / "manifest.csv")
    pool = [r for r in rows if r["split"] != "external"]
    for cls in ("mpox", "non_mpox"):
        n = sum(r["label"] == cls for r in pool)
        t = sum(r["label"] == cls and r["split"] == "test" for r in pool)
        assert abs(t / n - 0.2) <= 0.1  # 13 mpox images in 7 cases/clusters: one group is 8 points
    assert result.max_deviation_pp < 10
    for b in result.bins:
        assert b["images"] > 0 and all(f > 0 for f in b["per_class"].values())


def test_metadata_absent_from_every_exported_jpeg(built):
    _, result, _ = built
    jpgs = sorted(result.path.rglob("*.jpg"))
    assert len(jpgs) == result.images + result.roi_images
    for p in jpgs:
        data = p.read_bytes()
        assert set(jpeg_markers(data)) <= {0xE0, 0xDB, 0xC0, 0xC4, 0xDA}, p
        assert b"Exif" not in data and b"xmpmeta" not in data and b"ICC_PROFILE" not in data and b"patient" not in data
        with Image.open(p) as im:
            assert im.size == (64, 64) and im.mode == "RGB" and not im.getexif()


def test_roi_crops_match_the_boxes(built):
    cat, result, _ = built
    rows = [r for r in read_manifest(result.path / "manifest.csv") if r["roi_file"]]
    assert len(rows) == result.roi_images >= 20
    errors, wrong = [], []
    for r in rows:
        image_id = int(r["image_id"])
        with cat.ws.session() as s:
            from db.models import Image as ImageRow

            im = s.get(ImageRow, image_id)
        region = roi_region(union_box(cat.boxes[image_id]), 0.1, im.width, im.height)
        assert r["roi_box"] == " ".join(map(str, region))
        original = oriented(cat.ws.store.path_for(im.sha256))
        expected = original.crop(region).resize((64, 64), Image.Resampling.BICUBIC)
        whole = original.resize((64, 64), Image.Resampling.BICUBIC)
        with Image.open(result.path / r["roi_file"]) as got:
            got = np.asarray(got, dtype=np.int16)
        errors.append(np.abs(got - np.asarray(expected, dtype=np.int16)).mean())
        wrong.append(np.abs(got - np.asarray(whole, dtype=np.int16)).mean())
    assert max(errors) < 8 and np.mean(errors) * 2 < np.mean(wrong)


def test_card_counts_equal_the_manifest(built):
    _, result, _ = built
    rows = read_manifest(result.path / "manifest.csv")
    card = (result.path / "README.md").read_text()
    by_split = split_counts(rows)
    for cls in sorted({r["label"] for r in rows}):
        per = [by_split.get(s, {}).get(cls, 0) for s in SPLITS]
        assert f"| {cls} | {' | '.join(map(str, per))} | {sum(per)} |" in card
    assert (
        f"| **total** | {sum(r['split'] == 'train' for r in rows)} | {sum(r['split'] == 'test' for r in rows)} | "
        in card
    )
    for status, n in {"pending": 1, "discarded": 1, "excluded": 1}.items():
        assert f"| {status} | {n} |" in card
    for reason in ("not_assessable", "identifiable_features", "discarded", "pending"):  # one labelled image each
        assert f"| {reason} | 1 |" in card
    assert "Cohen's kappa" in card and "Seed 0" in card and "kaggle" in card and "First version" in card
    assert json.loads((result.path / "dataset.json").read_text())["created_at"] in card


def test_tampered_file_fails_verification(built, tmp_path):
    _, result, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(result.path, copy)
    ds = DatasetVersion.open(copy)
    ds.verify()
    victim = copy / ds.samples("test")[0].path.relative_to(copy)
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"1 changed \(test/"):
        ds.verify()


@pytest.mark.torch
@pytest.mark.slow  # importing torchvision takes seconds
def test_imagefolder_loads_each_split(built):
    datasets = pytest.importorskip("torchvision.datasets")
    _, result, _ = built
    rows = read_manifest(result.path / "manifest.csv")
    for split in ("train", "test", "external"):
        for prefix, key in (("", "file"), ("roi/", "roi_file")):
            expected = [r for r in rows if r["split"] == split and r[key]]
            if not expected:
                continue
            ds = datasets.ImageFolder(str(result.path / prefix / split))
            assert len(ds) == len(expected)
            got = {(p.split("/")[-1], ds.classes[t]) for p, t in ds.samples}
            assert got == {(r[key].split("/")[-1], r["label"]) for r in expected}
            img, _target = ds[0]
            assert img.size == (64, 64)


def test_same_version_same_content_is_recognised_and_different_content_refused(built):
    cat, result, _ = built
    again = export_version(cat.ws, opts())
    assert again.status == "exists" and again.checksum == result.checksum
    with pytest.raises(ExportError, match="already exists with different content") as refused:
        export_version(cat.ws, opts(seed=1))
    # what differs, and a version number to use: before, "different content" alone
    said = " ".join(str(refused.value).split())
    assert re.search(r"\(a build now: \d+ images moved; settings changed: seed\)", said), said
    assert "relabeled" not in said and re.search(r"\(1\.\d+\.\d+ is free\)", said)
    with cat.ws.session() as s:
        assert len(s.exec(select(DatasetVersionRecord)).all()) == 1


def test_a_refused_version_says_which_images_changed(built):
    cat, result, _ = built
    victim = next(r for r in read_manifest(result.path / "manifest.csv") if r["label"] == "non_mpox")
    with cat.ws.session() as s:
        s.get(Consensus, int(victim["image_id"])).diagnosis = "mpox"
    try:
        with pytest.raises(ExportError, match="already exists with different content") as refused:
            export_version(cat.ws, opts())
        said = str(refused.value)
        assert "a build now: " in said and "1 image relabeled" in said and "settings changed" not in said
    finally:
        with cat.ws.session() as s:
            s.get(Consensus, int(victim["image_id"])).diagnosis = victim["diagnosis"]


def test_byte_identical_reexport_regardless_of_workers(built, tmp_path):
    cat, result, _ = built
    keep = tmp_path / "first"
    shutil.copytree(result.path, keep)
    # Forget the version (folder and record), rebuild it single-process from the same catalogue state.
    shutil.rmtree(result.path)
    with cat.ws.session() as s:
        s.delete(s.exec(select(DatasetVersionRecord)).one())
    again = export_version(cat.ws, opts(workers=1))
    assert again.status == "written" and again.checksum == result.checksum
    cmp = filecmp.dircmp(keep, again.path)
    files = [p.relative_to(keep) for p in keep.rglob("*") if p.is_file()]
    assert all((keep / f).read_bytes() == (again.path / f).read_bytes() for f in files)
    assert not cmp.left_only and not cmp.right_only


def test_archive_is_deterministic_and_holds_the_version(built):
    cat, result, _ = built
    first = export_version(cat.ws, opts(archive=True))
    assert first.archive.is_file() and first.archive.name == "mpox-1.0.0.tar"
    digest = first.archive_sha256
    first.archive.unlink()
    first.archive.with_name(first.archive.name + ".sha256").unlink()
    second = export_version(cat.ws, opts(archive=True))
    assert second.archive_sha256 == digest == hashlib.sha256(second.archive.read_bytes()).hexdigest()
    with tarfile.open(second.archive) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        assert members["mpox-1.0.0/SHA256SUMS"].mtime > 0 and {m.uid for m in members.values()} == {0}
        assert tar.extractfile("mpox-1.0.0/SHA256SUMS").read() == (result.path / "SHA256SUMS").read_bytes()
        assert len(members) == sum(1 for p in result.path.rglob("*") if p.is_file())
    with cat.ws.session() as s:
        assert s.exec(select(DatasetVersionRecord)).one().archive_sha256 == digest


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # rdflib, inside mlcroissant
def test_croissant_validates_with_mlcroissant(built):
    mlc = pytest.importorskip("mlcroissant")
    _, result, _ = built
    ds = mlc.Dataset(str(result.path / "croissant.json"))
    records = list(ds.records("manifest"))
    assert len(records) == result.images
    assert {r["manifest/file"].decode() for r in records} == {
        r["file"] for r in read_manifest(result.path / "manifest.csv")
    }


def test_new_version_with_relabel_records_parent_and_changes(built):
    cat, result, _ = built
    rows = read_manifest(result.path / "manifest.csv")
    victim = next(r for r in rows if r["label"] == "non_mpox" and r["split"] == "train")
    with cat.ws.session() as s:
        c = s.get(Consensus, int(victim["image_id"]))
        c.diagnosis = "mpox"
    try:
        v2 = export_version(cat.ws, opts(version="1.1.0"))
        ds = DatasetVersion.open(v2.path)
        assert ds.meta["parent"] == "1.0.0"
        card = (v2.path / "README.md").read_text()
        assert "Parent version: 1.0.0" in card and re.search(r"0 added, 0 removed, 1 relabeled, \d+ moved", card)
        assert [r.version for r in list_versions(cat.ws, "mpox")] == ["1.0.0", "1.1.0"]
        from curate.export import diff_versions

        d = diff_versions(cat.ws, "mpox@1.0.0", "mpox@1.1.0")
        assert d.relabeled[0] == (victim["image_id"], f"non_mpox/{victim['diagnosis']}", "mpox/mpox")
        assert not d.added and not d.removed
    finally:
        with cat.ws.session() as s:
            s.get(Consensus, int(victim["image_id"])).diagnosis = victim["diagnosis"]


def test_diagnosis_task(built):
    cat, _, _ = built
    r = export_version(
        cat.ws,
        ExportOptions(
            name="mpox-dx",
            version="1.0.0",
            task="diagnosis",
            spec=SPEC,
            folds=2,
            test_fraction=0.25,
            external_sources=("kaggle",),
        ),
    )
    ds = DatasetVersion.open(r.path)
    assert (
        ds.task == "diagnosis"
        and "mpox" in ds.classes
        and "genital_warts" in ds.classes
        and "not_assessable" not in ds.classes
    )
    assert all(row["label"] == row["diagnosis"] for row in ds.rows)


def test_real_dedupe_clusters_keep_near_duplicates_together(tmp_path):
    """With the dedupe stage's own clusters (no patching): re-encoded copies share a cluster and a place."""
    from curate.dedupe.run import DedupeOptions, run_dedupe

    cat = build_catalogue(tmp_path)
    run_dedupe(cat.ws, DedupeOptions(min_side=16, workers=1))
    r = export_version(cat.ws, opts())
    rows = {int(row["image_id"]): row for row in read_manifest(r.path / "manifest.csv")}
    ids = cat.ids_by_name
    a, b = rows[ids["web0"]], rows[ids["P01_dup"]]
    assert a["cluster"] == b["cluster"] and (a["split"], a["fold"]) == (b["split"], b["fold"])
    k, w = rows[ids["kag0"]], rows[ids["web_kdup"]]
    assert k["cluster"] == w["cluster"] and w["split"] == "external" and r.pulled_external >= 1
    places = defaultdict(set)
    for row in rows.values():
        places[row["cluster"]].add((row["split"], row["fold"]))
    assert all(len(p) == 1 for p in places.values())


def test_export_on_each_catalogue_backend(tmp_path, db_url):
    """The same export from SQLite and from PostgreSQL (the suite's real server)."""
    cat = build_catalogue(tmp_path, db_url=db_url)
    r = export_version(cat.ws, opts(workers=1))
    ds = DatasetVersion.open(r.path)
    ds.verify()
    assert r.images == 70 and {row["split"] for row in ds.rows} == {"train", "test", "external"}
    assert [v.version for v in list_versions(cat.ws)] == ["1.0.0"]


def test_card_reports_cohens_kappa_from_the_label_stage(tmp_path):
    """Per-rater annotations in the label stage's tables give the card a real kappa."""
    from sklearn.metrics import cohen_kappa_score

    from db.models.label import LabelAnnotation, LabelProject, LabelRound, LabelTask

    cat = build_catalogue(tmp_path)
    raters = ["a@clinic.example", "b@clinic.example"]
    pairs = []
    with cat.ws.session() as s:
        rnd = LabelRound(kind="rating", name="r1", raters=json.dumps(raters), server_url="http://127.0.0.1:1")
        s.add(rnd)
        s.flush()
        projects = [LabelProject(round_id=rnd.id, rater=r, ls_project_id=n + 1) for n, r in enumerate(raters)]
        s.add_all(projects)
        s.flush()
        consensus = sorted(
            s.exec(select(Consensus).where(Consensus.diagnosis.is_not(None))).all(), key=lambda c: c.image_id
        )
        for n, c in enumerate(consensus):
            second = c.diagnosis if n % 4 else ("mpox" if c.diagnosis != "mpox" else "genital_herpes")
            pairs.append((c.diagnosis, second))
            for p, diagnosis in zip(projects, (c.diagnosis, second), strict=False):
                task = LabelTask(project_id=p.id, image_id=c.image_id, ls_task_id=1000 * p.id + n)
                s.add(task)
                s.flush()
                s.add(
                    LabelAnnotation(
                        task_id=task.id,
                        ls_annotation_id=task.ls_task_id,
                        rater=p.rater,
                        diagnosis=diagnosis,
                        content_sha256="0" * 64,
                        raw="{}",
                    )
                )
    r = export_version(cat.ws, opts())
    card = (r.path / "README.md").read_text()
    expected = cohen_kappa_score([a for a, _ in pairs], [b for _, b in pairs])
    m = re.search(r"Cohen's kappa between the first two raters: ([0-9.]+) over (\d+) doubly-rated images", card)
    assert m, card
    assert abs(float(m.group(1)) - expected) < 0.002 and int(m.group(2)) == len(pairs)


def test_pairs_left_to_review_stay_in_one_split_and_are_said(tmp_path):
    """Dedupe leaves near-threshold pairs to the steward, in two clusters: until someone decides, either could be
    a copy of the other, so each pair shares one split and fold; the card and the result say how many."""
    from curate.dedupe.run import DedupeOptions, run_dedupe
    from db.models import DedupeOverride, DedupePair

    cat = build_catalogue(tmp_path)
    run_dedupe(cat.ws, DedupeOptions(min_side=16, workers=1))
    with cat.ws.session() as s:
        statuses = dict(s.exec(select(Consensus.image_id, Consensus.status)).all())
        ids = sorted(i for i, status in statuses.items() if status in ("agreed", "adjudicated"))
    pairs = [(ids[k], ids[k + 1]) for k in range(0, 24, 2)]  # 12 pairs the hashes might have sent to review
    with cat.ws.session() as s:
        for a, b in pairs:
            s.add(DedupePair(image_a=a, image_b=b, kind="review", similarity=0.9, reason="near the threshold"))
        s.add(DedupeOverride(image_a=ids[30], image_b=ids[31], action="split", note="different photos"))
        s.add(DedupePair(image_a=ids[30], image_b=ids[31], kind="review", similarity=0.9, reason="decided"))
    r = export_version(cat.ws, opts())
    rows = {int(row["image_id"]): row for row in read_manifest(r.path / "manifest.csv")}
    together = [(a, b) for a, b in pairs if a in rows and b in rows]
    assert len(together) >= 10
    for a, b in together:
        assert (rows[a]["split"], rows[a]["fold"]) == (rows[b]["split"], rows[b]["fold"]), (a, b)
    assert r.undecided_pairs == len(together)  # the steward's split pair is decided: not counted
    card = (r.path / "README.md").read_text()
    assert f"{len(together)} pair(s) of exported images that dedupe left to review were kept in one split" in card


def test_a_version_edited_and_sealed_again_is_refused_by_export_and_diff(tmp_path, monkeypatch):
    """Before: an image moved to another class folder, its manifest row edited and SHA256SUMS made anew; the same
    `curate export` said "exists … nothing changed", and `curate diff` showed the edit as a real relabel."""
    import hashlib

    from curate.export import diff_versions

    cat = build_catalogue(tmp_path)
    monkeypatch.setattr(
        "curate.export.plan.cluster_map", lambda s: {**{i: f"img{i}" for i in range(1, 10_000)}, **cat.clusters}
    )
    first = export_version(cat.ws, opts(workers=1))
    second = export_version(cat.ws, opts("1.0.1", workers=1))
    folder = first.path
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o700 if p.is_dir() else 0o600)
    manifest = folder / "manifest.csv"
    manifest.write_text(manifest.read_text() + "\n")  # any edit: the manifest's bytes change
    sums = folder / "SHA256SUMS"
    sums.write_text(
        "".join(
            f"{hashlib.sha256((folder / name).read_bytes()).hexdigest()}  {name}\n"
            for name in (line.split("  ", 1)[1].strip() for line in sums.read_text().splitlines())
        )
    )
    with pytest.raises(ExportError, match=r"mpox@1.0.0 was changed since `curate export` wrote it") as err:
        export_version(cat.ws, opts(workers=1))
    assert "aside and run the same export again" in str(err.value) and first.checksum[:12] in str(err.value)
    with pytest.raises(ExportError, match="was changed since"):
        diff_versions(cat.ws, "mpox@1.0.0", "mpox@1.0.1")
    assert diff_versions(cat.ws, "mpox@1.0.1", str(second.path)) is not None  # untouched versions still compare
    shutil.move(folder, tmp_path / "aside")  # as the message says: the same export rebuilds it, as recorded
    assert export_version(cat.ws, opts(workers=1)).checksum == first.checksum
