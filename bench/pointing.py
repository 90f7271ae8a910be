"""Benchmark: the pointing game (Grad-CAM of the fold-model ensemble vs the lesion box) on the serve
benchmark's EfficientNet-Lite0 run, in images per second, at 1 and 2 torch threads.

    .venv/bin/python bench/pointing.py [--images 48]      # prints a table; --json for scripts
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests")]

import serve as serve_bench
import torch

from curate.dataset import DatasetVersion
from train import pointing
from train.ensemble import Ensemble
from train.presets import ImageRef


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="pointing game speed", add_help=add_help, parents=[serve_bench.get_args_parser(False)]
    )
    p.add_argument("--images", type=int, default=48, help="boxed test images to score (default: 48)")
    p.add_argument("--threads-list", default="1,2", help="torch threads to try (default: 1,2)")
    return p


def main(args) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run, _ = serve_bench.prepare(out, args)
    model = Ensemble.load(run)
    ds = DatasetVersion.open(model.info["dataset"]["path"])
    boxes = ds.roi_boxes()
    refs = [ImageRef(s.path, s.sha256, s.target, s.image_id) for s in ds.samples("test") if s.image_id in boxes][
        : args.images
    ]
    cells = []
    for threads in [int(t) for t in args.threads_list.split(",")]:
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        pointing.pointing_game(model.net, model.arch, model.preset, {"test": refs}, boxes, model.classes, {})
        took = time.perf_counter() - t0
        cells.append({"threads": threads, "images": len(refs), "seconds": took, "images_per_s": len(refs) / took})
    return {"cells": cells, "size": model.preset.size, "load_average": os.getloadavg(), "cpus": os.cpu_count()}


def render(r: dict) -> None:
    print(
        f"pointing game, EfficientNet-Lite0 ensemble at {r['size']} px, {r['cpus']} CPUs, load "
        f"{r['load_average'][0]:.1f}"
    )
    print(f"{'threads':>7} {'images':>6} {'seconds':>8} {'images/s':>8}")
    for c in r["cells"]:
        print(f"{c['threads']:>7} {c['images']:>6} {c['seconds']:>8.1f} {c['images_per_s']:>8.1f}")


if __name__ == "__main__":
    a = get_args_parser().parse_args()
    res = main(a)
    print(json.dumps(res, indent=2)) if a.json else render(res)
