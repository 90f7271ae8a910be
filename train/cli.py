"""`train`: run the paper's protocol on a dataset version, compare backbones, triage images.

Thin commands: read options, call one library function, render with rich (or --json).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from curate.net import is_loopback
from curate.output import (
    JsonOpt,
    SafeGroup,
    console,
    err_console,
    fail,
    one_line,
    print_json,
    progress_bars,
    reported,
    shown,
    stop_on_sigterm,
)
from curate.privacy import make_private_by_default
from train.choices import ArchName, ExportFormat, ServeEngine
from train.config import OPEN_RANGES, RANGES, TrainConfig, check_range, refuse_existing
from train.device import Device
from train.errors import TrainError
from train.serve import LOCK_AFTER, LOCK_SECONDS

app = typer.Typer(
    help="Train and evaluate mpox classifiers on an exported dataset version.\n\n"
    "Example: train run --dataset mpox@1.0.0 --arch densenet121",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # SafeGroup says one line; typer's traceback would print locals (paths, keys)
    add_completion=False,
    cls=SafeGroup,
    rich_markup_mode=None,  # click's plain help and usage errors, as `curate` (before: a boxed panel)
)
STOP_GRACE_S = 10  # `train serve` stopping: seconds it gives answers in progress
RESUME_HINT = "interrupted; completed folds are saved — re-run with --resume to continue"
SERVE_EXTRA = "train serve needs {}: pip install 'mpox-curate[serve]'"


def _need_torch() -> None:
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError:
        fail("train needs torch and torchvision: pip install 'mpox-curate[train]'")


def _in_range(name: str) -> Callable[[float], float]:
    """`OPEN_RANGES[name]`'s check as click's usage error (exit 2, as --epochs 0 is): before, --lr 5 was exit 1 as a
    run's failure; `TrainConfig.validate` says the same to a caller of the recipe. NaN is in no range."""
    low, high, ends = OPEN_RANGES[name]

    def check(value: float) -> float:
        try:
            check_range("", value, low, high, **ends)
        except TrainError as exc:
            raise typer.BadParameter(str(exc).removeprefix(" must be ")) from None
        return value

    return check


def _table2(result_sets: list[str], entries: list[tuple[str, dict]], title: str) -> Table:
    from train.metrics import METRIC_LABELS, METRICS, fmt

    short = {
        "val": "validation (CV folds)",
        "test": "test (before cropping)",
        "test_roi": "test (ROI crops)",
        "external": "external validation",
    }
    t = Table(title=title, title_justify="left", caption="mean (SD) over the fold models")
    t.add_column("Model")
    for m in METRICS:
        t.add_column(METRIC_LABELS[m], justify="right")
    for s in result_sets:
        t.add_row(f"[italic]{short.get(s, s)}[/]", *[""] * len(METRICS))
        for label, sets in entries:
            t.add_row(escape(label), *[fmt(sets[s][m]) if s in sets else "—" for m in METRICS])
    return t


def _triage_table(entries: list[tuple[str, dict]]) -> Table:
    """Calibration and the operating point per set, with 95 % bootstrap CIs (train.triage)."""
    from train.report_triage import ci_text

    t = Table(
        title="Triage: calibrated, at the operating point chosen on out-of-fold predictions",
        title_justify="left",
        caption="value [95 % bootstrap CI by image group]",
    )
    for c in (
        "Model",
        "set",
        "threshold",
        "ECE before→after",
        "Brier after",
        "sensitivity",
        "specificity",
        "PPV",
        "NPV",
        "sens. @95 % spec.",
    ):
        t.add_column(c, justify="left" if c in ("Model", "set") else "right")
    for label, tri in entries:
        for s, d in tri["sets"].items():
            c = d["calibration"]
            t.add_row(
                escape(label),
                s,
                f"{tri['threshold']:.3f}",
                f"{c['ece_before']:.3f}→{c['ece_after']:.3f}",
                f"{c['brier_after']:.3f}",
                *[ci_text(d, k) for k in ("sensitivity", "specificity", "ppv", "npv", "sens_at_95_spec")],
            )
    return t


def _places(score: float | None, threshold: float | None) -> int:
    """Decimal places (3 to 6) at which `score` and `threshold` no longer print alike."""
    if score is None or threshold is None:
        return 3
    return next((n for n in range(3, 7) if f"{score:.{n}f}" != f"{threshold:.{n}f}"), 6)


@app.command("run")
def run_cmd(
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset", "-d", help="Dataset version: a folder, or NAME@VERSION under the workspace's exports/."
        ),
    ],
    arch: Annotated[
        ArchName, typer.Option("--arch", "-a", help="Backbone: the paper's six (torchvision) or efficientnet_lite0.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Run folder to create (default: runs/<name>-<version>/<arch>-s<seed>, in NAME@VERSION's workspace).",
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Epochs per fold (default: 150, the paper's).", min=1, max=10_000)] = 150,
    batch_size: Annotated[int, typer.Option(help="Batch size (default: 72).", min=1, max=4096)] = 72,
    lr: Annotated[
        float,
        typer.Option(help="Adam learning rate, above 0 and at most 1 (default: 3e-4).", callback=_in_range("lr")),
    ] = 3e-4,
    folds: Annotated[
        int | None,
        typer.Option(
            help="Cross-validation folds; must match the export (default: the export's, 5 in the paper).",
            min=RANGES["folds"][0],
            max=RANGES["folds"][1],
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed for heads, batches, augmentation and random weights (default: 0).",
            min=RANGES["seed"][0],
            max=RANGES["seed"][1],
        ),
    ] = 0,
    device: Annotated[
        Device,
        typer.Option(
            help=(
                "Where features are computed and heads trained; auto = cuda when a GPU is seen "
                "(bfloat16 autocast on cuda) (default: cpu)."
            )
        ),
    ] = Device.cpu,
    weights: Annotated[
        str,
        typer.Option(
            help=(
                "imagenet (torchvision cache/download; the package file for efficientnet_lite0), "
                "none (random, for tests), or a state-dict FILE (default: imagenet)."
            )
        ),
    ] = "imagenet",
    image_size: Annotated[
        int | None,
        typer.Option(
            help="Square input size (default: the export's, 320 in the paper).",
            min=RANGES["image_size"][0],
            max=RANGES["image_size"][1],
        ),
    ] = None,
    dropout: Annotated[
        float,
        typer.Option(
            help="Dropout before the new classifier, at least 0 and below 1 (default: 0.2).",
            callback=_in_range("dropout"),
        ),
    ] = 0.2,
    balance: Annotated[
        bool, typer.Option("--balance/--no-balance", help="Offline augmentation of minority classes (default: on).")
    ] = True,
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help="Train the head on cached backbone features (default: on).")
    ] = True,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Feature cache folder (default: <run parent>/feature-cache).")
    ] = None,
    unfreeze: Annotated[
        bool, typer.Option("--unfreeze", help="Fine-tune the whole network on images (no cache; default: off).")
    ] = False,
    threshold: Annotated[
        float,
        typer.Option(
            help="Decision threshold on P(mpox) for the Table-2 metrics (default: 0.5).",
            min=float(RANGES["threshold"][0]),
            max=float(RANGES["threshold"][1]),
        ),
    ] = 0.5,
    target_sensitivity: Annotated[
        float,
        typer.Option(
            help=(
                "Triage operating point: threshold on calibrated P(mpox) reaching this sensitivity "
                "on out-of-fold predictions (default: 0.95)."
            ),
            min=float(RANGES["target_sensitivity"][0]),
            max=float(RANGES["target_sensitivity"][1]),
        ),
    ] = 0.95,
    bootstrap: Annotated[
        int,
        typer.Option(
            help="Bootstrap resamples (by image group) for the 95 % confidence intervals (default: 1000).",
            min=10,
            max=100_000,
        ),
    ] = 1000,
    pointing_max: Annotated[
        int | None,
        typer.Option(
            help="Pointing game: at most this many boxed images per set, a seeded sample (default: all).", min=1
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run folder: finished folds are kept.")
    ] = False,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace", "-w", envvar="CURATE_WORKSPACE", help="Workspace for NAME@VERSION (default: current folder)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train one backbone with 5-fold cross-validation and evaluate every fold model.

    \b
    Example:
        train run --dataset mpox@1.0.0 --arch densenet121
    """
    if out is None:
        named = "@" in dataset and not Path(dataset).exists()  # NAME@VERSION, as DatasetVersion.resolve reads it
        ref = dataset.replace("@", "-") if "@" in dataset else Path(dataset).name
        # a version of a workspace named by -w (or $CURATE_WORKSPACE) trains into that workspace's runs/: before,
        # into the current folder's, where the Grad-CAM crops of its photos sat outside the workspace, and
        # `curate status` never named the run when a photo in it was later flagged identifiable
        out = (workspace if named and workspace else Path()) / "runs" / ref / f"{arch.value}-s{seed}"
    cfg = TrainConfig(
        dataset=dataset,
        arch=arch.value,
        out=str(out),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        folds=folds,
        seed=seed,
        device=device.value,
        weights=weights,
        dropout=dropout,
        image_size=image_size,
        balance=balance,
        cache=cache,
        cache_dir=str(cache_dir) if cache_dir else None,
        unfreeze=unfreeze,
        threshold=threshold,
        workspace=str(workspace) if workspace else None,
        target_sensitivity=target_sensitivity,
        bootstrap=bootstrap,
        pointing_max=pointing_max,
    )
    with reported():  # before torch loads and before any folder exists: a refusal takes milliseconds
        cfg.validate()
        refuse_existing(out, resume)
    _need_torch()
    from train.recipe import run

    with reported(RESUME_HINT), _progress(disable=as_json) as progress:
        path = run(cfg, resume=resume, progress=progress, command=_command_line(cfg))
    metrics = json.loads((path / "metrics.json").read_text())
    stale = []
    if resume:  # the operating point a new --target-sensitivity moved: the run's exported models still hold the old
        from train.export_model import stale_exports

        stale = stale_exports(path)
    if as_json:
        print_json({"run": str(path), **metrics, "stale_exports": [str(p) for p in stale]})
        return
    sets = [s for s in ("val", "test", "test_roi", "external") if s in metrics["sets"]]
    console.print(_table2(sets, [(metrics["label"], metrics["sets"])], f"{metrics['label']} on {metrics['dataset']}"))
    if metrics.get("triage", {}).get("sets"):
        console.print(_triage_table([(metrics["label"], metrics["triage"])]))
    console.print(f"run folder: {shown(path)}  (report.md)")
    from train.calibration import unfit  # here: sklearn is slow to load for --help

    if warning := unfit((metrics.get("triage") or {}).get("calibration")):
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if stale:
        err_console.print(
            f"[yellow]warning:[/] {escape(', '.join(p.name for p in stale))} in the run folder hold the operating "
            "point and calibration from before this run; `train predict` and `train serve` use the new ones: run "
            "`train export-model` again, and replace every copy deployed",
            highlight=False,
            soft_wrap=True,
        )


@app.command("compare")
def compare_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (one per backbone).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for compare.md and roc_compare.png (default: none written)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """One Table-2-shaped table across backbones, plus a ROC figure.

    \b
    Example:
        train compare runs/mpox-1.0.0/*-s0 --out runs/mpox-1.0.0/compare
    """
    from train.report import compare_runs

    with reported():
        result = compare_runs(runs, out)
    if as_json:
        print_json(result)
        return
    console.print(
        _table2(result["sets"], [(r["label"], r["sets"]) for r in result["runs"]], "Model evaluation across folds")
    )
    triaged = [(r["label"], r["triage"]) for r in result["runs"] if (r.get("triage") or {}).get("sets")]
    if triaged:
        console.print(_triage_table(triaged))
    for r in result["runs"]:
        for s, d in ((r.get("pointing") or {}).get("sets") or {}).items():
            console.print(
                f"pointing game {escape(r['label'])} {s}: {d['pointing']:.3f} of {d['n']} boxed images "
                f"(CAM mass in box {d['mass']:.3f})"
            )
    if not result["same_dataset"]:
        err_console.print("[yellow]warning:[/] these runs used different dataset versions")
    for r in result["runs"]:
        if r["model_warning"]:
            err_console.print(
                f"[yellow]warning:[/] {escape(r['label'])}: {r['model_warning']}", highlight=False, soft_wrap=True
            )
    for f in result.get("files", []):
        console.print(f"wrote {shown(f)}")


@app.command("predict")
def predict_cmd(
    images: Annotated[list[Path], typer.Argument(help="Image files to triage.")],
    run: Annotated[Path, typer.Option("--run", "-r", help="A finished run folder.")],
    threshold: Annotated[
        float | None,
        typer.Option(
            help=(
                "Decide on uncalibrated P(mpox) >= this instead "
                "(default: the run's operating point on calibrated P(mpox))."
            ),
            min=float(RANGES["threshold"][0]),
            max=float(RANGES["threshold"][1]),
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help=(
                "Folder for Grad-CAM overlays, named by position: 000-gradcam.png, …; it must hold none yet "
                "(default: a new numbered folder, <run>/predict/001, 002, …)."
            ),
        ),
    ] = None,
    gradcam: Annotated[
        bool,
        typer.Option(
            "--gradcam/--no-gradcam",
            help="Draw a Grad-CAM overlay per image, at most 1024 px (--no-gradcam: probabilities only, faster).",
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Probability of mpox (mean of the fold models), the decision, and a Grad-CAM overlay per image.

    An unreadable input is one error line (an entry with "error" in --json); the others are still triaged,
    and the exit code is 1. A picture below 128 px (or the model's input size) on its shorter side is decided,
    with a warning.

    \b
    Example:
        train predict photo1.jpg photo2.jpg --run runs/mpox-1.0.0/densenet121-s0
    """
    _need_torch()
    from train.predict import predict

    # the overlays written before the stop stay; --out refuses a folder holding some, so the same command would not
    # continue (before, the hint said it would)
    stopped = "interrupted; run predict again" + (
        f" with another --out (the overlays so far stay in {out})" if out else " (a new numbered folder)"
    )
    with reported(stopped):
        results = predict(run, images, threshold, out, gradcam)
    done = [r for r in results if "error" not in r]
    if as_json:
        print_json(results)
    elif done:
        t = Table(title=f"Triage with {run}", title_justify="left")
        for c in ("image", "P(positive)", "calibrated", "threshold", "decision", "Grad-CAM"):
            t.add_column(c, justify="left" if c in ("image", "Grad-CAM") else "right")
        for r in done:
            p = r["p_positive"] if r["p_positive"] is not None else max(r["probabilities"].values())
            # the score the threshold is compared with, and the threshold, to as many places as tell them apart
            # (before: "0.242 | 0.242 (cal.) | routine", for 0.24172 under 0.24231)
            compared = r.get("p_calibrated") if r["calibrated"] else p
            n = _places(compared, r["threshold"])
            cal = "—" if r.get("p_calibrated") is None else f"{r['p_calibrated']:.{n if r['calibrated'] else 3}f}"
            thr = "—" if r["threshold"] is None else f"{r['threshold']:.{n}f}" + (" (cal.)" if r["calibrated"] else "")
            low = " (low res.)" if r["low_resolution"] else ""
            # as given (two inputs named photo.jpg in two folders were two rows "photo.jpg"); control characters
            # shown, not obeyed
            name = shown(r["image"])
            value = f"{p:.{3 if r['calibrated'] else n}f}"
            t.add_row(name, value, cal, thr, r["decision"] + low, escape(r["gradcam"] or "—"))
        console.print(t)
    for model_warning in dict.fromkeys(r["model_warning"] for r in done if r.get("model_warning")):  # once
        err_console.print(f"[yellow]warning:[/] {escape(model_warning)}", highlight=False, soft_wrap=True)
    for r in results:  # after the table, so that a long one does not scroll them away
        if "error" in r:
            err_console.print(f"[bold red]error:[/] {escape(one_line(r['error']))}", highlight=False, soft_wrap=True)
        elif r["warning"]:
            err_console.print(f"[yellow]warning:[/] {escape(one_line(r['warning']))}", highlight=False, soft_wrap=True)
    if len(done) < len(results):
        raise typer.Exit(1)


@app.command("export-model")
def export_model_cmd(
    run: Annotated[Path, typer.Argument(help="A finished run folder.")],
    fmt: Annotated[
        ExportFormat,
        typer.Option("--format", "-f", help="onnx (onnxruntime, any language) or torchscript (default: onnx)."),
    ] = ExportFormat.onnx,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Model file to write (default: <run>/model.onnx or model.pt).")
    ] = None,
    fold: Annotated[
        int | None, typer.Option(help="Export this fold model alone (default: the mean of all fold models).", min=0)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """One file with the fold ensemble, preprocessing constants, class names, calibration, operating threshold
    and model card.

    \b
    Example:
        train export-model runs/mpox-1.0.0/efficientnet_lite0-s0 --format onnx --out triage.onnx
    """
    _need_torch()
    from train.calibration import unfit
    from train.export_model import export_model, read_metadata

    with reported():
        path = export_model(run, fmt, out, fold)
        meta, _card = read_metadata(path, fmt)
    summary = {
        "file": str(path),
        "card": str(path) + ".card.md",
        "format": fmt.value,
        "bytes": path.stat().st_size,
        "model": meta["model"],
        "input_size": meta["input"]["size"],
        "classes": meta["classes"],
        "operating_threshold": meta["operating_threshold"],
        "model_warning": unfit(meta["calibration"]),  # as run, compare, predict and serve say it
    }
    if as_json:
        print_json(summary)
        return
    thr = "—" if summary["operating_threshold"] is None else f"{summary['operating_threshold']:.4f}"
    console.print(
        f"wrote {path} ({summary['bytes'] / 1e6:.1f} MB, {meta['model']}, input {summary['input_size']} px, "
        f"operating threshold {thr}) and its model card {summary['card']}"
    )
    if summary["model_warning"]:
        err_console.print(f"[yellow]warning:[/] {escape(summary['model_warning'])}", highlight=False, soft_wrap=True)


@app.command("serve")
def serve_cmd(
    run: Annotated[Path, typer.Argument(help="A finished run folder.")],
    host: Annotated[
        str, typer.Option(help="Address to listen on; 127.0.0.1 keeps it on this machine (default: 127.0.0.1).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (default: 8000).", min=0, max=65535)] = 8000,
    fold: Annotated[
        int | None, typer.Option(help="Serve this fold model alone (default: the mean of all fold models).", min=0)
    ] = None,
    device: Annotated[Device, typer.Option(help="Where the model runs (default: cpu).")] = Device.cpu,
    queue: Annotated[
        int,
        typer.Option(
            help=(
                "Photos that may be uploading or waiting; more get HTTP 429 before their upload is read (default: 32)."
            ),
            min=1,
        ),
    ] = 32,
    max_batch: Annotated[
        int, typer.Option(help="Waiting photos run through the network together, up to this many (default: 8).", min=1)
    ] = 8,
    max_mb: Annotated[int, typer.Option(help="Largest upload in MB; larger gets HTTP 413 (default: 20).", min=1)] = 20,
    max_megapixels: Annotated[
        int, typer.Option(help="Largest image in megapixels (decompression bombs) (default: 40).", min=1)
    ] = 40,
    keep_uploads: Annotated[
        Path | None,
        typer.Option(
            help=(
                "Also save every upload that decodes here (mode 0600), byte for byte as the phone sent it: its EXIF "
                "(GPS, time) included, for a clinic's audit trail; by default uploads stay in memory and are never "
                "written or logged."
            )
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help=(
                "CPU threads for the network (torch and onnxruntime); the other cores decode uploads "
                "(default: half the cores, at least 1)."
            ),
            min=1,
        ),
    ] = None,
    engine: Annotated[
        ServeEngine,
        typer.Option(
            help=(
                "What runs the network for requests without Grad-CAM: onnxruntime (the export-model graph, "
                "checked against torch at start-up), torch, or auto = onnxruntime when installed and --device is "
                "the CPU (default: auto)."
            )
        ),
    ] = ServeEngine.auto,
    login: Annotated[
        str | None,
        typer.Option(
            metavar="USER",
            help=(
                "Require this user name and a password (HTTP Basic) on every route but /healthz (GET or HEAD); the "
                "password comes from $TRAIN_SERVE_PASSWORD, or is asked for (hidden, twice) in a terminal, never from "
                "an option."
            ),
        ),
    ] = None,
    lock_after: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="N",
            help=(
                f"With --login: an address that sends N wrong logins within {LOCK_SECONDS / 60:g} minutes is answered "
                f"429 until the oldest is {LOCK_SECONDS / 60:g} minutes old; 0 never locks (behind a proxy every "
                "client shares its address)."
            ),
        ),
    ] = LOCK_AFTER,
    tls_cert: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Serve HTTPS with this PEM certificate (with --tls-key).")
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="The certificate's unencrypted PEM private key, mode 0600 (with --tls-cert)."
        ),
    ] = None,
) -> None:
    """A web page (choose or capture a photo) and a JSON API for triage with a finished run.

    \b
    Example:
        train serve runs/mpox-1.0.0/efficientnet_lite0-s0 --port 8000
        train serve RUN --host 0.0.0.0 --login clinic --tls-cert cert.pem --tls-key key.pem
    """
    if (tls_cert is None) != (tls_key is None):
        given, missing = ("--tls-cert", "--tls-key") if tls_key is None else ("--tls-key", "--tls-cert")
        raise typer.BadParameter(f"{given} needs {missing}: HTTPS takes both", param_hint=missing)
    try:  # before torch: a wrong file or the password prompt comes at once, not after seconds of imports
        from train.serve.auth import PASSWORD_ENV, Login, check_tls
    except ImportError as exc:
        fail(SERVE_EXTRA.format(exc.name))
    tls = tls_cert is not None
    with reported():
        if keep_uploads is not None:
            _check_keep_folder(keep_uploads)
        for line in check_tls(tls_cert, tls_key) if tls else []:
            err_console.print(f"[yellow]warning:[/] {escape(one_line(line))}", highlight=False)
        credentials = None
        if login is not None:
            password = os.environ.get(PASSWORD_ENV)
            if password is None and not sys.stdin.isatty():
                fail(f"--login: no password; put it in {PASSWORD_ENV}, or start train serve in a terminal to be asked")
            if password is None:
                Login.check_user(login)  # before asking, not after
                password = typer.prompt(f"password for {login}", hide_input=True, confirmation_prompt=True)
            credentials = Login(login, password, lock_after=lock_after)
    # a stop while the model loads is as much a stop as one while serving (before: "error: terminated (SIGTERM);
    # re-run the same command to continue", exit 143, which a service manager records as a failure)
    with reported(stop_ends=True):
        _need_torch()
        try:
            from train.photos import Limits
            from train.serve import listen
            from train.serve.app import ServeSettings, create_app, hosts_for
            from train.serve.engines import default_threads
        except ImportError as exc:
            fail(SERVE_EXTRA.format(exc.name))
        import torch

        from train.device import resolve_device
        from train.ensemble import Ensemble

        threads = threads or default_threads()
        torch.set_num_threads(threads)
        settings = ServeSettings(
            Limits(max_mb * 1024 * 1024, max_megapixels * 1_000_000),
            queue,
            max_batch,
            keep_uploads,
            engine,
            threads,
            allowed_hosts=hosts_for(host),
            login=credentials,
        )
        socks = listen.bind(host, port)  # a busy port is one line now, not after the model's load
        _warn_exposure(host, credentials is not None, tls)  # after the bind: never a warning for an address refused
        try:
            model = Ensemble.load(run, fold=fold, device=resolve_device(device.value))
            web = create_app(model, settings)
        except BaseException:
            for sock in socks:
                sock.close()
            raise
        err_console.print(
            f"serving {run} on {'https' if tls else 'http'}://{f'[{host}]' if ':' in host else host}:"
            f"{socks[0].getsockname()[1]}/ "
            f"with {web.state.worker.engine.name}, "
            f"{threads} thread(s){', login required' if credentials else ''}  "
            "(API: POST /api/predict, GET /healthz; Ctrl-C stops)"
        )
        if web.state.model_warning:  # also in every answer and on the page
            err_console.print(f"[yellow]warning:[/] {web.state.model_warning}", highlight=False, soft_wrap=True)
        # a stop waits STOP_GRACE_S for answers in progress, not for a stalled upload's 120 s (nor a service
        # manager's 90 s before its SIGKILL); uvicorn stops gracefully, then raises the signal again: `reported` ends
        listen.server(web, tls=(tls_cert, tls_key) if tls else None, grace=STOP_GRACE_S).run(sockets=socks)


def _warn_exposure(host: str, login: bool, tls: bool) -> None:
    """What a server listening beyond loopback lets others do, short of both a login and HTTPS."""
    if is_loopback(host) or (login and tls):
        return
    anyone = "anyone who can reach it can upload photos and read the model's answers"
    if login:
        risk = "the password and the photos cross the network unencrypted; add --tls-cert and --tls-key"
    elif tls:
        risk = f"{anyone} without a login; add --login"
    else:
        risk = f"{anyone}, over plain HTTP, without a login; give it --login and --tls-cert/--tls-key"
    err_console.print(
        f"[yellow]warning:[/] listening on {escape(host)}: {risk}, or serve it to other machines only behind the "
        "clinic's HTTPS reverse proxy with authentication",
        highlight=False,
    )


def _check_keep_folder(folder: Path) -> None:
    """`--keep-uploads` made (0700) and written to once at start-up: a file in its place, or a folder that cannot
    be written, is one line now, not a 500 after every photo has been decoded and decided; a folder inside a dataset
    version is refused before it is made."""
    import tempfile

    from curate.dataset import refuse_sealed

    refuse_sealed(folder, "--keep-uploads")  # before: the first photo kept made the version fail its checksums
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        why = "not a folder" if isinstance(exc, (FileExistsError, NotADirectoryError)) else "cannot be written"
        raise TrainError(f"--keep-uploads {folder}: {why} ({exc.strerror or type(exc).__name__})") from None


def _command_line(cfg) -> list[str]:
    """The effective command, every option spelled out, so the run folder says exactly what ran."""
    from dataclasses import asdict

    flags = {
        "balance": ("--balance", "--no-balance"),
        "cache": ("--cache", "--no-cache"),
        "unfreeze": ("--unfreeze", None),
    }
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


@contextmanager
def _progress(disable: bool) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """rich progress bars as the recipe's `progress(description, total) -> advance(n)` callback."""
    with progress_bars(disable, keep=True) as bars:

        def start(description: str, total: int) -> Callable[[int], None]:
            task = bars.add_task(description, total=total)
            return lambda n: bars.advance(task, n)

        yield start


def main() -> None:
    make_private_by_default()  # runs, galleries and overlays hold patient photos: owner-only (umask 0o077)
    stop_on_sigterm()  # a killed run ends like an interrupted one (`train serve` stops gracefully, exit 0)
    app()


if __name__ == "__main__":
    main()
