"""Report sections for calibration, the operating point, bootstrap CIs and the pointing game —
kept apart from report.py's Table-2/ROC/Grad-CAM figures. Markdown in, figures via matplotlib."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from curate.dataset import DatasetVersion
from curate.files import write_atomic
from curate.output import json_text
from train import pointing
from train.calibration import applied, method_of, reliability_figure, unfit
from train.ensemble import MeanHead
from train.metrics import METRIC_LABELS, METRICS, fmt
from train.models import Net

SET_NAMES = {
    "train": "train (out-of-fold)",
    "test": "test (before cropping)",
    "test_roi": "test (ROI crops)",
    "external": "external validation",
}
EXTRA_LABELS = {
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "ppv": "PPV",
    "npv": "NPV",
    "sens_at_95_spec": "Sens. @ 95 % spec.",
}


def _n(v: float) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def ci_text(set_result: dict, key: str) -> str:
    """'0.912 [0.850, 0.960]': the image-level value and its 95 % group-bootstrap interval."""
    v = set_result["metrics"].get(key)
    ci = set_result["ci"].get(key, {})
    return f"{_n(v)} [{_n(ci.get('lo'))}, {_n(ci.get('hi'))}]"


def table2_ci_markdown(entries: list[tuple[str, dict, dict]]) -> str:
    """entries: (label, metrics["sets"], metrics["triage"]); mean (SD) over folds beside the
    ensemble's (or out-of-fold) value with its 95 % CI."""
    head = (
        "| Model | set | " + " | ".join(f"{METRIC_LABELS[m]}: mean (SD) / ensemble [95 % CI]" for m in METRICS) + " |"
    )
    lines = [head, "|" + "---|" * (len(METRICS) + 2)]
    for label, sets, tri in entries:
        for s, d in tri.get("sets", {}).items():
            fold_key = "val" if s == "train" else s
            cells = [f"{fmt(sets[fold_key][m]) if fold_key in sets else '—'} / {ci_text(d, m)}" for m in METRICS]
            lines.append(f"| {label} | {SET_NAMES.get(s, s)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def triage_markdown(entries: list[tuple[str, dict]]) -> str:
    """Calibration before/after and the operating point per set, every rate with its CI."""
    lines = [
        "| Model | set | n (pos.) | ECE before → after | Brier before → after | "
        + " | ".join(EXTRA_LABELS.values())
        + " |",
        "|" + "---|" * (5 + len(EXTRA_LABELS)),  # Model, set, n, ECE, Brier, then one per extra
    ]
    for label, tri in entries:
        for s, d in tri.get("sets", {}).items():
            c = d["calibration"]
            lines.append(
                f"| {label} | {SET_NAMES.get(s, s)} | {d['n']} ({d['n_positive']}) | {_n(c['ece_before'])} → "
                f"{_n(c['ece_after'])} | {_n(c['brier_before'])} → {_n(c['brier_after'])} | "
                + " | ".join(ci_text(d, k) for k in EXTRA_LABELS)
                + " |"
            )
    return "\n".join(lines)


def reliability(out: Path, oof_rows: list[dict], plt) -> str:
    """reliability.png from oof_predictions.csv: one panel per set, before and after calibration."""
    curves = {}
    for s in SET_NAMES:
        rs = [r for r in oof_rows if r["set"] == s and r["p_positive"] != ""]
        if rs:
            curves[SET_NAMES[s]] = (
                np.array([int(r["is_positive"]) for r in rs]),
                np.array([float(r["p_positive"]) for r in rs]),
                np.array([float(r["p_positive_calibrated"]) for r in rs]),
            )
    reliability_figure(out / "reliability.png", curves, plt)
    return "reliability.png"


def run_sections(out: Path, label: str, metrics: dict, oof_rows: list[dict], plt) -> list[str]:
    """The report.md sections of one run (empty for multi-class tasks)."""
    tri = metrics.get("triage") or {}
    if not tri.get("sets"):
        return []
    fig = reliability(out, oof_rows, plt)
    cal = tri["calibration"]
    bs = tri["bootstrap"]
    inverted = [f"**Warning**: {warning}.", ""] if (warning := unfit(cal)) else []
    return [
        "## Calibration and triage operating point",
        "",
        *inverted,
        (
            f"Platt scaling fitted on the train split's out-of-fold predictions (`oof_predictions.csv`): "
            f"P_cal = sigmoid({cal['a']:.3f} · logit P + {cal['b']:.3f}); applied unchanged to test, test ROI and "
            "external (fold-model mean)."
            if applied(cal)
            else f"Calibration: {method_of(cal)} (`oof_predictions.csv`); P_cal is P as the model gives it."
        )
        + f" Operating point: calibrated P({tri['positive_class']}) ≥ **{tri['threshold']:.3f}**, the "
        f"threshold with the best specificity among those reaching sensitivity {tri['target_sensitivity']:.2f} "
        f"out-of-fold. ECE over 15 equal-width "
        f"bins. Intervals: 95 % percentile bootstrap, {bs['n']} resamples of image groups (near-duplicate clusters), "
        f"seed {bs['seed']}.",
        "",
        triage_markdown([(label, tri)]),
        "",
        f"![reliability]({fig})",
        "",
        "## Table 2 with confidence intervals",
        "",
        f"Mean (SD) over the fold models, as the paper; then the fold-model mean (out-of-fold for train) with its 95 % "
        f"bootstrap CI, at threshold {tri['table2_threshold']} on the uncalibrated probability.",
        "",
        table2_ci_markdown([(label, metrics["sets"], tri)]),
        "",
    ]


def pointing_sections(result: dict) -> list[str]:
    """The pointing game: summary per set, then every image whose CAM peak is outside its box, first."""
    if not result or not result.get("sets"):
        return ["## Pointing game", "", result.get("note", "No test or external image has a lesion box."), ""]
    lines = [
        "## Pointing game: does Grad-CAM look at the clinicians' lesion box?",
        "",
        "Grad-CAM of the fold-model ensemble for each image's true class; the box is the exported ROI region "
        "(union of consensus lesion boxes + margin). Pointing = CAM peak inside the box; mass = share of CAM "
        "inside it. Figure: misses first, box in white, peak as a cross.",
        "",
        "| set | images with a box | scored | pointing game (hits) | CAM mass inside box, mean |",
        "|---|---|---|---|---|",
    ]
    for s, d in result["sets"].items():
        lines.append(
            f"| {SET_NAMES.get(s, s)} | {d.get('boxed', d['n'])} | {d['n']} | {d['pointing']:.3f} ({d['hits']}) | "
            f"{d['mass']:.3f} |"
        )
    if result.get("sample"):
        lines += [
            "",
            f"Scored: a seeded random sample (seed {result['sample']['seed']}) of at most "
            f"{result['sample']['max_per_set']} boxed images per set (`--pointing-max`); the rates are "
            f"estimates from that sample, not from every boxed image.",
        ]
    misses = [r for r in result["images"] if not r["hit"]]
    lines += [
        "",
        f"![pointing]({result['figure']})" if result.get("figure") else "",
        "",
        f"Images whose peak lies outside every box ({len(misses)}):",
        "",
        "| set | image | label | P(positive) | CAM mass in box |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['set']} | {r['image_id']} | {r['label']} | {r['p_positive']:.3f} | {r['mass']:.3f} |" for r in misses
    ]
    return lines + [""]


def compare_sections(entries: list[tuple[str, dict]]) -> list[str]:
    """compare.md's sections: entries are (label, metrics.json) per run."""
    tri = [(label, m["triage"]) for label, m in entries if (m.get("triage") or {}).get("sets")]
    lines = []
    if tri:
        lines += [
            "## Calibration and operating point (95 % bootstrap CIs)",
            "",
            triage_markdown(tri),
            "",
            "## Table 2 with confidence intervals",
            "",
            table2_ci_markdown(
                [(label, m["sets"], m["triage"]) for label, m in entries if m.get("triage", {}).get("sets")]
            ),
            "",
        ]
    pts = [(label, m["pointing"]) for label, m in entries if (m.get("pointing") or {}).get("sets")]
    if pts:
        lines += [
            "## Pointing game (Grad-CAM peak inside the lesion box)",
            "",
            "| Model | set | images with a box | pointing game | CAM mass inside box |",
            "|---|---|---|---|---|",
        ]
        for label, pt in pts:
            for s, d in pt["sets"].items():
                lines.append(
                    f"| {label} | {SET_NAMES.get(s, s)} | {d['n']} | {d['pointing']:.3f} ({d['hits']}) | "
                    f"{d['mass']:.3f} |"
                )
        lines.append("")
    return lines


def run_net(models: dict, inputs, cfg, best: int):
    """The model the clinic would use: fold heads averaged on the frozen backbone (best fold if fine-tuned)."""
    if cfg.unfreeze:
        return models[best].eval()
    heads = [m.head if isinstance(m, Net) else m for _, m in sorted(models.items())]
    return Net(inputs.backbone, MeanHead(heads)).eval()


def extra_sections(
    out: Path, cfg, info: dict, metrics: dict, plan, models: dict, inputs, arch, oof_rows: list[dict], plt
) -> list[str]:
    """Calibration/operating point/CI sections and the pointing game; writes pointing.json and
    adds its summary to metrics.json."""
    lines = run_sections(out, arch.label, metrics, oof_rows, plt)
    boxes = DatasetVersion.open(info["dataset"]["path"]).roi_boxes()
    if not boxes:
        result = {
            "note": "The export has no lesion boxes placed on its images (no roi_box, or no `original_sizes` in "
            "dataset.json: re-export with a current `curate export`)."
        }
    else:
        net = run_net(models, inputs, cfg, metrics["best_fold"])
        p_pos = {
            (r["set"], r["image_id"]): float(r["p_positive_calibrated"] or r["p_positive"] or "nan") for r in oof_rows
        }
        picked, boxed = pointing.boxed_sample(plan.eval_sets, boxes, cfg.pointing_max, cfg.seed)
        results = pointing.pointing_game(net, arch, inputs.preset, picked, boxes, plan.classes, p_pos)
        result = pointing.summarise(results, boxed)
        result["sample"] = None if cfg.pointing_max is None else {"max_per_set": cfg.pointing_max, "seed": cfg.seed}
        items = {(s, it.image_id): it for s, its in plan.eval_sets.items() for it in its}
        result["figure"] = pointing.figure(out, results, items, inputs.preset, net, arch, plt)
        result["model"] = "best fold" if cfg.unfreeze else "mean of the fold models"
    write_atomic(out / "pointing.json", json_text(result))
    metrics["pointing"] = {k: v for k, v in result.items() if k != "images"}
    write_atomic(out / "metrics.json", json_text(metrics))
    return lines + pointing_sections(result)
