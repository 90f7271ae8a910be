"""What a run computes (`TrainConfig`, saved as config.json) and the checks that need nothing heavy.

Importable without torch: `train run` refuses an existing run folder before torch loads.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from train.errors import TrainError


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a run computes; saved as the run folder's config.json."""

    dataset: str  # folder path or NAME@VERSION
    arch: str
    out: str  # run folder (must not exist unless resuming)
    epochs: int = 150
    batch_size: int = 72
    lr: float = 3e-4
    folds: int | None = None  # None: the export's fold count (the paper: 5)
    seed: int = 0
    device: str = "cpu"
    weights: str = "imagenet"  # imagenet | none | path to a state dict
    dropout: float = 0.2
    image_size: int | None = None  # None: the export's image size (the paper: 320)
    balance: bool = True  # offline augmentation of minority classes
    cache: bool = True  # train the head on cached backbone features
    cache_dir: str | None = None  # None: <run parent>/feature-cache
    unfreeze: bool = False  # full fine-tuning on images (no cache)
    threshold: float = 0.5  # decision threshold on P(positive class)
    workspace: str | None = None  # for NAME@VERSION
    gradcam_images: int = 3  # correct and wrong examples in the report's gallery
    report: bool = True  # write report.md and its figures (tests of the numbers skip it)
    target_sensitivity: float = 0.95  # operating point: chosen on out-of-fold predictions (train.triage)
    bootstrap: int = 1000  # resamples for the 95 % CIs (by image group)
    pointing_max: int | None = None  # pointing game: at most this many boxed images per set (seeded sample)

    # fields that do not change what is computed; a resumed run may differ in these
    RUNTIME_ONLY = (
        "device",
        "cache",
        "cache_dir",
        "workspace",
        "dataset",
        "out",
        "report",
        "gradcam_images",
        "target_sensitivity",
        "bootstrap",
        "pointing_max",
    )


def identity(cfg: TrainConfig) -> dict:
    """The fields a resumed run and every fold checkpoint must agree on."""
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in TrainConfig.RUNTIME_ONLY}


def from_saved(raw: dict) -> TrainConfig:
    """A config.json read back (extra keys such as `command` ignored)."""
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in raw.items() if k in names})


def refuse_existing(out: Path, resume: bool) -> None:
    """A new run never writes into an existing folder; checked before torch is imported."""
    if Path(out).exists() and not resume:
        raise TrainError(f"run folder {out} already exists; pass --resume to continue it, or choose another --out")
