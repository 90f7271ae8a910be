"""The model card: what the model is, what data made it, how well it did (with CIs), what it is for
and what it is not for. One markdown text, shown by `serve`, embedded by `export-model`."""

from __future__ import annotations

import math

from train.calibration import applied, method_of, unfit

INTENDED_USE = (
    "Triage support for clinicians: flag a skin-lesion photo whose calibrated probability of mpox is at or above "
    "the operating point, so that the patient is prioritised for examination and PCR testing. It does not diagnose "
    "mpox or rule it out."
)
DECIDE = "Not a diagnosis: a PCR test and a clinician's examination decide"
LIMITS = [
    f"{DECIDE}; a 'routine' result does not exclude mpox.",
    "Trained on the photos of the dataset version above; skin tones, body sites, cameras and lesion stages that are "
    "rare there are less reliable.",
    "The operating point was chosen on out-of-fold predictions for the stated sensitivity; at another prevalence "
    "PPV and NPV change.",
    "Grad-CAM overlays show where the network's evidence came from, not why; check the pointing-game figures in the "
    "run report before trusting them.",
    "Photos must show the lesion; the model has no 'not a lesion' class and will still return a probability.",
]


INTENDED_USE_DIAGNOSIS = (
    "Decision support for clinicians: the probability of each diagnosis the dataset version declares (the mean of "
    "the fold models, not calibrated; no operating point). It does not diagnose mpox or rule it out."
)

NOT_A_DIAGNOSIS = f"{DECIDE}, whatever class is most likely."  # a diagnosis run's: it has no 'routine'

CARD_TITLE = b"# Model card: "  # how every card begins (`export_model` knows its own by it)


def _v(x) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def card_markdown(meta: dict) -> str:
    """`meta` is the export's metadata (see export_model.metadata)."""
    ds = meta["dataset"]
    lines = [
        f"{CARD_TITLE.decode()}{meta['arch_label']} mpox triage ({meta['model']})",
        "",
        f"- **Dataset version**: `{ds['ref']}`, checksum (sha256 of SHA256SUMS) `{ds['checksum']}`",
        f"- **Backbone**: {meta['arch']} (weights `{meta['weights_id']}`), frozen; heads: {meta['model']}",
        f"- **Input**: RGB, an embedded ICC profile's colours converted to sRGB (a phone's Display P3, Adobe RGB), "
        f"EXIF orientation applied, resized (stretch, bilinear) to {meta['input']['size']}×"
        f"{meta['input']['size']} (a JPEG decoded at reduced scale first, each side kept at least "
        f"{meta['input']['size']}), scaled to [0, 1]; normalisation (mean {list(meta['input']['mean'])}, std "
        f"{list(meta['input']['std'])}) is inside the model",
        f"- **Classes**: {', '.join(meta['classes'])}; "
        + (
            f"positive class `{meta['positive_class']}`"
            if meta["positive_class"]
            else "no positive class (diagnosis task): output `probabilities` only"
        ),
    ]
    if warning := unfit(meta.get("calibration")):
        lines.append(f"- **Warning**: {warning}")
    if meta.get("calibration"):
        c = meta["calibration"]
        fitted = f"Platt scaling on out-of-fold predictions, P_cal = sigmoid({c['a']:.4f} · logit P + {c['b']:.4f})"
        lines += [
            f"- **Calibration**: {fitted if applied(c) else method_of(c)}",
            f"- **Operating point**: refer when calibrated P({meta['positive_class']}) ≥ "
            f"{meta['operating_threshold']:.4f} (target sensitivity {meta['target_sensitivity']:.2f} out-of-fold)",
        ]
    intended = INTENDED_USE if meta["positive_class"] else INTENDED_USE_DIAGNOSIS
    of = f" of the {meta['triage_of']}" if meta.get("triage_of") else ""
    lines += ["", "## Intended use", "", intended, "", f"## Performance{of} (95 % bootstrap CI by image group)", ""]
    sets = (meta.get("triage") or {}).get("sets") or {}
    if sets:
        keys = ["auc", "sensitivity", "specificity", "ppv", "npv"]
        lines += [
            "| set | n | AUC | sensitivity | specificity | PPV | NPV | ECE (calibrated) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s, d in sets.items():
            cells = [
                f"{_v(d['metrics'].get(k))} [{_v(d['ci'].get(k, {}).get('lo'))}, {_v(d['ci'].get(k, {}).get('hi'))}]"
                for k in keys
            ]
            lines.append(f"| {s} | {d['n']} | " + " | ".join(cells) + f" | {_v(d['calibration']['ece_after'])} |")
        lines += ["", "Sensitivity, specificity, PPV and NPV at the operating point; 'train' is out-of-fold."]
        if own := meta.get("fold_metrics"):  # one fold exported: the table is the mean's, said with this fold's own
            aucs = ", ".join(f"{s} {_v(d.get('auc'))}" for s, d in own.items() if isinstance(d, dict))
            lines += ["", f"This file holds {meta['model']} alone. Its own AUC (no CI): {aucs}."]
    else:
        lines.append("No calibrated binary metrics (multi-class task).")
    # before: every card said "public web photos and clinic photos" and pointed at an external set, whatever the
    # version held
    if "external" in sets:
        carries = [
            "Performance on the external set (photos from a source the model never trained on) shows how far it "
            "carries to a new source."
        ]
    elif sets:  # the binary metrics list every evaluation set; a multi-class card has none to tell by
        carries = [
            "The dataset version has no external set: nothing here shows how it carries to a photo source it "
            "never trained on; check it on such photos before use."
        ]
    else:
        carries = []
    # a diagnosis run has no 'routine' result and no operating point: those two limits are a binary run's
    binary = bool(meta["positive_class"])
    limits = [*LIMITS[:2], *carries, *LIMITS[2:]] if binary else [NOT_A_DIAGNOSIS, LIMITS[1], *carries, *LIMITS[3:]]
    lines += ["", "## Limits", "", *[f"- {x}" for x in limits], ""]
    return "\n".join(lines)
