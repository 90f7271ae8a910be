"""What a run computes (`TrainConfig`, saved as config.json) and the checks that need nothing heavy.

Importable without torch: `train run` refuses an existing run folder before torch loads.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from numbers import Real
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

    def validate(self) -> None:
        """Every option in its range, before torch loads or the run folder exists: a bad value is one line naming
        the option in milliseconds, not an error after feature extraction with a folder left to block re-runs.
        Not run on a saved config.json (`from_saved`): a finished run stays readable."""
        for name, (low, high, whole) in RANGES.items():
            value = getattr(self, name)
            if value is not None or name not in OPTIONAL:
                check_range(f"--{name.replace('_', '-')}", value, low, high, whole=whole)
        for name, (low, high, ends) in OPEN_RANGES.items():
            check_range(f"--{name}", getattr(self, name), low, high, **ends)
        if self.weights not in ("imagenet", "none") and not Path(self.weights).is_file():
            raise TrainError(f"--weights {self.weights}: no such file (use imagenet, none, or a state-dict file)")


# closed ranges (low, high or None, whole number) of the numeric options; --lr and --dropout have an open end
RANGES: dict[str, tuple[float, float | None, bool]] = {
    "epochs": (1, 10_000, True),  # upper bounds: a typo's extra zeros refused now, not noticed hours later
    "batch_size": (1, 4096, True),
    "folds": (2, 100, True),
    "seed": (0, 2**32 - 1, True),  # numpy's seed range
    "image_size": (32, 2048, True),  # 32: the backbones' total stride
    "threshold": (0, 1, False),
    "target_sensitivity": (0.01, 1, False),
    "bootstrap": (10, 100_000, True),
    "pointing_max": (1, None, True),
    "gradcam_images": (0, 100, True),
}
# the options with an open end (low, high, which end is open), checked as the closed ones are
OPEN_RANGES: dict[str, tuple[float, float, dict[str, bool]]] = {
    "lr": (0, 1, {"low_open": True}),
    "dropout": (0, 1, {"high_open": True}),
}
OPTIONAL = ("folds", "image_size", "pointing_max")  # None: the export's, or all


def check_range(
    option: str,
    value,
    low: float,
    high: float | None,
    *,
    whole: bool = False,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """A TrainError naming `option` unless `value` is a (whole) number in the range; NaN is never in range."""
    number = isinstance(value, int if whole else Real) and not isinstance(value, bool)
    ok = (
        number
        and (whole or math.isfinite(value))
        and (value > low if low_open else value >= low)
        and (high is None or (value < high if high_open else value <= high))
    )
    if ok:
        return
    if high is not None and not low_open and not high_open:
        span = f"from {low} to {high}"
    else:
        span = f"{'above' if low_open else 'at least'} {low}"
        if high is not None:
            span += f" and {'below' if high_open else 'at most'} {high}"
    raise TrainError(f"{option} must be {'a whole number' if whole else 'a number'} {span}, not {value!r}")


def not_this_fold(ckpt: dict, k: int, cfg: TrainConfig, checksum: str) -> str | None:
    """Why a checkpoint read as fold `k`'s is not this run's fold k, or None: "other" (another run's data or
    settings, or config.json edited), or "fold N" (another fold's file copied here: its head trained on fold k's
    validation images, and was used as fold k). `train run --resume` and every reader of a finished run ask it."""
    if ckpt.get("dataset_checksum") != checksum or identity(from_saved(ckpt["config"])) != identity(cfg):
        return "other"
    return None if ckpt.get("fold") == k else f"fold {ckpt.get('fold')}"


def identity(cfg: TrainConfig) -> dict:
    """The fields a resumed run and every fold checkpoint must agree on."""
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in TrainConfig.RUNTIME_ONLY}


def from_saved(raw: dict) -> TrainConfig:
    """A config.json read back (extra keys such as `command` ignored)."""
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in raw.items() if k in names})


def started(out: Path) -> bool:
    """Whether `out` holds a run: anything but nothing, or a config.json alone (a run stopped in the milliseconds
    before its run.json; partial files of killed writers aside). Before, such a folder was refused by a plain
    re-run ("pass --resume") and by --resume ("not a run folder") alike."""
    try:
        names = {p.name for p in Path(out).iterdir()}
    except FileNotFoundError:
        return False
    except OSError:  # a file, or unreadable: not ours to take over
        return True
    if {n for n in names if not n.endswith(".part")} - {"config.json"}:
        return True
    if "config.json" not in names:
        return False
    try:  # another tool's config.json is not a run's: the folder is refused, the file never overwritten
        raw = json.loads((Path(out) / "config.json").read_text())
    except (OSError, ValueError):
        return True
    return not (isinstance(raw, dict) and {"dataset", "arch", "out"} <= set(raw))


def refuse_existing(out: Path, resume: bool) -> None:
    """A new run never writes into an existing folder that holds a run; checked before torch is imported."""
    if Path(out).exists() and not Path(out).is_dir():
        raise TrainError(f"--out {out} is a file, not a run folder: choose another --out")
    if Path(out).exists() and not resume and started(out):
        raise TrainError(f"run folder {out} already exists; pass --resume to continue it, or choose another --out")
