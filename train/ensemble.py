"""A finished run as one triage model: the frozen backbone, the fold heads averaged, the
calibration and the operating point chosen on out-of-fold predictions. Used by `predict`, the pointing
game, `export-model` and `serve`, so all four compute the same probability."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from train.calibration import Platt, applied
from train.config import TrainConfig, check_range, from_saved, not_this_fold
from train.errors import TrainError, require_complete
from train.gradcam import CamCapture
from train.models import Arch, Head, Net, build_backbone, freeze, get_arch
from train.presets import EvalPreset


class MeanHead(nn.Module):
    """The fold heads as one: mean logits (for Grad-CAM) and mean probabilities (for the decision)."""

    def __init__(self, heads: list[nn.Module]):
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, feats):
        return torch.stack([h(feats) for h in self.heads]).mean(0)

    def probs(self, feats):
        return torch.stack([torch.softmax(h(feats), 1) for h in self.heads]).mean(0)


@dataclass
class Triage:
    """One image's result."""

    probabilities: dict
    p_positive: float | None  # fold-model mean, uncalibrated
    p_calibrated: float | None  # after Platt scaling (binary tasks)
    decision: str  # "refer" / "routine" at the operating point; the class for multi-class
    predicted_class: str
    cam: np.ndarray | None = field(default=None, repr=False)


def _metrics(run: Path, positive: str | None) -> tuple[dict, Platt | None]:
    """The finished run's metrics.json and its calibration. A binary run's holds its calibration and operating
    point: without them a photo's decision would silently fall back to an uncalibrated 0.5 (a damaged file turned
    "refer" into "routine"), so a missing, damaged or incomplete one is refused."""
    try:
        metrics = json.loads((run / "metrics.json").read_text())
        tri = metrics.get("triage") or {}
        calibration, threshold = tri.get("calibration"), tri.get("threshold")
        platt = Platt(**calibration) if calibration else None  # the fields a calibration has
        if platt is not None and not applied(platt):  # "none: …": P as the model gives it, whatever a and b say
            platt = Platt(method=platt.method)
        # and values it can have: a NaN slope called every photo "routine", a threshold of 5 decided nothing
        if platt is not None and not all(_finite(v) for v in (platt.a, platt.b)):
            raise ValueError(calibration)
        if threshold is not None and not (_finite(threshold) and 0 <= threshold <= 1):
            raise ValueError(threshold)
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        reason = "is missing" if isinstance(exc, FileNotFoundError) else "is damaged"
    else:
        if not positive or (calibration and threshold is not None):
            return metrics, platt
        reason = "has no calibration or operating point"
    raise TrainError(
        f"run {run}: metrics.json {reason}; it holds the calibration and the operating point every decision "
        "uses: restore the run folder from a backup or train again"
    )


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_run(run: Path) -> tuple[TrainConfig, dict]:
    """The run's config.json and run.json; a missing file, or one damaged where its readers look, is one line."""
    read = {}
    for name in ("config.json", "run.json"):
        try:
            read[name] = json.loads((run / name).read_bytes())
        except OSError:
            raise TrainError(f"{run} is not a run folder (config.json/run.json missing)") from None
        except ValueError:  # not JSON, not UTF-8 (before: "missing", and clinic IT looked for a deleted file)
            raise TrainError(f"run {run}: {name} is damaged (not JSON); {_RESTORE}") from None
    info = read["run.json"]
    if (field := _damaged_info(info)) is not None:  # before: "unexpected ValueError: 'zzz' is not in list"
        raise TrainError(f"run {run}: run.json is damaged ({field}); {_RESTORE}")
    try:
        cfg = from_saved(read["config.json"])
    except (AttributeError, TypeError):  # not an object, or a field of another shape
        raise TrainError(f"run {run}: config.json is damaged; {_RESTORE}") from None
    for name, (low, high) in SAVED_SIZES.items():  # before: "folds": 1000000000 and the process was killed
        try:
            check_range(name, getattr(cfg, name), low, high, whole=True)
        except TrainError:
            raise TrainError(f"run {run}: config.json is damaged ({name}); {_RESTORE}") from None
    held = {p.name for p in run.glob("fold*") if p.is_dir()} if info.get("status") == "complete" else None
    if held is not None and (missing := _first_missing_fold(held, cfg.folds)) is not None:
        # before: a deleted fold4/ was "config.json is damaged", and the steward restored the wrong file
        raise TrainError(
            f"run {run}: config.json says {cfg.folds} folds and the run holds {len(held)} fold folder(s) "
            f"(fold{missing}/ is missing); {_RESTORE}"
        )
    return cfg, info


_RESTORE = "restore the run folder from a backup or train again"


def _first_missing_fold(present: set[str], folds: int) -> int | None:
    """The first of fold0/ … fold<folds-1>/ not among the run folder's `present` folders, looking at no more than
    it holds (a damaged config.json can say a billion folds)."""
    return next((k for k in range(min(folds, len(present) + 1)) if f"fold{k}" not in present), None)


# what a reader of a finished run counts or allocates by, as a run can have saved them: the export's folds (any
# number from 2) and image size (`curate export --size`, 32 to 4096) when `train run` was given none
SAVED_SIZES = {"folds": (2, None), "image_size": (32, 4096)}


def _damaged_info(info) -> str | None:
    """The first field of run.json that predict, serve and export-model read and that is not as `train run` wrote
    it (`train.rundir.run_info`), or None."""
    if not isinstance(info, dict) or not isinstance(info.get("dataset"), dict):
        return "dataset"
    classes = info["dataset"].get("classes")
    if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) for c in classes)):
        return "dataset.classes"
    if not isinstance(info["dataset"].get("checksum"), str):
        return "dataset.checksum"
    if not isinstance(info.get("weights_id"), str):
        return "weights_id"
    if "positive_class" not in info:
        return "positive_class"
    if info["positive_class"] is not None and info["positive_class"] not in classes:
        return f"positive_class {str(info['positive_class'])[:40]!r} is not one of its classes"
    return None


@dataclass
class Ensemble:
    net: Net  # backbone + MeanHead (or one fold's head), eval mode
    arch: Arch
    preset: EvalPreset
    classes: list
    positive: str | None
    threshold: float  # the run's Table-2 threshold on uncalibrated P(positive)
    calibration: Platt | None
    operating_threshold: float | None
    run: Path
    info: dict
    metrics: dict
    folds: list

    @classmethod
    def load(cls, run: Path, fold: int | None = None, device: str = "cpu") -> Ensemble:
        """The run's fold models (or fold `fold` alone) on `device`."""
        run = Path(run)
        cfg, info = load_run(run)
        require_complete(run, info)
        if cfg.unfreeze:
            raise TrainError(
                "predict, serve and export-model support frozen-backbone runs only (a fine-tuned "
                "--unfreeze run has one backbone per fold)"
            )
        classes = info["dataset"]["classes"]
        backbone, dim, weights_id = build_backbone(cfg.arch, cfg.weights, seed=cfg.seed)
        if weights_id != info["weights_id"]:
            raise TrainError(
                f"run {run} used backbone weights {info['weights_id']}, but here they load as {weights_id}"
            )
        folds = [fold] if fold is not None else range(cfg.folds)  # the first missing one is named
        heads = []
        for k in folds:
            path = run / f"fold{k}" / "checkpoint.pt"
            if not path.exists():
                raise TrainError(f"run {run} has no checkpoint for fold {k}")
            head = Head(dim, len(classes), cfg.dropout)
            try:
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
                head.load_state_dict(ckpt["model"])
                # before: a head of another run or dataset with the same shape, or of another fold, was used as this
                # run's fold k, so predict, serve and the exported model mixed two runs' (or folds') answers
                fault = not_this_fold(ckpt, k, cfg, info["dataset"]["checksum"])
            except Exception as exc:  # truncated, another file, another run's head: torch's text advises unsafe loads
                raise TrainError(
                    f"run {run}: fold{k}/checkpoint.pt is damaged or not this run's ({type(exc).__name__}); "
                    "restore the run folder from a backup or train again"
                ) from None
            if fault == "other":  # or config.json was edited: either may be what changed
                raise TrainError(
                    f"run {run}: fold{k}/checkpoint.pt and config.json disagree (other data or settings); restore "
                    "the run folder from a backup or train again"
                )
            if fault is not None:
                raise TrainError(f"run {run}: fold{k}/checkpoint.pt holds {fault}; {_RESTORE}")
            heads.append(head)
        metrics, calibration = _metrics(run, info["positive_class"])
        arch = get_arch(cfg.arch)
        net = Net(freeze(backbone), MeanHead(heads)).eval().to(device)
        return cls(
            net,
            arch,
            EvalPreset(cfg.image_size, arch.mean, arch.std),
            classes,
            info["positive_class"],
            cfg.threshold,
            calibration,
            (metrics.get("triage") or {}).get("threshold"),
            run,
            info,
            metrics,
            list(folds),
        )

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def tensor(self, images: list[Image.Image]) -> torch.Tensor:
        return torch.stack([self.preset(im) for im in images]).to(self.device)

    @torch.inference_mode()
    def probs(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.head.probs(self.net.backbone(x))

    def triage(self, images: list[Image.Image], cam: bool = False) -> list[Triage]:
        """Probabilities, calibrated P(positive) and the decision for upright RGB images; with `cam`, the
        Grad-CAM of the decided class from the same forward pass (one backbone pass for every fold head)."""
        return self.triage_tensor(self.tensor(images), cam)

    def triage_tensor(self, x: torch.Tensor, cam: bool = False) -> list[Triage]:
        """`triage` on a batch already preprocessed by `self.preset` (serve does that per request, in parallel)."""
        x = x.to(self.device)
        if not cam:
            return self.decide(self.probs(x).cpu().numpy().astype(np.float64))
        with CamCapture(self.net.backbone, self.arch) as capture:
            feats = self.net.backbone(x)
            out = self.decide(self.net.head.probs(feats).detach().cpu().numpy().astype(np.float64))
            targets = torch.as_tensor([self.classes.index(t.predicted_class) for t in out], device=feats.device)
            score = self.net.head(feats)[torch.arange(len(out), device=feats.device), targets].sum()
            for t, c in zip(out, capture.cams(score, x.shape[-2:]), strict=True):
                t.cam = c
        return out

    def decide(self, p: np.ndarray) -> list[Triage]:
        """Calibrated P(positive) and the decision at the operating point from the fold-model mean's
        probabilities (N, classes): the one place that decides, whichever engine computed `p`."""
        pos = self.classes.index(self.positive) if self.positive else None
        out = []
        for row in p:
            probs = {c: float(v) for c, v in zip(self.classes, row, strict=True)}
            if pos is None:
                k = int(row.argmax())
                out.append(Triage(probs, None, None, self.classes[k], self.classes[k]))
                continue
            raw = float(row[pos])
            cal = float(self.calibration(np.array([raw]))[0]) if self.calibration else raw
            thr = self.operating_threshold if self.operating_threshold is not None else self.threshold
            refer = cal >= thr
            out.append(
                Triage(
                    probs, raw, cal, "refer" if refer else "routine", self.positive if refer else self.classes[1 - pos]
                )
            )
        return out
