"""The dataset-version reader: open, verify, samples."""

import json

import pytest
from train_fixtures import write_export, write_sums

from curate.dataset import DatasetError, DatasetVersion
from curate.errors import CurateError


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    root = tmp_path_factory.mktemp("ws")
    return root, write_export(root, roi_every=2)


def test_open_by_path_and_by_name_version(export, monkeypatch):
    root, path = export
    a = DatasetVersion.open(path)
    b = DatasetVersion.open("mpox@1.0.0", workspace=root)
    monkeypatch.setenv("CURATE_WORKSPACE", str(root))
    c = DatasetVersion.open("mpox@1.0.0")
    assert a.checksum == b.checksum == c.checksum and len(a.checksum) == 64
    assert (a.name, a.version, a.task, a.classes) == ("mpox", "1.0.0", "binary", ["mpox", "non_mpox"])
    assert a.meta["folds"] == 5
    a.verify()


def test_samples_per_split_and_fold(export):
    ds = DatasetVersion.open(export[1])
    train = ds.samples("train")
    assert len(train) == 26 and {s.split for s in train} == {"train"}
    for k in range(5):
        val, rest = ds.samples("train", fold=k), ds.samples("train", exclude_fold=k)
        assert {s.fold for s in val} == {k} and k not in {s.fold for s in rest}
        assert len(val) + len(rest) == 26
    test = ds.samples("test")
    assert len(test) == 8 and all(s.fold is None for s in test)
    s = test[0]
    assert s.path.is_file() and s.target == ds.classes.index(s.label) and len(s.sha256) == 64
    roi = ds.samples("test", roi=True)
    assert 0 < len(roi) < len(test)  # every 2nd image has a box
    assert all("/roi/" in r.path.as_posix() and r.path.is_file() for r in roi)
    assert len(ds.samples()) == 42
    with pytest.raises(DatasetError, match="unknown split"):
        ds.samples("validation")


def test_verify_catches_tampered_missing_and_extra(tmp_path):
    path = write_export(tmp_path)
    ds = DatasetVersion.open(path)
    victim = path / ds.samples("test")[0].path.relative_to(path)
    data = bytearray(victim.read_bytes())
    data[200] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"1 changed \(test/"):
        ds.verify()
    victim.unlink()
    (path / "train" / "mpox" / "stray.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError) as exc:
        ds.verify()
    msg = str(exc.value)
    assert "1 missing" in msg and "1 extra (train/mpox/stray.jpg)" in msg and "\n" not in msg
    assert isinstance(exc.value, CurateError)


def test_open_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        DatasetVersion.open(tmp_path / "nope")
    with pytest.raises(DatasetError, match="not found"):
        DatasetVersion.open("mpox@9.9.9", workspace=tmp_path)
    path = write_export(tmp_path)
    (path / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        DatasetVersion.open(path)
    (path / "dataset.json").write_text(
        json.dumps({"name": "x", "version": "1", "task": "binary", "classes": ["b", "a"]})
    )
    with pytest.raises(DatasetError, match="sorted"):
        DatasetVersion.open(path)
    (path / "SHA256SUMS").unlink()
    with pytest.raises(DatasetError, match="SHA256SUMS is missing"):
        DatasetVersion.open(path)


@pytest.mark.parametrize("fold", ["", "\u00b2", "\u0663"], ids=["empty", "superscript-two", "arabic-indic-three"])
def test_manifest_must_follow_contract(tmp_path, fold):
    """Before: a hand-edited fold "²" passed str.isdigit and int() then stopped the reader with a ValueError."""
    path = write_export(tmp_path)
    text = (path / "manifest.csv").read_text()
    (path / "manifest.csv").write_text(text.replace(",train,0,", f",train,{fold},", 1))
    write_sums(path)
    with pytest.raises(DatasetError, match="needs a fold"):
        DatasetVersion.open(path)


def _edit_manifest(path, edit) -> None:
    """Rewrite manifest.csv through `edit(rows) -> rows` (dicts) and seal the version again, as a hand edit would."""
    import csv

    with open(path / "manifest.csv", newline="") as f:
        reader = csv.DictReader(f)
        columns, rows = reader.fieldnames, list(reader)
    with open(path / "manifest.csv", "w", newline="") as f:
        out = csv.DictWriter(f, columns, lineterminator="\n")
        out.writeheader()
        out.writerows(edit(rows))
    write_sums(path)


def _first(rows, split):
    return next(r for r in rows if r["split"] == split)


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda rows: [{**rows[0], "file": "/etc/hostname"}, *rows[1:]], "line 2: file '/etc/hostname' is not train/"),
        (lambda rows: [{**rows[0], "file": "../../outside.jpg"}, *rows[1:]], "is not train/mpox/<name> inside"),
        (
            lambda rows: [{**rows[0], "file": rows[0]["file"].replace("/mpox/", "/non_mpox/")}, *rows[1:]],
            "line 2: file",
        ),
        (lambda rows: [{**rows[0], "label": "non_mpox"}, *rows[1:]], "is not train/non_mpox/<name>"),
        (lambda rows: [*rows, {**_first(rows, "test"), "split": "train", "fold": "0"}], "is listed already on line"),
        (lambda rows: [*rows, rows[3]], "file 'train/"),
        (lambda rows: [{**r, "roi_file": "roi/../x.jpg" if r["roi_file"] else ""} for r in rows], "roi_file"),
        (lambda rows: [{**r, "roi_box": "abc def" if r["roi_box"] else ""} for r in rows], "roi_box must be four"),
        (lambda rows: [{**r, "roi_box": "1 2 3" if r["roi_box"] else ""} for r in rows], "got '1 2 3'"),
        (lambda rows: [{**r, "roi_box": "5 5 1 9" if r["roi_box"] else ""} for r in rows], "x0 < x1"),
        (lambda rows: [{**r, "roi_box": "nan 0 1 1" if r["roi_box"] else ""} for r in rows], "roi_box"),
        (lambda rows: [{**r, "fold": "9" * 5000} if r["split"] == "train" else r for r in rows], "needs a fold"),
    ],
    ids=[
        "absolute",
        "dot-dot",
        "other-folder",
        "other-label",
        "test-image-in-train",
        "twice",
        "roi-outside",
        "box-words",
        "box-three",
        "box-inverted",
        "box-nan",
        "fold-5000-digits",
    ],
)
def test_a_manifest_edited_and_sealed_again_is_refused_naming_its_line(tmp_path, edit, said):
    """Rows that leave the version (read from anywhere, the name carried into a run's outputs), that put an
    image under another label's folder, or list one image twice (a test image also in train) are refused
    when the version is opened, though SHA256SUMS was made anew to match."""
    path = write_export(tmp_path, roi_every=2)
    _edit_manifest(path, edit)
    with pytest.raises(DatasetError, match="manifest.csv line") as caught:
        DatasetVersion.open(path)
    assert said in str(caught.value), caught.value


def test_an_image_swapped_and_sealed_again_no_longer_matches_its_manifest_row(tmp_path):
    """Another image copied over one, SHA256SUMS made anew: the files match the sums, but not the manifest's
    digest of that row, so no training reads a test image in a train image's place."""
    path = write_export(tmp_path)
    rows = (path / "manifest.csv").read_text().splitlines()
    train_file, test_file = (
        next(r.split(",")[0] for r in rows[1:] if f",{split}," in r) for split in ("train", "test")
    )
    (path / train_file).write_bytes((path / test_file).read_bytes())
    write_sums(path)
    ds = DatasetVersion.open(path)
    with pytest.raises(DatasetError, match=rf"sha256 of {train_file} is not the one SHA256SUMS gives its file"):
        ds.verify()


def _first_size(meta, size):
    sizes = dict(meta["original_sizes"])
    sizes[next(iter(sizes))] = size
    return {"original_sizes": sizes}


@pytest.mark.parametrize(
    ("meta", "said"),
    [
        (lambda m: {"image_size": "big"}, "image_size must be [width, height]"),
        (lambda m: {"classes": ["mpox", "non_mpox", "zzz"]}, "two"),
        (lambda m: {"original_sizes": [1, 2]}, "dataset.json original_sizes must map image ids to [width, height]"),
        (lambda m: _first_size(m, "x"), "original_sizes['img"),
        (lambda m: _first_size(m, [0, 0]), "must be [width, height] in pixels"),
        (lambda m: {"resize_policy": ["x"]}, "resize_policy must be one of stretch, pad, center-crop"),
    ],
    ids=["image-size", "classes", "sizes-not-a-table", "size-not-a-pair", "size-zero", "policy"],
)
def test_a_bad_dataset_json_field_is_named(tmp_path, meta, said):
    """Before, a bad original_sizes or resize_policy passed `open`: `train run` trained every fold, then failed
    placing the lesion boxes (ZeroDivisionError, "'list' object has no attribute 'get'"), or took "stretch"."""
    path = write_export(tmp_path, roi_every=2)
    meta = meta(json.loads((path / "dataset.json").read_text()))
    data = json.loads((path / "dataset.json").read_text())
    (path / "dataset.json").write_text(json.dumps({**data, **meta}))
    write_sums(path)
    with pytest.raises(DatasetError, match="dataset.json") as caught:
        DatasetVersion.open(path)
    assert said in str(caught.value)


def test_catalogue_ids_name_the_line_of_an_id_that_is_not_the_catalogues(tmp_path):
    """`train` takes any image id; the commands that go back to the catalogue (`curate export`'s parent
    splits, `curate label audit`) need its numbers. Before: int()'s ValueError, a traceback."""
    from curate.errors import ExportError
    from curate.export.plan import parent_assignment

    path = write_export(tmp_path, roi_every=2)
    with pytest.raises(DatasetError, match=r"manifest.csv line 2: image_id 'img\d+' is not a catalogue image id"):
        DatasetVersion.open(path).catalogue_ids()
    with pytest.raises(ExportError, match="cannot read the parent version's splits: .* line 2: image_id"):
        parent_assignment(path, folds=2)
    _edit_manifest(path, lambda rows: [{**r, "image_id": str(10 + n)} for n, r in enumerate(rows)])
    version = DatasetVersion.open(path)
    assert version.catalogue_ids() == list(range(10, 10 + len(version.rows)))
    assignment, _ = parent_assignment(path, folds=2)
    first = version.rows[0]
    assert assignment[10] == (first["split"], int(first["fold"]) if first["fold"] else None)


def test_a_version_opened_in_a_file_manager_still_verifies(tmp_path):
    """Finder's .DS_Store (and Explorer's Thumbs.db, macOS's ._ copies on a shared drive) made `train run`, `audit
    leakage` and a re-export refuse a version no one had changed. They are not the data: a photo added still is."""
    path = write_export(tmp_path)
    ds = DatasetVersion.open(path)
    (path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (path / "train" / "mpox" / "Thumbs.db").write_bytes(b"x")
    (path / "test" / "._manifest.csv").write_bytes(b"x")
    ds.verify()
    (path / "train" / "mpox" / "DS_Store.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"1 extra \(train/mpox/DS_Store\.jpg\)"):
        ds.verify()
