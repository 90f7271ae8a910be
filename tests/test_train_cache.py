"""The feature cache: same predictions as the plain image loop, invalidated by changed bytes or
preprocessing, corrupt entries detected and recomputed."""

import csv
import json
import logging
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from train_fixtures import new_jpeg, replace_file, write_export

from train.config import TrainConfig
from train.features import FeatureCache
from train.presets import EvalPreset
from train.recipe import run

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return write_export(tmp_path_factory.mktemp("ws"), roi_every=2)


def _run(dataset, out, cache_dir, **kw):
    cfg = TrainConfig(
        dataset=str(dataset),
        arch="resnet18",
        out=str(out),
        weights="none",
        epochs=kw.pop("epochs", 3),
        cache_dir=str(cache_dir),
        report=False,
        **kw,
    )
    path = run(cfg)
    return path, json.loads((path / "run.json").read_text())


def _probs(run_dir):
    with open(run_dir / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {(r["fold"], r["set"], r["image_id"]): float(r["p_mpox"]) for r in rows}


@pytest.mark.slow
def test_cached_features_give_the_plain_loop_predictions(export, tmp_path):
    cached, info = _run(export, tmp_path / "cached", tmp_path / "cache", epochs=2, image_size=32)
    plain, pinfo = _run(export, tmp_path / "plain", tmp_path / "cache", epochs=2, image_size=32, cache=False)
    assert info["mode"] == "cached" and pinfo["mode"] == "plain" and "cache" not in pinfo
    a, b = _probs(cached), _probs(plain)
    assert a.keys() == b.keys() and len(a) > 100
    diff = max(abs(a[k] - b[k]) for k in a)
    assert diff < 1e-4, diff
    # and the fold heads themselves agree
    for k in range(5):
        ha = torch.load(cached / f"fold{k}/checkpoint.pt", weights_only=True)["model"]
        hb = torch.load(plain / f"fold{k}/checkpoint.pt", weights_only=True)["model"]
        assert torch.allclose(ha["fc.weight"], hb["fc.weight"], atol=1e-4)


def test_cache_reused_then_invalidated_by_preprocessing_and_bytes(export, tmp_path):
    cache = tmp_path / "cache"
    _, first = _run(export, tmp_path / "a", cache, epochs=1)
    n = first["cache"]["computed"]
    assert first["cache"]["hits"] == 0 and n == 42 + 4 + 6  # originals + test ROI crops + augmented copies
    _, again = _run(export, tmp_path / "b", cache, epochs=1)
    assert again["cache"]["computed"] == 0 and again["cache"]["hits"] == n
    # changed preprocessing (input size): a different cache key, everything recomputed
    _, resized = _run(export, tmp_path / "c", cache, epochs=1, image_size=40)
    assert resized["cache"]["computed"] == n and resized["cache"]["dir"] != first["cache"]["dir"]
    # changed image bytes (a new, valid version): only that image is recomputed
    v2 = tmp_path / "v2"
    shutil.copytree(export, v2)
    victim = sorted((v2 / "train" / "non_mpox").glob("*.jpg"))[0].relative_to(v2).as_posix()
    replace_file(v2, victim, new_jpeg("non_mpox"))
    _, changed = _run(v2, tmp_path / "d", cache, epochs=1)
    assert changed["cache"]["computed"] == 1 and changed["cache"]["hits"] == n - 1


def test_corrupt_cache_entry_is_detected_and_recomputed(export, tmp_path, caplog):
    cache = tmp_path / "cache"
    first, info = _run(export, tmp_path / "a", cache)
    entries = sorted((tmp_path / "cache").rglob("*.f32"))
    blob = bytearray(entries[0].read_bytes())
    blob[40] ^= 0xFF
    entries[0].write_bytes(bytes(blob))
    entries[1].write_bytes(entries[1].read_bytes()[:100])  # truncated
    with caplog.at_level(logging.WARNING, logger="train.features"):
        second, info2 = _run(export, tmp_path / "b", cache)
    assert info2["cache"]["corrupt_recomputed"] == 2 and info2["cache"]["computed"] == 2
    assert sum("corrupt" in r.getMessage() for r in caplog.records) == 2
    a, b = _probs(first), _probs(second)
    assert max(abs(a[k] - b[k]) for k in a) < 1e-6


def test_cache_entry_format(tmp_path):
    preset = EvalPreset(32, (0.5,) * 3, (0.5,) * 3)
    cache = FeatureCache(tmp_path, "resnet18", "none:seed0", preset, dim=4)
    vec = np.arange(4, dtype=np.float32)
    cache.put("ab" * 32, vec)
    assert np.array_equal(cache.get("ab" * 32), vec)
    assert cache.get("cd" * 32) is None
    other = FeatureCache(tmp_path, "resnet18", "none:seed0", EvalPreset(33, (0.5,) * 3, (0.5,) * 3), dim=4)
    assert other.dir != cache.dir and other.get("ab" * 32) is None
    wrong_dim = FeatureCache(tmp_path, "resnet18", "none:seed0", preset, dim=5)
    assert wrong_dim.get("ab" * 32) is None and wrong_dim.stats.corrupt == 1


def test_a_cache_that_cannot_be_written_refuses_the_run_before_its_folder_exists(export, tmp_path):
    """`--cache-dir` on a path that cannot be made failed at the first feature, after the run folder was
    written, and the same command then refused that folder as existing."""
    from train.errors import TrainError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(TrainError, match=r"feature cache .* cannot be written .*--cache-dir"):
        _run(export, tmp_path / "run", blocker / "cache", epochs=1, image_size=32)
    assert not (tmp_path / "run").exists()
    path, info = _run(export, tmp_path / "run", tmp_path / "cache", epochs=1, image_size=32)
    assert info["mode"] == "cached" and (path / "metrics.json").is_file()
