"""Benchmark: the paper's protocol (150 epochs × 5 folds, one backbone) on a ~2,200-image export,
plain image loop vs cached features; plus feature-extraction throughput per backbone and the
estimated six-backbone grid time.

The plain loop is *measured* on a few training batches (decode + preprocess + frozen forward +
head step) and *extrapolated* to 150 epochs × 5 folds plus evaluation; the cached run is measured
end to end (feature extraction, all 750 head epochs, evaluation, report).

    .venv/bin/python bench/train.py                 # paper-sized export, 320 px, resnet18
    .venv/bin/python bench/train.py --scale 0.25    # quicker: a quarter of the images
    .venv/bin/python bench/train.py --device cuda   # on a GPU (bfloat16 autocast, as `train run --device cuda`)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import torch
from train_fixtures import write_export

from curate.dataset import DatasetVersion
from train.config import TrainConfig
from train.data import ImageItems, build_datasets, make_loader
from train.device import autocast, resolve_device
from train.features import compute_features
from train.loop import build_optimizer, train_one_epoch
from train.models import ARCHS, PAPER_ARCHS, FrozenNet, Head, build_backbone, freeze, get_arch
from train.presets import EvalPreset
from train.recipe import run

# the paper's Table 1 / Figure 1 split sizes
PAPER_COUNTS = {
    "train": {"mpox": 274, "non_mpox": 1172},
    "test": {"mpox": 70, "non_mpox": 76},
    "external": {"mpox": 277, "non_mpox": 317},
}


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="train: plain loop vs cached features", add_help=add_help)
    p.add_argument(
        "--out", default=str(ROOT / "bench" / "out" / "train"), help="work folder (default: bench/out/train)"
    )
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the paper's image counts (default: 1.0)")
    p.add_argument("--size", type=int, default=320, help="image size (default: 320)")
    p.add_argument("--arch", default="resnet18", help="backbone for the protocol run (default: resnet18)")
    p.add_argument("--epochs", type=int, default=150, help="epochs per fold (default: 150)")
    p.add_argument(
        "--plain-batches", type=int, default=3, help="training batches timed for the plain loop (default: 3)"
    )
    p.add_argument("--throughput-images", type=int, default=48, help="images per backbone for throughput (default: 48)")
    p.add_argument("--skip-grid", action="store_true", help="skip the per-backbone throughput table")
    p.add_argument("--batch", type=int, default=16, help="batch size of the throughput table (default: 16)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto, as `train run --device` (default: cpu)")
    return p


def sync(device: str) -> None:
    """Wait for queued GPU work, so that a wall-clock reading covers it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def where(device: str) -> dict:
    """What ran the benchmark, for results.json and the README's tables."""
    info = {"device": device, "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(args) -> dict:
    device = resolve_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counts = {s: {c: max(2, round(n * args.scale)) for c, n in per.items()} for s, per in PAPER_COUNTS.items()}
    name = f"bench-{args.size}-{args.scale}"
    version = out / "exports" / name / "1.0.0"
    if not version.exists():
        t0 = time.perf_counter()
        write_export(out, name=name, counts=counts, size=args.size, seed=0)
        print(f"wrote export {version} in {time.perf_counter() - t0:.0f} s")
    ds = DatasetVersion.open(version)
    cfg = TrainConfig(dataset=str(version), arch=args.arch, out="", weights="none", epochs=args.epochs)
    cfg = TrainConfig(**{**cfg.__dict__, "folds": 5, "image_size": args.size})
    plan = build_datasets(ds, cfg)
    n_unique = len(
        {it.key for k in plan.folds for it in plan.train[k] + plan.val[k]}
        | {it.key for items in plan.eval_sets.values() for it in items}
    )
    n_train_per_epoch = sum(len(plan.train[k]) for k in plan.folds) / len(plan.folds)
    n_eval_per_fold = sum(len(plan.val[k]) for k in plan.folds) / len(plan.folds) + sum(
        len(v) for v in plan.eval_sets.values()
    )
    print(
        f"export: {len(ds.rows)} images, {plan.n_augmented} augmented copies, {n_unique} distinct backbone inputs; "
        f"{n_train_per_epoch:.0f} training images per fold-epoch"
    )
    print("device: " + ", ".join(f"{k} {v}" for k, v in where(device).items()))

    # --- plain loop, measured on a few batches
    arch = get_arch(args.arch)
    backbone, dim, _ = build_backbone(args.arch, "none", seed=0)
    freeze(backbone)
    preset = EvalPreset(args.size, arch.mean, arch.std)
    torch.manual_seed(0)
    model = FrozenNet(backbone, Head(dim, 2)).to(device)
    items = plan.train[0][: args.plain_batches * cfg.batch_size]
    loader = make_loader(ImageItems(items, preset), cfg.batch_size, True, 0)
    opt = build_optimizer(model, cfg)
    with torch.no_grad(), autocast(device):  # warm-up, not timed
        model.eval()(torch.stack([preset(it.image()) for it in items[:4]]).to(device))
    sync(device)
    t0 = time.perf_counter()
    train_one_epoch(model, loader, opt, torch.nn.CrossEntropyLoss(), device)
    sync(device)
    plain_per_image = (time.perf_counter() - t0) / len(items)
    plain_total = plain_per_image * (n_train_per_epoch * args.epochs * 5 + n_eval_per_fold * 5)
    print(
        f"plain loop: {1 / plain_per_image:.1f} training images/s measured on {len(items)} images; "
        f"extrapolated {args.epochs} epochs × 5 folds + evaluation = {plain_total / 3600:.1f} h"
    )

    # --- cached features, end to end (cold cache, then warm)
    results = {
        **where(device),
        "scale": args.scale,
        "size": args.size,
        "arch": args.arch,
        "epochs": args.epochs,
        "export_images": len(ds.rows),
        "augmented": plan.n_augmented,
        "distinct_inputs": n_unique,
        "plain_images_per_s": 1 / plain_per_image,
        "plain_extrapolated_s": plain_total,
    }
    cache_dir = out / "feature-cache"
    for label in ("cold", "warm"):
        run_dir = out / "runs" / f"{args.arch}-{label}-{int(time.time())}"
        if label == "cold" and cache_dir.exists():
            import shutil

            shutil.rmtree(cache_dir)
        t0 = time.perf_counter()
        run(
            TrainConfig(
                dataset=str(version),
                arch=args.arch,
                out=str(run_dir),
                weights="none",
                epochs=args.epochs,
                cache_dir=str(cache_dir),
                device=device,
            )
        )
        wall = time.perf_counter() - t0
        info = json.loads((run_dir / "run.json").read_text())
        results[f"cached_{label}_s"] = wall
        results[f"cached_{label}_features_s"] = info["feature_seconds"]
        results[f"cached_{label}_train_eval_s"] = info["train_seconds"]
        rest = wall - info["feature_seconds"] - info["train_seconds"]  # model build, triage analysis, report
        results[f"cached_{label}_rest_s"] = rest
        print(
            f"cached ({label} cache): {wall:.0f} s wall (features {info['feature_seconds']:.0f} s, "
            f"{args.epochs * 5} head epochs + evaluation {info['train_seconds']:.0f} s, "
            f"triage analysis + report {rest:.0f} s)"
        )
    results["ratio_cold"] = plain_total / results["cached_cold_s"]
    results["ratio_warm"] = plain_total / results["cached_warm_s"]
    print(f"speed-up: {results['ratio_cold']:.0f}× with a cold cache, {results['ratio_warm']:.0f}× warm")

    # --- per-backbone throughput and the six-backbone grid
    if not args.skip_grid:
        sample = plan.train[0][: args.throughput_images]
        head_s = results["cached_warm_s"]  # head training + eval + report, measured for args.arch
        grid = 0.0
        results["throughput"] = {}
        for name_ in list(ARCHS):
            b, _, _ = build_backbone(name_, "none", seed=0)
            freeze(b).to(device)
            pre = EvalPreset(args.size, ARCHS[name_].mean, ARCHS[name_].std)
            compute_features(b, sample[: args.batch], pre, args.batch, device)  # warm-up at the timed batch size
            t0 = time.perf_counter()
            compute_features(b, sample, pre, args.batch, device)  # ends with a copy to the CPU: synchronised
            ips = len(sample) / (time.perf_counter() - t0)
            est = n_unique / ips + head_s
            results["throughput"][name_] = {"images_per_s": ips, "protocol_s": est}
            if name_ in PAPER_ARCHS:
                grid += est
            print(f"  {name_:<20} {ips:6.1f} images/s  -> protocol ≈ {est / 60:5.1f} min (cold cache)")
        results["six_backbone_grid_s"] = grid
        ips = {a: results["throughput"][a]["images_per_s"] for a in PAPER_ARCHS}
        plain_grid = sum(plain_total * ips.get(args.arch, ips["resnet18"]) / ips[a] for a in PAPER_ARCHS)
        results["six_backbone_grid_plain_s"] = plain_grid
        print(
            f"six-backbone grid (paper's backbones, cold caches): ≈ {grid / 3600:.2f} h cached; "
            f"plain loop ≈ {plain_grid / 3600:.0f} h (scaled from {args.arch} by forward throughput)"
        )
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main(get_args_parser().parse_args())
