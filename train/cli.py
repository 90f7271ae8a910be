"""`train`: run the paper's protocol on a dataset version, compare backbones, triage images.

Thin commands: read options, call one library function, render with rich (or --json).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from curate.output import JsonOpt, SafeGroup, console, err_console, fail, print_json, reported
from curate.privacy import make_private_by_default

app = typer.Typer(help="Train and evaluate mpox classifiers on an exported dataset version.", no_args_is_help=True,
                  add_completion=False, cls=SafeGroup)
RESUME_HINT = "interrupted; completed folds are saved — re-run with --resume to continue"


def _need_torch() -> None:
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError:
        fail("train needs torch and torchvision: pip install 'mpox-curate[train]'")


def _table2(result_sets: list[str], entries: list[tuple[str, dict]], title: str) -> Table:
    from train.metrics import METRIC_LABELS, METRICS, fmt

    short = {"val": "validation (CV folds)", "test": "test (before cropping)", "test_roi": "test (ROI crops)",
             "external": "external validation"}
    t = Table(title=title, title_justify="left", caption="mean (SD) over the fold models")
    t.add_column("Model")
    for m in METRICS:
        t.add_column(METRIC_LABELS[m], justify="right")
    for s in result_sets:
        t.add_row(f"[italic]{short.get(s, s)}[/]", *[""] * len(METRICS))
        for label, sets in entries:
            t.add_row(escape(label), *[fmt(sets[s][m]) if s in sets else "—" for m in METRICS])
    return t


@app.command("run")
def run_cmd(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset version: a folder, or NAME@VERSION under the workspace's exports/.")],
    arch: Annotated[str, typer.Option("--arch", "-a", help="Backbone: mobilenet_v2, shufflenet_v2, densenet121, resnet18, resnet34, swin_t, efficientnet_lite0.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder to create (default: runs/<name>-<version>/<arch>-s<seed>).")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs per fold (default: 150, the paper's).", min=1)] = 150,
    batch_size: Annotated[int, typer.Option(help="Batch size (default: 72).", min=1)] = 72,
    lr: Annotated[float, typer.Option(help="Adam learning rate (default: 3e-4).")] = 3e-4,
    folds: Annotated[Optional[int], typer.Option(help="Cross-validation folds; must match the export (default: the export's, 5 in the paper).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for heads, batches, augmentation and random weights (default: 0).")] = 0,
    device: Annotated[str, typer.Option(help="torch device (default: cpu).")] = "cpu",
    weights: Annotated[str, typer.Option(help="imagenet (torchvision cache/download; the package file for efficientnet_lite0), none (random, for tests), or a state-dict FILE (default: imagenet).")] = "imagenet",
    image_size: Annotated[Optional[int], typer.Option(help="Square input size (default: the export's, 320 in the paper).")] = None,
    dropout: Annotated[float, typer.Option(help="Dropout before the new classifier (default: 0.2).")] = 0.2,
    balance: Annotated[bool, typer.Option("--balance/--no-balance", help="Offline augmentation of minority classes (default: on).")] = True,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Train the head on cached backbone features (default: on).")] = True,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Feature cache folder (default: <run parent>/feature-cache).")] = None,
    unfreeze: Annotated[bool, typer.Option("--unfreeze", help="Fine-tune the whole network on images (no cache; default: off).")] = False,
    threshold: Annotated[float, typer.Option(help="Decision threshold on P(mpox) (default: 0.5).")] = 0.5,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run folder: finished folds are kept.")] = False,
    workspace: Annotated[Optional[Path], typer.Option("--workspace", "-w", envvar="CURATE_WORKSPACE", help="Workspace for NAME@VERSION (default: current folder).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train one backbone with 5-fold cross-validation and evaluate every fold model.

    Example:
        train run --dataset mpox@1.0.0 --arch densenet121
    """
    _need_torch()
    from train.recipe import TrainConfig, run

    if out is None:
        ref = dataset.replace("@", "-") if "@" in dataset else Path(dataset).name
        out = Path("runs") / ref / f"{arch}-s{seed}"
    cfg = TrainConfig(dataset=dataset, arch=arch, out=str(out), epochs=epochs, batch_size=batch_size, lr=lr, folds=folds,
                      seed=seed, device=device, weights=weights, dropout=dropout, image_size=image_size, balance=balance,
                      cache=cache, cache_dir=str(cache_dir) if cache_dir else None, unfreeze=unfreeze,
                      threshold=threshold, workspace=str(workspace) if workspace else None)
    with reported(RESUME_HINT), _progress(disable=as_json) as progress:
        path = run(cfg, resume=resume, progress=progress, command=_command_line(cfg))
    metrics = json.loads((path / "metrics.json").read_text())
    if as_json:
        print_json({"run": str(path), **metrics})
        return
    sets = [s for s in ("val", "test", "test_roi", "external") if s in metrics["sets"]]
    console.print(_table2(sets, [(metrics["label"], metrics["sets"])], f"{metrics['label']} on {metrics['dataset']}"))
    console.print(f"run folder: {path}  (report.md)")


@app.command("compare")
def compare_cmd(
    runs: Annotated[List[Path], typer.Argument(help="Run folders (one per backbone).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for compare.md and roc_compare.png (default: none written).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """One Table-2-shaped table across backbones, plus a ROC figure.

    Example:
        train compare runs/mpox-1.0.0/*-s0 --out runs/mpox-1.0.0/compare
    """
    from train.report import compare_runs

    with reported():
        result = compare_runs(runs, out)
    if as_json:
        print_json(result)
        return
    console.print(_table2(result["sets"], [(r["label"], r["sets"]) for r in result["runs"]], "Model evaluation across folds"))
    if not result["same_dataset"]:
        err_console.print("[yellow]warning:[/] these runs used different dataset versions")
    for f in result.get("files", []):
        console.print(f"wrote {f}")


@app.command("predict")
def predict_cmd(
    images: Annotated[List[Path], typer.Argument(help="Image files to triage.")],
    run: Annotated[Path, typer.Option("--run", "-r", help="A finished run folder.")],
    threshold: Annotated[Optional[float], typer.Option(help="Decision threshold on P(mpox) (default: the run's, 0.5).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for Grad-CAM overlays (default: <run>/predict).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Probability of mpox (mean of the fold models), the decision, and a Grad-CAM overlay per image.

    Example:
        train predict photo1.jpg photo2.jpg --run runs/mpox-1.0.0/densenet121-s0
    """
    _need_torch()
    from train.predict import predict

    with reported():
        results = predict(run, images, threshold, out)
    if as_json:
        print_json(results)
        return
    t = Table(title=f"Triage with {run}", title_justify="left")
    for c in ("image", "P(positive)", "threshold", "decision", "Grad-CAM"):
        t.add_column(c, justify="left" if c in ("image", "Grad-CAM") else "right")
    for r in results:
        p = r["p_positive"] if r["p_positive"] is not None else max(r["probabilities"].values())
        t.add_row(Path(r["image"]).name, f"{p:.3f}", f"{r['threshold']:.2f}", r["decision"], r["gradcam"])
    console.print(t)


def _command_line(cfg) -> list[str]:
    """The effective command, every option spelled out, so the run folder says exactly what ran."""
    from dataclasses import asdict

    flags = {"balance": ("--balance", "--no-balance"), "cache": ("--cache", "--no-cache"), "unfreeze": ("--unfreeze", None)}
    cmd = ["train", "run"]
    for key, value in asdict(cfg).items():
        if key in ("gradcam_images", "report") or value is None:
            continue
        if key in flags:
            on, off = flags[key]
            if value or off:
                cmd.append(on if value else off)
            continue
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    return cmd


class _progress:
    """rich progress bars as the recipe's `progress(description, total) -> advance(n)` callback."""

    def __init__(self, disable: bool):
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=err_console, disable=disable, transient=False)

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def __call__(self, description: str, total: int):
        task = self.bar.add_task(description, total=total)
        return lambda n: self.bar.advance(task, n)


def main() -> None:
    make_private_by_default()  # runs, galleries and overlays hold patient photos: owner-only (umask 0o077)
    app()


if __name__ == "__main__":
    main()
