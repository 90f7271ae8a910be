"""The Grad-CAM gallery of a run report: test images of one fold model, uncropped and cropped to the
lesion box (ROI), grouped as false negatives, false positives, true positives and true negatives
(wrong / correct for multi-class tasks), each row saying which prediction was wrong."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from curate.numbers import whole_number
from curate.plots import pyplot
from train.gradcam import gradcam, overlay
from train.outputs import save_figure, save_image

BINARY_KINDS = ("false negative", "false positive", "true positive", "true negative")
MULTI_KINDS = ("wrong", "correct")
ERROR_COLOUR, OK_COLOUR = "#b00020", "#1b5e20"


@dataclass
class Panel:
    tag: str  # original (uncropped) | roi
    pred: str
    p: float  # P(positive class) for binary tasks, else P(predicted class), from predictions.csv
    wrong: bool
    file: str = ""  # gradcam/<kind>-<id>-<tag>.png, once drawn


NO_BOX = "no lesion box"
NOT_EVALUATED = "ROI not evaluated"  # the run has no ROI predictions at all (a one-class ROI set is skipped)


@dataclass
class GalleryRow:
    kind: str
    image_id: str
    label: str
    wrong: str  # "uncropped", "ROI", "uncropped and ROI" or "neither"
    panels: list[Panel] = field(default_factory=list)
    no_roi: str = NO_BOX  # what stands where the ROI panel is missing (`select`)

    @property
    def heading(self) -> str:
        return f"{self.kind}: image {self.image_id}, true {self.label}; wrong: {self.wrong}"


def _panel(tag: str, r: dict, positive: str | None) -> Panel:
    p = float(r[f"p_{positive}"]) if positive else float(r[f"p_{r['pred']}"])
    return Panel(tag, r["pred"], p, r["pred"] != r["label"])


def select(rows: list[dict], positive: str | None, fold: int, n: int) -> list[GalleryRow]:
    """Up to `n` test images per kind from one fold's predictions, images with a lesion box first.

    A binary row is a false negative (or positive) when either of its predictions, uncropped or ROI, is one;
    its `wrong` field says which.
    """
    test = [r for r in rows if r["set"] == "test" and int(r["fold"]) == fold]
    roi = {r["image_id"]: r for r in rows if r["set"] == "test_roi" and int(r["fold"]) == fold}
    cands: dict[str, list[GalleryRow]] = {k: [] for k in (BINARY_KINDS if positive else MULTI_KINDS)}
    # no ROI line for any image: the ROI evaluation was skipped, not every image without a box (a probe's report
    # said "no lesion box" of boxed test images when the ROI set had one class)
    missing = NO_BOX if roi else NOT_EVALUATED
    for r in sorted(
        test,
        key=lambda r: (r["image_id"] not in roi, whole_number(r["image_id"]) or 0, r["image_id"]),
    ):
        panels = [_panel("original", r, positive)]
        if r["image_id"] in roi:
            panels.append(_panel("roi", roi[r["image_id"]], positive))
        which = [name for name, pn in zip(("uncropped", "ROI"), panels, strict=False) if pn.wrong]
        wrong = " and ".join(which) or "neither"
        if positive:
            is_pos = r["label"] == positive
            kind = (
                ("false negative" if is_pos else "false positive")
                if which
                else ("true positive" if is_pos else "true negative")
            )
        else:
            kind = "wrong" if which else "correct"
        cands[kind].append(GalleryRow(kind, r["image_id"], r["label"], wrong, panels, missing))
    return [row for kind in cands for row in cands[kind][:n]]


def draw(rows: list[GalleryRow], images: dict[tuple[str, str], tuple], positive: str | None):
    """One figure row per gallery row: uncropped image and its Grad-CAM, then the ROI pair.

    `images[(image_id, tag)]` = (photo, overlay) as PIL images. Returns the matplotlib Figure (caller saves it).
    """
    plt = pyplot()
    fig = plt.figure(figsize=(8.4, 2.5 * len(rows)), layout="constrained")
    subs = fig.subfigures(len(rows), 1, squeeze=False)[:, 0]
    for sf, row in zip(subs, rows, strict=True):
        bad = row.wrong != "neither"
        sf.suptitle(row.heading, fontsize=9, color=ERROR_COLOUR if bad else OK_COLOUR, fontweight="bold")
        axes = sf.subplots(1, 4)
        for ax in axes:
            ax.axis("off")
        for j, tag in enumerate(("original", "roi")):
            panel = next((pn for pn in row.panels if pn.tag == tag), None)
            if panel is None:
                axes[2 * j].text(0.5, 0.5, f"{row.no_roi}\n(no ROI crop)", ha="center", va="center", fontsize=8)
                continue
            photo, cam = images[(row.image_id, tag)]
            prob = f"P({positive}) {panel.p:.2f}" if positive else f"p {panel.p:.2f}"
            verdict = "WRONG" if panel.wrong else "right"
            name = "uncropped" if tag == "original" else "ROI"
            axes[2 * j].imshow(photo)
            axes[2 * j].set_title(
                f"{name}: pred {panel.pred}\n{prob}, {verdict}",
                fontsize=7,
                color=ERROR_COLOUR if panel.wrong else "black",
            )
            axes[2 * j + 1].imshow(cam)
            axes[2 * j + 1].set_title(f"Grad-CAM ({name})", fontsize=7)
    return fig


def markdown(gallery: list[GalleryRow], positive: str | None) -> list[str]:
    """The gallery figure and a table naming, per image, which prediction was wrong."""
    if not gallery:
        return ["No test predictions to show."]
    p = f"P({positive})" if positive else "p"
    lines = [
        "![gallery](gradcam_gallery.png)",
        "",
        f"| kind | image | true | wrong | uncropped: pred ({p}) | ROI: pred ({p}) |",
        "|---|---|---|---|---|---|",
    ]
    for g in gallery:
        cells = [f"[{pn.pred} ({pn.p:.2f})]({pn.file})" for pn in g.panels] + [g.no_roi] * (2 - len(g.panels))
        lines.append(f"| {g.kind} | {g.image_id} | {g.label} | {g.wrong} | {cells[0]} | {cells[1]} |")
    kinds = {g.kind for g in gallery}
    missing = [k for k in (("false negative", "false positive") if positive else ("wrong",)) if k not in kinds]
    if missing:
        lines.append(
            f"\nNo {' and no '.join(m + ' predictions' for m in missing)} among this fold model's test images."
        )
    return lines


def gradcam_gallery(
    out: Path, net, inputs, arch, plan, rows: list[dict], fold: int, n: int, positive: str | None
) -> list[GalleryRow]:
    """gradcam_gallery.png and gradcam/*.png for `fold`'s model; Grad-CAM of the class each panel predicted."""
    items = {
        "original": {it.image_id: it for it in plan.eval_sets["test"]},
        "roi": {it.image_id: it for it in plan.eval_sets.get("test_roi", [])},
    }
    picked = select(rows, positive, fold, n)
    (out / "gradcam").mkdir(exist_ok=True)
    device = next(net.parameters()).device
    images = {}
    for row in picked:
        for panel in row.panels:
            img = items[panel.tag][row.image_id].image()
            x = inputs.preset(img).unsqueeze(0).to(device)
            cam = overlay(img, gradcam(net, net.backbone, arch, x, plan.classes.index(panel.pred)))
            panel.file = f"gradcam/{row.kind.replace(' ', '_')}-{row.image_id}-{panel.tag}.png"
            save_image(cam, out / panel.file)
            images[(row.image_id, panel.tag)] = (img, cam)
    if picked:
        plt = pyplot()
        fig = draw(picked, images, positive)
        save_figure(fig, out / "gradcam_gallery.png")
        plt.close(fig)
    return picked
