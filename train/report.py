"""Run reports and cross-backbone comparison: Table-2-shaped tables, ROC curves, confusion
matrices and the Grad-CAM gallery. Reads what `recipe.run` wrote; draws with matplotlib (Agg)."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from curate.dataset import refuse_sealed
from curate.files import write_atomic
from curate.plots import confusion_matrix_plot, wrapped
from curate.plots import pyplot as _plt
from train import report_triage
from train.calibration import unfit
from train.errors import TrainError, require_complete
from train.gallery import gradcam_gallery
from train.gallery import markdown as gallery_markdown
from train.metrics import EVAL_SETS, METRIC_LABELS, METRICS, confusion, fmt, roc
from train.models import Net
from train.outputs import save_figure

SET_TITLES = {"val": "validation folds (cross-validation)", **EVAL_SETS}


def read_predictions(run: Path, name: str = "predictions.csv") -> list[dict]:
    with open(run / name, newline="") as f:
        return list(csv.DictReader(f))


def _stat(value) -> bool:
    """Whether a metric is what `metrics.fmt` reads: {"mean", "sd"}, each a number or None ("—")."""
    number = lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))  # noqa: E731
    return isinstance(value, dict) and number(value.get("mean")) and number(value.get("sd"))


def _predictions(run: Path, positive: str | None) -> list[dict]:
    """The run's predictions.csv for the ROC figure, each row's probability a number; a cut or edited file is one
    line naming it (before: an unexpected TypeError)."""
    try:
        rows = read_predictions(run)
        for r in rows:
            if None in r or None in r.values():  # DictReader: fields missing (a row cut short) or extra
                raise ValueError("a row of another width")
            if positive is not None:
                float(r[f"p_{positive}"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError, csv.Error):
        raise TrainError(
            f"run {run}: predictions.csv is damaged; restore the run folder from a backup or train again"
        ) from None
    return rows


def table2_markdown(entries: list[tuple[str, dict]], sets: list[str]) -> str:
    """entries: (model label, metrics["sets"]); one section per evaluation set, as in Table 2."""
    head = "| Model | " + " | ".join(f"{METRIC_LABELS[m]}, mean (SD)" for m in METRICS) + " |"
    lines = [head, "|" + "---|" * (len(METRICS) + 1)]
    for s in sets:
        lines.append(f"| *Model evaluation on {SET_TITLES.get(s, s)}* |" + " |" * len(METRICS))
        for label, per_set in entries:
            if s in per_set:
                lines.append(f"| {label} | " + " | ".join(fmt(per_set[s][m]) for m in METRICS) + " |")
            else:
                lines.append(f"| {label} | " + " | ".join("—" for _ in METRICS) + " |")
    return "\n".join(lines)


def _probs(rows: list[dict], positive: str) -> tuple[np.ndarray, np.ndarray]:
    return np.array([int(r["label"] == positive) for r in rows]), np.array([float(r[f"p_{positive}"]) for r in rows])


def roc_plot(rows: list[dict], positive: str, set_name: str):
    """One set's ROC figure: a curve per fold model, its AUC in the legend, the set's full title."""
    by = defaultdict(list)
    for r in rows:
        if r["set"] == set_name:
            by[int(r["fold"])].append(r)
    fig, ax = _plt().subplots(figsize=(4.2, 4))
    for k, rs in sorted(by.items()):
        y, p = _probs(rs, positive)
        if len(set(y)) < 2:
            continue
        fpr, tpr = roc(y, p, 1)
        ax.plot(fpr, tpr, lw=1.2, label=f"fold {k} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="1 − specificity", ylabel="sensitivity")
    ax.set_title(wrapped(SET_TITLES.get(set_name, set_name)), fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def roc_figures(out: Path, rows: list[dict], positive: str, sets: list[str]) -> list[str]:
    """roc_<set>.png per evaluation set."""
    names = []
    for s in sets:
        fig = roc_plot(rows, positive, s)
        save_figure(fig, out / f"roc_{s}.png")
        _plt().close(fig)
        names.append(f"roc_{s}.png")
    return names


def confusion_plot(rows: list[dict], metrics: dict, classes: list, sets: list[str]):
    """For each set, the confusion matrix of its best fold (highest AUC on that set); returns (figure, {set: fold})."""
    best = {}
    fig, axes = _plt().subplots(1, len(sets), figsize=(3.6 * len(sets), 3.4), squeeze=False)
    for ax, s in zip(axes[0], sets, strict=True):
        per = {int(k): v[s]["auc"] for k, v in metrics["per_fold"].items() if s in v}
        k = max(per, key=lambda f: per[f] if per[f] == per[f] else -1)
        best[s] = k
        rs = [r for r in rows if r["set"] == s and int(r["fold"]) == k]
        y = np.array([classes.index(r["label"]) for r in rs])
        pred = np.array([classes.index(r["pred"]) for r in rs])
        confusion_matrix_plot(ax, confusion(y, pred, len(classes)), classes, "predicted", "true")
        ax.tick_params(labelsize=7)
        ax.set_title(f"{s} (fold {k})")
    fig.tight_layout()
    return fig, best


def confusion_figure(out: Path, rows: list[dict], metrics: dict, classes: list, sets: list[str]) -> tuple[str, dict]:
    """confusion.png (see `confusion_plot`)."""
    fig, best = confusion_plot(rows, metrics, classes, sets)
    save_figure(fig, out / "confusion.png")
    _plt().close(fig)
    return "confusion.png", best


def write_run_report(out: Path, cfg, info: dict, metrics: dict, plan, models: dict, inputs, arch) -> Path:
    """report.md next to metrics.json, with the figures it links."""
    rows = read_predictions(out)
    eval_sets = [s for s in EVAL_SETS if s in plan.eval_sets]
    positive = info["positive_class"] or plan.classes[-1]
    rocs = roc_figures(out, rows, positive, eval_sets) if info["positive_class"] else []
    cm_name, best_per_set = confusion_figure(out, rows, metrics, plan.classes, eval_sets)
    best = metrics["best_fold"]
    net = models[best] if isinstance(models[best], Net) else Net(inputs.backbone, models[best])
    gallery = gradcam_gallery(out, net, inputs, arch, plan, rows, best, cfg.gradcam_images, info["positive_class"])
    ds = info["dataset"]
    lines = [
        f"# {arch.label} on {ds['ref']}",
        "",
        f"- dataset: `{ds['ref']}` checksum `{ds['checksum']}` ({ds['task']}, classes {', '.join(ds['classes'])})",
        f"- backbone: {cfg.arch}, weights `{info['weights_id']}`, mode **{info['mode']}**, feature dim "
        f"{info['feature_dim']}",
        f"- recipe: {cfg.epochs} epochs, batch {cfg.batch_size}, Adam lr {cfg.lr}, dropout {cfg.dropout}, "
        f"{cfg.image_size}×{cfg.image_size}, {cfg.folds} folds, seed {cfg.seed}, threshold {cfg.threshold}",
        f"- offline augmentation: {info['n_augmented']} extra images (minority classes balanced)",
        f"- metrics: mean (sample SD) over the {cfg.folds} fold models; positive class `{info['positive_class']}`",
        "",
        "## Performance (Table 2 shape)",
        "",
        table2_markdown([(arch.label, metrics["sets"])], ["val", *eval_sets]),
        "",
        "## ROC curves (every fold model)",
        "",
        *[f"![{n}]({n})" for n in rocs],
        "",
        "## Confusion matrices (best fold per set: "
        + ", ".join(f"{s}: fold {k}" for s, k in best_per_set.items())
        + ")",
        "",
        f"![confusion]({cm_name})",
        "",
        f"## Grad-CAM: fold {best} (best validation AUC), test images before (uncropped) and after ROI cropping",
        "",
        *gallery_markdown(gallery, info["positive_class"]),
    ]
    oof = read_predictions(out, "oof_predictions.csv")
    lines += ["", *report_triage.extra_sections(out, cfg, info, metrics, plan, models, inputs, arch, oof, _plt())]
    write_atomic(out / "report.md", "\n".join(lines) + "\n")
    return out / "report.md"


def compare_roc_plot(runs: list[tuple[str, str | None, list[dict]]], sets: list[str]):
    """One panel per set, one curve per run (label, positive class, prediction rows): each image scored by its
    probability averaged over the run's fold models, and the AUC of that curve in the legend."""
    fig, axes = _plt().subplots(1, len(sets), figsize=(4 * len(sets), 4), squeeze=False)
    for ax, s in zip(axes[0], sets, strict=True):
        for name, positive, rows in runs:
            if not positive:
                continue
            by_img, label = defaultdict(list), {}
            for r in rows:
                if r["set"] == s:
                    by_img[r["image_id"]].append(float(r[f"p_{positive}"]))
                    label[r["image_id"]] = int(r["label"] == positive)
            ids = sorted(by_img)
            y = np.array([label[i] for i in ids])
            p = np.array([np.mean(by_img[i]) for i in ids])
            if len(set(y)) == 2:
                fpr, tpr = roc(y, p, 1)
                ax.plot(fpr, tpr, lw=1.2, label=f"{name} (AUC {roc_auc_score(y, p):.3f})")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set(xlabel="1 − specificity", ylabel="sensitivity")
        ax.set_title(wrapped(SET_TITLES[s]), fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def compare_runs(runs: list[Path], out: Path | None = None) -> dict:
    """One Table-2-shaped table across runs (backbones), plus roc_compare.png (fold-mean probabilities)."""
    if out is not None:
        refuse_sealed(Path(out), "--out")
    entries, loaded, predictions = [], [], {}
    seen: dict[Path, Path] = {}
    for run in runs:
        run = Path(run)
        first = seen.setdefault(run.resolve(), run)
        if first is not run:  # before: one run became two rows, as if two backbones agreed
            same = f"{run} is named twice" if str(run) == str(first) else f"{first} and {run} are the same run"
            raise TrainError(f"{same}; name each run once")
        missing = [n for n in ("metrics.json", "run.json") if not (run / n).is_file()]
        if missing:
            raise TrainError(f"{run} is not a finished run folder ({'/'.join(missing)} missing)")
        try:  # before: a damaged metrics.json was "missing", `[]` a TypeError and `{}` a KeyError
            m = json.loads((run / "metrics.json").read_text())
            info = json.loads((run / "run.json").read_text())
            if not (isinstance(m, dict) and isinstance(info, dict)):
                raise TypeError("not a table")
            m["label"], m["sets"], m["checksum"], m["arch"], m["dataset"]
            if not (isinstance(m["label"], str) and isinstance(m["sets"], dict)):
                raise TypeError("label or sets")  # before: `"sets": {"test": "x"}` was an unexpected TypeError
            for per_set in m["sets"].values():
                if not isinstance(per_set, dict) or not all(_stat(per_set.get(k, "missing")) for k in METRICS):
                    raise TypeError("a set's metrics")
        except (OSError, ValueError, TypeError, KeyError):
            raise TrainError(
                f"run {run}: metrics.json or run.json is damaged; restore the run folder from a backup or train again"
            ) from None
        require_complete(run, info, " (compare reads finished runs only)")
        if out is not None:
            predictions[run] = _predictions(run, m.get("positive_class"))
        loaded.append((run, m, info))
        entries.append((m["label"], m["sets"]))
    labels = [label for label, _ in entries]
    if len(set(labels)) < len(labels):  # same backbone twice (e.g. imagenet vs none): name the run folders
        folders = [run.name for run, _, _ in loaded]
        for i, (run, m, _) in enumerate(loaded):
            # one folder name twice (runs of two copies of a workspace, each its own "mpox@2.0.0"): the path as
            # typed, which differs (one run twice is refused above); before, both rows read "ResNet-18 [resnet18-s0]"
            m["label"] = f"{m['label']} [{run if folders.count(run.name) > 1 else run.name}]"
            entries[i] = (m["label"], m["sets"])
    checksums = {m["checksum"] for _, m, _ in loaded}
    sets = [s for s in EVAL_SETS if any(s in m["sets"] for _, m, _ in loaded)]
    result = {
        "sets": sets,
        "runs": [
            {
                "run": str(r),
                "arch": m["arch"],
                "label": m["label"],
                "dataset": m["dataset"],
                "checksum": m["checksum"],
                "sets": m["sets"],
                "triage": m.get("triage"),
                "model_warning": unfit((m.get("triage") or {}).get("calibration")),
                "pointing": m.get("pointing"),
            }
            for r, m, _ in loaded
        ],
        "same_dataset": len(checksums) == 1,
        "markdown": table2_markdown(entries, sets),
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        fig = compare_roc_plot([(m["label"], m.get("positive_class"), predictions[run]) for run, m, _ in loaded], sets)
        save_figure(fig, out / "roc_compare.png")
        _plt().close(fig)
        note = "" if result["same_dataset"] else "\n\n**Warning: these runs used different dataset versions.**"
        extra = "\n".join(report_triage.compare_sections([(m["label"], m) for _, m, _ in loaded]))
        write_atomic(
            out / "compare.md",
            "# Backbone comparison\n\n"
            + result["markdown"]
            + note
            + "\n\n![ROC](roc_compare.png)\n\nThe curves, and the AUC in their legend, score each image by its "
            "probability averaged over the fold models; the table gives the mean (SD) of the fold models' own "
            "AUCs.\n\n" + extra,
        )
        result["files"] = [str(out / "compare.md"), str(out / "roc_compare.png")]
    return result
