"""Run reports and cross-backbone comparison: Table-2-shaped tables, ROC curves, confusion
matrices and the Grad-CAM gallery. Reads what `recipe.run` wrote; draws with matplotlib (Agg)."""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from train import report_triage
from train.metrics import EVAL_SETS, METRIC_LABELS, METRICS, confusion, fmt, roc
from train.models import Net, TrainError

SET_TITLES = {"val": "validation folds (cross-validation)", **EVAL_SETS}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_predictions(run: Path, name: str = "predictions.csv") -> list[dict]:
    with open(run / name, newline="") as f:
        return list(csv.DictReader(f))


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


def roc_figures(out: Path, rows: list[dict], positive: str, sets: list[str]) -> list[str]:
    """roc_<set>.png: one curve per fold model."""
    plt = _plt()
    names = []
    by = defaultdict(list)
    for r in rows:
        by[(r["set"], int(r["fold"]))].append(r)
    for s in sets:
        fig, ax = plt.subplots(figsize=(4.2, 4))
        for (set_name, k), rs in sorted(by.items()):
            if set_name != s:
                continue
            y, p = _probs(rs, positive)
            if len(set(y)) < 2:
                continue
            fpr, tpr = roc(y, p, 1)
            ax.plot(fpr, tpr, lw=1.2, label=f"fold {k}")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set(xlabel="1 − specificity", ylabel="sensitivity", title=SET_TITLES.get(s, s)[:40])
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(out / f"roc_{s}.png", dpi=110)
        plt.close(fig)
        names.append(f"roc_{s}.png")
    return names


def confusion_figure(out: Path, rows: list[dict], metrics: dict, classes: list, sets: list[str]) -> tuple[str, dict]:
    """confusion.png: for each set, the matrix of its best fold (highest AUC on that set)."""
    plt = _plt()
    best = {}
    fig, axes = plt.subplots(1, len(sets), figsize=(3.6 * len(sets), 3.4), squeeze=False)
    for ax, s in zip(axes[0], sets):
        per = {int(k): v[s]["auc"] for k, v in metrics["per_fold"].items() if s in v}
        k = max(per, key=lambda f: per[f] if per[f] == per[f] else -1)
        best[s] = k
        rs = [r for r in rows if r["set"] == s and int(r["fold"]) == k]
        y = np.array([classes.index(r["label"]) for r in rs])
        pred = np.array([classes.index(r["pred"]) for r in rs])
        cm = confusion(y, pred, len(classes))
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", color="black", fontsize=10)
        ax.set_xticks(range(len(classes)), classes, fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        ax.set(xlabel="predicted", ylabel="true", title=f"{s} (fold {k})")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=110)
    plt.close(fig)
    return "confusion.png", best


def gradcam_gallery(out: Path, model, src, arch, plan, rows: list[dict], fold: int, n: int) -> list[dict]:
    """Correct and wrong test predictions of one fold model, before and after ROI cropping."""
    import torch
    from train.gradcam import gradcam, overlay

    plt = _plt()
    net = model if isinstance(model, Net) else Net(src.backbone, model)
    roi_by_id = {it.image_id: it for it in plan.eval_sets.get("test_roi", [])}
    item_by_id = {it.image_id: it for it in plan.eval_sets["test"]}
    test_rows = [r for r in rows if r["set"] == "test" and int(r["fold"]) == fold and r["image_id"] in roi_by_id]
    picked = ([("correct", r) for r in test_rows if r["label"] == r["pred"]][:n]
              + [("wrong", r) for r in test_rows if r["label"] != r["pred"]][:n])
    (out / "gradcam").mkdir(exist_ok=True)
    entries = []
    for kind, r in picked:
        entry = {"kind": kind, "image_id": r["image_id"], "label": r["label"], "pred": r["pred"], "panels": []}
        for tag, it in (("original", item_by_id[r["image_id"]]), ("roi", roi_by_id[r["image_id"]])):
            img = it.image()
            x = src.preset(img).unsqueeze(0).to(next(net.parameters()).device)
            with torch.no_grad():
                p = torch.softmax(net.eval()(x), 1)[0]
            pred = int(p.argmax())
            cam = gradcam(net, net.backbone, arch, x, pred)
            name = f"gradcam/{kind}-{r['image_id']}-{tag}.png"
            overlay(img, cam).save(out / name)
            entry["panels"].append({"tag": tag, "file": name, "pred": plan.classes[pred], "p": float(p[pred]), "img": img})
        entries.append(entry)
    if entries:
        fig, axes = plt.subplots(len(entries), 4, figsize=(8, 2.1 * len(entries)), squeeze=False)
        for row, e in zip(axes, entries):
            for j, panel in enumerate(e["panels"]):
                from PIL import Image

                row[2 * j].imshow(panel["img"])
                row[2 * j].set_title(f"{e['kind']}: {panel['tag']}\ntrue {e['label']}", fontsize=7)
                row[2 * j + 1].imshow(Image.open(out / panel["file"]))
                row[2 * j + 1].set_title(f"pred {panel['pred']} {panel['p']:.2f}", fontsize=7)
            for ax in row:
                ax.axis("off")
        fig.tight_layout()
        fig.savefig(out / "gradcam_gallery.png", dpi=110)
        plt.close(fig)
    for e in entries:
        for panel in e["panels"]:
            panel.pop("img")
    return entries


def write_run_report(out: Path, cfg, info: dict, metrics: dict, plan, models: dict, src, arch) -> Path:
    """report.md next to metrics.json, with the figures it links."""
    rows = read_predictions(out)
    eval_sets = [s for s in EVAL_SETS if s in plan.eval_sets]
    positive = info["positive_class"] or plan.classes[-1]
    rocs = roc_figures(out, rows, positive, eval_sets) if info["positive_class"] else []
    cm_name, best_per_set = confusion_figure(out, rows, metrics, plan.classes, eval_sets)
    best = metrics["best_fold"]
    gallery = gradcam_gallery(out, models[best], src, arch, plan, rows, best, cfg.gradcam_images) \
        if "test_roi" in plan.eval_sets else []
    ds = info["dataset"]
    lines = [
        f"# {arch.label} on {ds['ref']}",
        "",
        f"- dataset: `{ds['ref']}` checksum `{ds['checksum']}` ({ds['task']}, classes {', '.join(ds['classes'])})",
        f"- backbone: {cfg.arch}, weights `{info['weights_id']}`, mode **{info['mode']}**, feature dim {info['feature_dim']}",
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
        "## Confusion matrices (best fold per set: " + ", ".join(f"{s}: fold {k}" for s, k in best_per_set.items()) + ")",
        "",
        f"![confusion]({cm_name})",
        "",
        f"## Grad-CAM: fold {best} (best validation AUC), test images before and after ROI cropping",
        "",
    ]
    if gallery:
        lines += ["![gallery](gradcam_gallery.png)", "", "| kind | image | true | original: pred (p) | ROI: pred (p) |",
                  "|---|---|---|---|---|"]
        for e in gallery:
            o, r = e["panels"]
            lines.append(f"| {e['kind']} | {e['image_id']} | {e['label']} | [{o['pred']} ({o['p']:.2f})]({o['file']}) | "
                         f"[{r['pred']} ({r['p']:.2f})]({r['file']}) |")
        if not any(e["kind"] == "wrong" for e in gallery):
            lines.append("\nNo wrong test predictions by this fold model among images with a lesion box.")
    else:
        lines.append("No test images with a lesion box (ROI), so no before/after gallery.")
    oof = read_predictions(out, "oof_predictions.csv")
    lines += ["", *report_triage.extra_sections(out, cfg, info, metrics, plan, models, src, arch, oof, _plt())]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out / "report.md"


def compare_runs(runs: list[Path], out: Path | None = None) -> dict:
    """One Table-2-shaped table across runs (backbones), plus roc_compare.png (fold-mean probabilities)."""
    entries, loaded = [], []
    for run in runs:
        run = Path(run)
        try:
            m = json.loads((run / "metrics.json").read_text())
            info = json.loads((run / "run.json").read_text())
        except (OSError, ValueError):
            raise TrainError(f"{run} is not a finished run folder (metrics.json/run.json missing)") from None
        loaded.append((run, m, info))
        entries.append((m["label"], m["sets"]))
    labels = [label for label, _ in entries]
    if len(set(labels)) < len(labels):  # same backbone twice (e.g. imagenet vs none): name the run folders
        for i, (run, m, _) in enumerate(loaded):
            m["label"] = f"{m['label']} [{run.name}]"
            entries[i] = (m["label"], m["sets"])
    checksums = {m["checksum"] for _, m, _ in loaded}
    sets = [s for s in EVAL_SETS if any(s in m["sets"] for _, m, _ in loaded)]
    result = {"sets": sets, "runs": [{"run": str(r), "arch": m["arch"], "label": m["label"], "dataset": m["dataset"],
                                      "checksum": m["checksum"], "sets": m["sets"], "triage": m.get("triage"),
                                      "pointing": m.get("pointing")} for r, m, _ in loaded],
              "same_dataset": len(checksums) == 1, "markdown": table2_markdown(entries, sets)}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        plt = _plt()
        fig, axes = plt.subplots(1, len(sets), figsize=(4 * len(sets), 4), squeeze=False)
        for ax, s in zip(axes[0], sets):
            for run, m, info in loaded:
                positive = m.get("positive_class")
                if not positive:
                    continue
                rows = [r for r in read_predictions(run) if r["set"] == s]
                by_img = defaultdict(list)
                label = {}
                for r in rows:
                    by_img[r["image_id"]].append(float(r[f"p_{positive}"]))
                    label[r["image_id"]] = int(r["label"] == positive)
                ids = sorted(by_img)
                y = np.array([label[i] for i in ids])
                p = np.array([np.mean(by_img[i]) for i in ids])
                if len(set(y)) == 2:
                    fpr, tpr = roc(y, p, 1)
                    auc = m["sets"][s]["auc"]["mean"]
                    ax.plot(fpr, tpr, lw=1.2, label=f"{m['label']} (AUC {auc:.3f})")
            ax.plot([0, 1], [0, 1], "k:", lw=0.8)
            ax.set(xlabel="1 − specificity", ylabel="sensitivity", title=SET_TITLES[s][:40])
            ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(out / "roc_compare.png", dpi=110)
        plt.close(fig)
        note = "" if result["same_dataset"] else "\n\n**Warning: these runs used different dataset versions.**"
        extra = "\n".join(report_triage.compare_sections([(m["label"], m) for _, m, _ in loaded]))
        (out / "compare.md").write_text("# Backbone comparison\n\n" + result["markdown"] + note +
                                        "\n\n![ROC](roc_compare.png)\n\n" + extra)
        result["files"] = [str(out / "compare.md"), str(out / "roc_compare.png")]
    return result
