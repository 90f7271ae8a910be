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


def test_manifest_must_follow_contract(tmp_path):
    path = write_export(tmp_path)
    text = (path / "manifest.csv").read_text()
    (path / "manifest.csv").write_text(text.replace(",train,0,", ",train,,", 1))
    write_sums(path)
    with pytest.raises(DatasetError, match="needs a fold"):
        DatasetVersion.open(path)
