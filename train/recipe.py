"""The paper's training recipe (Soe et al. 2024, JMIR), top to bottom: `run(cfg)`.

Frozen ImageNet backbone, new head (dropout 0.2 + linear), Adam lr 3e-4, cross-entropy, batch 72,
320×320, 150 epochs, 5-fold cross-validation on the train split, minority class balanced by offline
augmentation; every fold model is evaluated on the test split, its ROI crops, and the external split.

Because the backbone is frozen and in eval mode, its output per image never changes: by default the
features are computed once (`train.features`) and only the head is trained on them. The plain image
loop (`cache=False`) gives the same predictions within float tolerance; `unfreeze=True` fine-tunes
everything on images.

Laid out like torchvision's classification reference: `config` (TrainConfig), `data` (folds,
datasets, loaders, features), `loop` (train_one_epoch, evaluate, one fold), `rundir` (the files a run
writes), and this short `run`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from curate.dataset import refuse_sealed
from train import report, triage
from train.config import TrainConfig
from train.data import ModelInputs, ProgressFn, build_datasets, no_progress, open_dataset
from train.device import resolve_device
from train.loop import evaluate_fold, fresh_backbone, restore_model, seed_everything, train_fold
from train.models import freeze, get_arch
from train.outputs import write_json
from train.presets import EvalPreset
from train.rundir import (
    cache_folder,
    finished_info,
    fold_path,
    held_run,
    load_fold,
    prepare_run_dir,
    run_info,
    save_fold,
    write_results,
)


def _outside_version(cfg: TrainConfig) -> None:
    """A run folder or feature cache inside a dataset version is refused (`curate.dataset.refuse_sealed`): before,
    the run's files made the version fail its checksums for every later run ("120 extra")."""
    cache = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.out).parent / "feature-cache"
    used = [("--out", Path(cfg.out))] + ([("the feature cache", cache)] if cfg.cache and not cfg.unfreeze else [])
    for what, folder in used:
        refuse_sealed(folder, what)


def run(
    cfg: TrainConfig, resume: bool = False, progress: ProgressFn = no_progress, command: list | None = None
) -> Path:
    """Train and evaluate every fold model; write the run folder; return its path."""
    cfg.validate()
    arch = get_arch(cfg.arch)
    cfg = replace(cfg, device=resolve_device(cfg.device))
    ds = open_dataset(cfg)
    _outside_version(cfg)
    cfg = replace(
        cfg,
        image_size=cfg.image_size or int((ds.meta.get("image_size") or [320])[0]),
        folds=cfg.folds or int(ds.meta.get("folds") or len(ds.folds())),
    )
    plan = build_datasets(ds, cfg)
    seed_everything(cfg.seed)
    t_start = time.perf_counter()
    backbone, dim, weights_id = fresh_backbone(cfg)
    freeze(backbone).to(cfg.device)
    cache_root = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.out).parent / "feature-cache"
    if cfg.cache and not cfg.unfreeze:
        cache_folder(cache_root)  # shared by runs: made even when the run is refused next
    out = prepare_run_dir(cfg, ds, resume)  # after every start-up check: a refused run leaves no run folder behind
    with held_run(out) as state:  # one run in this folder at a time; how it ends is recorded
        state["previous"] = finished_info(out) if resume else None
        preset = EvalPreset(cfg.image_size, arch.mean, arch.std)
        write_json(out / "config.json", {**asdict(cfg), "command": command or sys.argv})
        info = run_info(cfg, ds, plan, dim, weights_id, preset) | {"started": datetime.now(UTC).isoformat()}
        write_json(out / "run.json", info)

        inputs = ModelInputs(cfg, backbone, dim, weights_id, preset, cache_root, progress)
        t0 = time.perf_counter()
        inputs.prepare(
            [it for k in plan.folds for it in plan.train[k] + plan.val[k]]
            + [it for images in plan.eval_sets.values() for it in images]
        )
        info["feature_seconds"] = time.perf_counter() - t0
        if inputs.cache:
            st = inputs.cache.stats
            info["cache"] = {
                "dir": str(inputs.cache.dir),
                "hits": st.hits,
                "computed": st.computed,
                "corrupt_recomputed": st.corrupt,
            }

        rows, per_fold, models = [], {}, {}
        t0 = time.perf_counter()
        for k in plan.folds:
            ckpt = load_fold(fold_path(out, k), k, cfg, ds.checksum) if resume else None
            if ckpt is None:
                state["replacing"] = True  # a fold model trained anew: the finished run's results no longer hold
                model, ckpt = train_fold(k, plan, inputs, cfg, progress)
                save_fold(
                    fold_path(out, k),
                    ckpt
                    | {
                        "dataset_checksum": ds.checksum,
                        "dataset": ds.ref,
                        "weights_id": weights_id,
                        "feature_dim": dim,
                        "arch": cfg.arch,
                        "classes": plan.classes,
                    },
                )
            else:
                model = restore_model(ckpt, inputs, cfg, len(plan.classes))
            models[k] = model
            per_fold[k], fold_rows = evaluate_fold(k, model, plan, inputs, cfg, ds.path)
            rows += fold_rows
        info["train_seconds"] = time.perf_counter() - t0

        state["replacing"] = True  # from here the finished run's results are rewritten
        metrics = write_results(out, rows, per_fold, plan, cfg, ds, arch.label, info["positive_class"])
        metrics["triage"] = triage.analyse(
            out,
            rows,
            plan.classes,
            info["positive_class"],
            ds.groups(),
            cfg.threshold,
            cfg.target_sensitivity,
            cfg.seed,
            cfg.bootstrap,
        )
        write_json(out / "metrics.json", metrics)
        if cfg.report:
            report.write_run_report(out, cfg, info, metrics, plan, models, inputs, arch)
        info |= {
            "status": "complete",
            "finished": datetime.now(UTC).isoformat(),
            "total_seconds": time.perf_counter() - t_start,
        }
        write_json(out / "run.json", info)
        return out
