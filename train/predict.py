"""Triage: P(mpox) from the mean of a run's fold models, the decision at a threshold, and a
Grad-CAM overlay per image."""
from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Optional

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from train.gradcam import gradcam, overlay
from train.models import Head, Net, TrainError, build_backbone, freeze, get_arch
from train.presets import EvalPreset
from train.recipe import TrainConfig


class MeanHead(nn.Module):
    """The fold heads as one: mean logits (for Grad-CAM) and mean probabilities (for the decision)."""

    def __init__(self, heads: list[nn.Module]):
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, feats):
        return torch.stack([h(feats) for h in self.heads]).mean(0)

    def probs(self, feats):
        return torch.stack([torch.softmax(h(feats), 1) for h in self.heads]).mean(0)


def load_run(run: Path) -> tuple[TrainConfig, dict]:
    try:
        raw = json.loads((run / "config.json").read_text())
        info = json.loads((run / "run.json").read_text())
    except (OSError, ValueError):
        raise TrainError(f"{run} is not a run folder (config.json/run.json missing)") from None
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in raw.items() if k in names}), info


def predict(run: Path, images: list[Path], threshold: Optional[float] = None, out_dir: Optional[Path] = None) -> list[dict]:
    """Probability of the positive class (mean of the fold models) and the decision per image."""
    run = Path(run)
    cfg, info = load_run(run)
    if info.get("status") != "complete":
        raise TrainError(f"run {run} did not finish; re-run `train run --resume` first")
    classes = info["dataset"]["classes"]
    positive = info["positive_class"]
    threshold = cfg.threshold if threshold is None else threshold
    if cfg.unfreeze:
        raise TrainError("predict supports frozen-backbone runs only (a fine-tuned run has one backbone per fold)")
    arch = get_arch(cfg.arch)
    backbone, dim, weights_id = build_backbone(cfg.arch, cfg.weights, seed=cfg.seed)
    if weights_id != info["weights_id"]:
        raise TrainError(f"run {run} used backbone weights {info['weights_id']}, but here they load as {weights_id}")
    heads = []
    for k in range(cfg.folds):
        path = run / f"fold{k}" / "checkpoint.pt"
        if not path.exists():
            raise TrainError(f"run {run} has no checkpoint for fold {k}; re-run `train run --resume`")
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        head = Head(dim, len(classes), cfg.dropout)
        head.load_state_dict(ckpt["model"])
        heads.append(head)
    freeze(backbone)
    mean_head = MeanHead(heads).eval()
    net = Net(backbone, mean_head).eval()
    preset = EvalPreset(cfg.image_size, arch.mean, arch.std)
    out_dir = Path(out_dir) if out_dir else run / "predict"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for n, path in enumerate(images):
        path = Path(path)
        try:
            with Image.open(path) as im:
                # camera photos are triaged upright, as exported training images are (EXIF orientation applied)
                img = ImageOps.exif_transpose(im).convert("RGB")
        except (OSError, UnidentifiedImageError):
            raise TrainError(f"cannot read image {path.name}") from None
        x = preset(img).unsqueeze(0)
        with torch.no_grad():
            p = mean_head.probs(backbone(x))[0]
        if positive:
            pos = classes.index(positive)
            decision = positive if float(p[pos]) >= threshold else classes[1 - pos]
            target = pos
        else:
            target = int(p.argmax())
            decision = classes[target]
        cam = gradcam(net, backbone, arch, x, target)
        png = out_dir / f"{n:03d}-{path.stem}-gradcam.png"  # numbered: two IMG_0001.jpg from two folders must not collide
        overlay(img, cam).save(png)
        results.append({"image": str(path), "probabilities": {c: round(float(v), 6) for c, v in zip(classes, p)},
                        "positive_class": positive, "p_positive": round(float(p[target]), 6) if positive else None,
                        "threshold": threshold, "decision": decision, "gradcam": str(png)})
    return results
