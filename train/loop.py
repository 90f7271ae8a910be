"""The training loop: seeding, optimiser, one epoch, evaluation, one fold model, and its evaluation rows."""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from train.config import TrainConfig
from train.data import ModelInputs, Plan, ProgressFn, make_loader
from train.device import autocast
from train.metrics import classification_metrics, predicted_classes
from train.models import Head, Net, build_backbone


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def fresh_backbone(cfg: TrainConfig):
    return build_backbone(cfg.arch, cfg.weights, seed=cfg.seed)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer, criterion, device: str) -> float:
    model.train()
    total, n = 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        with autocast(device):
            loss = criterion(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
        n += len(y)
    return total / max(n, 1)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: str) -> np.ndarray:
    """Class probabilities (N, C) in loader order."""
    model.eval()
    out = []
    for x, _ in loader:
        with autocast(device):
            out.append(torch.softmax(model(x.to(device)).float(), 1).cpu())
    return torch.cat(out).numpy().astype(np.float64)


def train_fold(
    k: int, plan: Plan, inputs: ModelInputs, cfg: TrainConfig, progress: ProgressFn
) -> tuple[nn.Module, dict]:
    """One fold model; returns (trained model, checkpoint dict)."""
    seed = cfg.seed * 1000 + k
    backbone = None
    if cfg.unfreeze:
        backbone = fresh_backbone(cfg)[0].train()
    torch.manual_seed(seed)  # head init and dropout masks: identical with and without the cache
    head = Head(inputs.dim, len(plan.classes), cfg.dropout)
    model = inputs.model(head, backbone).to(cfg.device)
    loader = make_loader(inputs.dataset(plan.train[k]), cfg.batch_size, True, seed)
    optimizer = build_optimizer(model, cfg)
    criterion = nn.CrossEntropyLoss()
    advance = progress(f"fold {k} ({len(plan.train[k])} images)", cfg.epochs)
    history = []
    for _epoch in range(cfg.epochs):
        history.append(train_one_epoch(model, loader, optimizer, criterion, cfg.device))
        advance(1)
    state = model.state_dict() if cfg.unfreeze else head.state_dict()
    ckpt = {
        "model": state,
        "optimizer": optimizer.state_dict(),
        "epoch": cfg.epochs,
        "fold": k,
        "config": asdict(cfg),
        "history": history,
        "complete": True,
    }
    return model, ckpt


def restore_model(ckpt: dict, inputs: ModelInputs, cfg: TrainConfig, n_classes: int) -> nn.Module:
    """A fold model from its checkpoint (resume)."""
    head = Head(inputs.dim, n_classes, cfg.dropout)
    if cfg.unfreeze:
        model = Net(fresh_backbone(cfg)[0], head)
        model.load_state_dict(ckpt["model"])
        return model.to(cfg.device)
    head.load_state_dict(ckpt["model"])
    return inputs.model(head).to(cfg.device)


def evaluate_fold(
    k: int, model: nn.Module, plan: Plan, inputs: ModelInputs, cfg: TrainConfig, root: Path
) -> tuple[dict, list]:
    """Metrics per evaluation set (val = this fold) and one prediction row per image.

    Rows name the true class (`label`) and whether it is the positive class (`is_positive`, 1 = yes),
    never a bare class index, so `roc_auc_score(is_positive, p_<positive>)` is the reported AUC.
    """
    metrics, rows = {}, []
    for set_name, images in {"val": plan.val[k], **plan.eval_sets}.items():
        probs = evaluate(model, make_loader(inputs.dataset(images), 256, False, 0), cfg.device)
        y = np.array([it.target for it in images])
        metrics[set_name] = classification_metrics(y, probs, plan.positive, cfg.threshold)
        pred = predicted_classes(probs, plan.positive, cfg.threshold)
        for it, p, yhat in zip(images, probs, pred, strict=True):
            rows.append(
                {
                    "fold": k,
                    "set": set_name,
                    "image_id": it.image_id,
                    "file": _rel(it.path, root),
                    "label": plan.classes[it.target],
                    "is_positive": "" if plan.positive is None else int(it.target == plan.positive),
                    **{f"p_{c}": round(float(v), 6) for c, v in zip(plan.classes, p, strict=True)},
                    "p_positive": "" if plan.positive is None else round(float(p[plan.positive]), 6),
                    "pred": plan.classes[int(yhat)],
                }
            )
    return metrics, rows


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name
