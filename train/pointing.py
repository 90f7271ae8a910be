"""The pointing game: does the Grad-CAM of the ensemble fall on the clinicians' lesion box?

For every test and external image with a box (the export's ROI region, placed on the exported image by
`DatasetVersion.roi_boxes`), Grad-CAM of the image's *true* class is computed at the network's input
size; a hit is the CAM peak inside the box, the mass is the CAM's share inside it (Zhang et al.'s
pointing game; the mass is the "energy-based" variant). A model that reads a burned-in caption, a
ruler or the background points outside the box.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from train.gradcam import gradcam_batch, overlay
from train.outputs import save_figure
from train.presets import ImageRef

SETS = ("test", "external")
FIGURE_MAX = 12


@dataclass
class Pointing:
    set: str
    image_id: str
    label: str
    p_positive: float
    hit: bool
    mass: float
    peak: tuple  # (x, y) as fractions of the image
    box: tuple  # (x0, y0, x1, y1) as fractions of the image


def score(cam: np.ndarray, box: tuple) -> tuple[bool, float, tuple]:
    """(peak inside box, CAM mass inside box, peak as fractions) for a CAM of shape (H, W)."""
    h, w = cam.shape
    x0, y0 = int(np.floor(box[0] * w)), int(np.floor(box[1] * h))
    x1, y1 = max(x0 + 1, int(np.ceil(box[2] * w))), max(y0 + 1, int(np.ceil(box[3] * h)))
    py, px = np.unravel_index(int(np.argmax(cam)), cam.shape)
    total = float(cam.sum())
    mass = float(cam[y0:y1, x0:x1].sum()) / total if total > 0 else 0.0
    return bool(x0 <= px < x1 and y0 <= py < y1), mass, ((px + 0.5) / w, (py + 0.5) / h)


def boxed_sample(
    eval_sets: dict[str, list[ImageRef]], boxes: dict, max_per_set: int | None, seed: int
) -> tuple[dict[str, list[ImageRef]], dict[str, int]]:
    """Per set, the images with a box, or a seeded sample of `max_per_set` of them (in export order);
    also how many each set has, so a report can say "N of M"."""
    picked, boxed = {}, {}
    for s in SETS:
        items = [it for it in eval_sets.get(s, []) if it.image_id in boxes]
        boxed[s] = len(items)
        if max_per_set is not None and len(items) > max_per_set:
            keep = set(random.Random(f"pointing:{seed}:{s}").sample(range(len(items)), max_per_set))
            items = [it for i, it in enumerate(items) if i in keep]
        picked[s] = items
    return picked, boxed


def pointing_game(
    net, arch, preset, eval_sets: dict[str, list[ImageRef]], boxes: dict, classes: list, p_pos: dict, batch: int = 32
) -> list[Pointing]:
    """Score every image of `eval_sets` (test, external; see `boxed_sample`) that has a box; `p_pos[(set, id)]`
    is listed beside it. Batched, and each CAM costs about one forward pass (`train.gradcam`)."""
    out = []
    device = next(net.parameters()).device
    for s in SETS:
        items = [it for it in eval_sets.get(s, []) if it.image_id in boxes]
        for i in range(0, len(items), batch):
            chunk = items[i : i + batch]
            x = torch.stack([preset(it.image()) for it in chunk]).to(device)
            cams = gradcam_batch(net, net.backbone, arch, x, [it.target for it in chunk])
            for it, cam in zip(chunk, cams, strict=True):
                hit, mass, peak = score(cam, boxes[it.image_id])
                out.append(
                    Pointing(
                        s,
                        it.image_id,
                        classes[it.target],
                        float(p_pos.get((s, it.image_id), float("nan"))),
                        hit,
                        mass,
                        peak,
                        tuple(boxes[it.image_id]),
                    )
                )
    return out


def summarise(results: list[Pointing], boxed: dict[str, int] | None = None) -> dict:
    """Per set: images scored (`n`), images with a box (`boxed`), hits, pointing rate, mean CAM mass."""
    sets = {}
    for s in SETS:
        rs = [r for r in results if r.set == s]
        if rs:
            sets[s] = {
                "n": len(rs),
                "boxed": (boxed or {}).get(s, len(rs)),
                "hits": sum(r.hit for r in rs),
                "pointing": float(np.mean([r.hit for r in rs])),
                "mass": float(np.mean([r.mass for r in rs])),
            }
    ordered = sorted(results, key=lambda r: (r.hit, r.mass))  # misses first, the least on-lesion first
    return {"sets": sets, "images": [asdict(r) for r in ordered]}


def figure(out: Path, results: list[Pointing], items: dict[tuple, ImageRef], preset, net, arch, plt) -> str | None:
    """pointing.png: up to 12 images, misses first, CAM overlay with the box (white) and the peak (cross)."""
    ordered = sorted(results, key=lambda r: (r.hit, r.mass))[:FIGURE_MAX]
    if not ordered:
        return None
    cols = 4
    rows = (len(ordered) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    device = next(net.parameters()).device
    refs = [items[(r.set, r.image_id)] for r in ordered]
    imgs = [it.image() for it in refs]
    cams = gradcam_batch(
        net, net.backbone, arch, torch.stack([preset(im) for im in imgs]).to(device), [it.target for it in refs]
    )
    for ax, r, img, cam in zip(axes.flat, ordered, imgs, cams, strict=False):
        ax.imshow(overlay(img, cam))
        w, h = img.size
        x0, y0, x1, y1 = r.box
        ax.add_patch(plt.Rectangle((x0 * w, y0 * h), (x1 - x0) * w, (y1 - y0) * h, fill=False, ec="white", lw=1.5))
        ax.plot(r.peak[0] * w, r.peak[1] * h, "x", color="white", ms=9, mew=2)
        ax.set_title(f"{'hit' if r.hit else 'MISS'} {r.set} {r.image_id}\n{r.label}, mass {r.mass:.2f}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, out / "pointing.png")
    plt.close(fig)
    return "pointing.png"
