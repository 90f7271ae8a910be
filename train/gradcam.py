"""Grad-CAM with torch hooks on the backbone's last conv block; no extra dependency."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from train.models import Arch, module_by_name


def gradcam(model: nn.Module, backbone: nn.Module, arch: Arch, x: torch.Tensor, target: int) -> np.ndarray:
    """Heat map in [0, 1] (H×W of `x`) of where `model`'s score for `target` comes from.

    `model` maps images to logits and contains `backbone`; gradients flow even through a frozen
    backbone because the input asks for them.
    """
    return gradcam_batch(model, backbone, arch, x[:1], [target])[0]


def gradcam_batch(model: nn.Module, backbone: nn.Module, arch: Arch, x: torch.Tensor, targets: list[int]) -> np.ndarray:
    """Grad-CAM for a batch at once, (B, H, W) in [0, 1] each: in eval mode the samples are
    independent, so the gradient of the summed target scores is each sample's own gradient."""
    layer = module_by_name(backbone, arch.cam_layer)
    saved = {}

    def hook(_m, _inp, out):
        saved["act"] = out
        out.register_hook(lambda g: saved.__setitem__("grad", g))

    handle = layer.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = x.detach().clone().requires_grad_(True)
            logits = model(x)
            score = logits[torch.arange(len(targets)), torch.as_tensor(targets)].sum()
            model.zero_grad(set_to_none=True)
            score.backward()
    finally:
        handle.remove()
        model.train(was_training)
    act, grad = saved["act"].detach().float(), saved["grad"].detach().float()
    if arch.channels_last:
        act, grad = act.permute(0, 3, 1, 2), grad.permute(0, 3, 1, 2)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0].cpu()
    cam = cam - cam.amin(dim=(1, 2), keepdim=True)
    peak = cam.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(1e-12), cam).numpy()


def overlay(img: Image.Image, cam: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The heat map (jet) blended over the image, at the image's size."""
    from matplotlib import colormaps

    img = img.convert("RGB")
    heat = Image.fromarray((cam * 255).astype(np.uint8)).resize(img.size, Image.BILINEAR)
    rgb = (colormaps["jet"](np.asarray(heat) / 255.0)[..., :3] * 255).astype(np.uint8)
    return Image.blend(img, Image.fromarray(rgb), alpha)
