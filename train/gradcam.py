"""Grad-CAM with a torch hook on the backbone's last conv block; no extra dependency.

Only the layers after that block need a gradient: the hook hands the rest of the network a copy of
the block's output that is a leaf requiring grad, and `torch.autograd.grad` stops there. So a CAM
costs one forward pass plus a backward through the pooling and the head (not through the backbone,
which would double the cost), and the forward that gives the probabilities can give the CAM too.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as nnf

from curate.imaging import pixels_only
from train.models import Arch, module_by_name


class CamCapture:
    """`with CamCapture(backbone, arch) as cap:` run the forward pass, then `cap.cams(score, size)`."""

    def __init__(self, backbone: nn.Module, arch: Arch):
        self.layer, self.arch = module_by_name(backbone, arch.cam_layer), arch
        self.act: torch.Tensor | None = None
        self._handle = None
        self._grad = None
        self._values: torch.Tensor | None = None

    def _hook(self, _module, _inp, out):
        self.act = out.detach().requires_grad_(True)
        # the network goes on with a non-leaf copy: an in-place op after the block (DenseNet's relu_) may change
        # the copy, whose values are the activation (as when hooking the block's own output), not the leaf
        self._values = self.act.clone()
        return self._values

    def __enter__(self) -> CamCapture:
        self._handle = self.layer.register_forward_hook(self._hook)
        self._grad = torch.enable_grad()
        self._grad.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._grad.__exit__(*exc)
        self._handle.remove()

    def cams(self, score: torch.Tensor, size) -> np.ndarray:
        """(B, H, W) heat maps in [0, 1] for the summed per-sample `score` (samples are independent in eval mode)."""
        (grad,) = torch.autograd.grad(score, self.act)
        act, grad = self._values.detach().float(), grad.float()
        if self.arch.channels_last:
            act, grad = act.permute(0, 3, 1, 2), grad.permute(0, 3, 1, 2)
        cam = nnf.relu((grad.mean(dim=(2, 3), keepdim=True) * act).sum(1, keepdim=True))
        cam = nnf.interpolate(cam, size=tuple(size), mode="bilinear", align_corners=False)[:, 0].cpu()
        cam = cam - cam.amin(dim=(1, 2), keepdim=True)
        peak = cam.amax(dim=(1, 2), keepdim=True)
        return torch.where(peak > 0, cam / peak.clamp_min(1e-12), cam).numpy()


def gradcam(model: nn.Module, backbone: nn.Module, arch: Arch, x: torch.Tensor, target: int) -> np.ndarray:
    """Heat map in [0, 1] (H×W of `x`) of where `model`'s score for `target` comes from."""
    return gradcam_batch(model, backbone, arch, x[:1], [target])[0]


def gradcam_batch(model: nn.Module, backbone: nn.Module, arch: Arch, x: torch.Tensor, targets: list[int]) -> np.ndarray:
    """Grad-CAM for a batch at once, (B, H, W) in [0, 1]; `model` maps images to logits and contains `backbone`."""
    was_training = model.training
    model.eval()
    try:
        with CamCapture(backbone, arch) as cap:
            logits = model(x.detach())
            score = logits[torch.arange(len(targets)), torch.as_tensor(targets, device=logits.device)].sum()
            return cap.cams(score, x.shape[-2:])
    finally:
        model.train(was_training)


def overlay(img: Image.Image, cam: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The heat map (jet) blended over the image, at the image's size, with no metadata (`pixels_only`: blend
    keeps the photo's comment and ICC profile, which PNG and JPEG writers would write out)."""
    from matplotlib import colormaps

    img = img.convert("RGB")
    heat = Image.fromarray((cam * 255).astype(np.uint8)).resize(img.size, Image.BILINEAR)
    rgb = (colormaps["jet"](np.asarray(heat) / 255.0)[..., :3] * 255).astype(np.uint8)
    return pixels_only(Image.blend(img, Image.fromarray(rgb), alpha))
