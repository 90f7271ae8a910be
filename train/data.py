"""Data: the folds, the offline-augmentation plan, the evaluation sets, and what the model is fed
(cached backbone features or decoded images) as datasets and loaders."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from curate.dataset import DatasetVersion, Sample
from train.config import TrainConfig
from train.device import precision_tag
from train.errors import TrainError
from train.features import FeatureCache, extract
from train.models import FrozenNet, Net
from train.presets import EvalPreset, ImageRef

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int], Callable[[int], None]]  # (description, total) -> advance(n)


def no_progress(_desc: str, _total: int) -> Callable[[int], None]:
    return lambda _n: None


@dataclass
class Plan:
    """What each fold trains and validates on, and the evaluation sets (lists of `ImageRef`)."""

    classes: list
    positive: int | None
    folds: list
    train: dict  # fold -> images (other folds' originals + their augmented copies)
    val: dict  # fold -> images (that fold's originals)
    eval_sets: dict  # test / test_roi / external -> images
    n_augmented: int


def open_dataset(cfg: TrainConfig) -> DatasetVersion:
    ds = DatasetVersion.open(cfg.dataset, cfg.workspace)
    ds.verify()  # never train on bytes that differ from what the version says
    return ds


def _ref(s: Sample) -> ImageRef:
    return ImageRef(s.path, s.sha256, s.target, s.image_id)


def check_classes(samples: list[Sample], what: str, classes: list) -> None:
    present = sorted({s.label for s in samples})
    if len(present) < 2:
        only = present[0] if present else "nothing"
        raise TrainError(
            f"{what} has only one class ({only}); training and AUC need at least two of {', '.join(classes)}"
        )


def balance_plan(train: list[Sample], seed: int) -> list[tuple[Sample, ImageRef]]:
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
            out.append(
                (s, ImageRef(s.path, s.sha256, s.target, f"{s.image_id}~aug{j // len(src)}", j // len(src), seed))
            )
    return out


def positive_index(classes: list, task: str) -> int | None:
    """Binary tasks report precision/recall of mpox (or the last class); diagnosis tasks are macro."""
    if len(classes) != 2:
        return None
    return classes.index("mpox") if "mpox" in classes else 1


def build_datasets(ds: DatasetVersion, cfg: TrainConfig) -> Plan:
    """Folds, balancing and evaluation sets from the dataset version; checks each has two classes."""
    folds = ds.folds()
    if not folds:
        raise TrainError(f"{ds.ref} has no train rows")
    n_folds = cfg.folds or int(ds.meta.get("folds") or len(folds))
    if folds != list(range(n_folds)):
        raise TrainError(
            f"{ds.ref}: train rows carry folds {', '.join(map(str, folds))}, but {n_folds} folds were asked for "
            f"(--folds, or dataset.json 'folds'); re-export with the fold count you want"
        )
    train = ds.samples("train")
    check_classes(train, "split 'train'", ds.classes)
    aug = balance_plan(train, cfg.seed) if cfg.balance else []
    plan = Plan(
        classes=ds.classes,
        positive=positive_index(ds.classes, ds.task),
        folds=folds,
        train={},
        val={},
        eval_sets={},
        n_augmented=len(aug),
    )
    for k in folds:
        part = ds.samples("train", exclude_fold=k)
        check_classes(part, f"the training part of fold {k}", ds.classes)
        plan.train[k] = [_ref(s) for s in part] + [it for s, it in aug if s.fold != k]
        plan.val[k] = [_ref(s) for s in ds.samples("train", fold=k)]
    for name, (split, roi) in {
        "test": ("test", False),
        "test_roi": ("test", True),
        "external": ("external", False),
    }.items():
        samples = ds.samples(split, roi=roi)
        if roi and len({s.label for s in samples}) < 2:
            # ROI crops exist only for images with lesion boxes (healthy skin has none): the ROI evaluation
            # is a supplement to the test split, so a one-class crop set is skipped, not a fatal fault.
            if samples:
                log.warning(
                    "split 'test' (ROI crops) has only one class (%s); skipping the ROI evaluation", samples[0].label
                )
            continue
        if samples:
            check_classes(samples, f"split '{split}'" + (" (ROI crops)" if roi else ""), ds.classes)
            plan.eval_sets[name] = [_ref(s) for s in samples]
    if "test" not in plan.eval_sets:
        raise TrainError(f"{ds.ref} has no test split; the protocol evaluates every fold model on it")
    return plan


class ImageItems(Dataset):
    """The plain loop's dataset: decode (and augment) every time."""

    def __init__(self, images: list[ImageRef], preset: EvalPreset):
        self.images, self.preset = images, preset

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        it = self.images[i]
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
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=0,
        collate_fn=_batch_as_is if isinstance(data, FeatureRows) else None,
        generator=torch.Generator().manual_seed(seed) if shuffle else None,
    )


class ModelInputs:
    """What the model is fed: cached backbone features (the model is the head) or images (the model is a Net)."""

    def __init__(
        self,
        cfg: TrainConfig,
        backbone: nn.Module,
        dim: int,
        weights_id: str,
        preset: EvalPreset,
        cache_root: Path,
        progress: ProgressFn,
    ):
        self.cfg, self.backbone, self.dim, self.weights_id, self.preset = cfg, backbone, dim, weights_id, preset
        self.cached = cfg.cache and not cfg.unfreeze
        cache_id = weights_id if precision_tag(cfg.device) == "fp32" else f"{weights_id}+{precision_tag(cfg.device)}"
        self.cache = FeatureCache(cache_root, cfg.arch, cache_id, preset, dim) if self.cached else None
        self.progress = progress
        self.feats: dict[str, torch.Tensor] = {}

    def prepare(self, images: list[ImageRef]) -> None:
        """Compute (or read) every feature the run needs, once."""
        if not self.cached:
            return
        unique = list({it.key: it for it in images}.values())
        advance = self.progress(f"features {self.cfg.arch}", len(unique))
        feats = extract(
            self.backbone, unique, self.preset, self.cache, batch_size=32, device=self.cfg.device, on_batch=advance
        )
        self.feats = {it.key: feats[i] for i, it in enumerate(unique)}

    def dataset(self, images: list[ImageRef]) -> Dataset:
        if self.cached:
            x = torch.stack([self.feats[it.key] for it in images])
            return FeatureRows(x, torch.tensor([it.target for it in images]))
        return ImageItems(images, self.preset)

    def model(self, head: nn.Module, backbone: nn.Module | None = None) -> nn.Module:
        if self.cached:
            return head
        if self.cfg.unfreeze:
            return Net(backbone, head)
        return FrozenNet(self.backbone, head)
