"""Synthetic, photo-like pictures: a demo folder for a fresh machine, and test material.

No real patient image ever ships with the toolkit, so `curate pipeline --demo`
fills `incoming/` with these instead (skin-toned gradients with lesion-like
blotches, plus a few re-encoded, resized and mirrored copies for dedupe to find).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from curate.files import atomic_dir


def photo(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A photo-like RGB picture: skin-toned gradient, blotches and sensor noise, distinct per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.array([200, 150, 120], np.float32) + rng.normal(0, 25, 3)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        img[..., c] = base[c] + 30 * np.sin(x / w * rng.uniform(1, 5) + c) * np.cos(y / h * rng.uniform(1, 5))
    for _ in range(int(rng.integers(3, 9))):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(min(w, h) / 20, min(w, h) / 5)
        mask = ((x - cx) ** 2 + (y - cy) ** 2) < r**2
        img[mask] = img[mask] * 0.6 + np.array([120, 40, 50]) * 0.4
    img += rng.normal(0, 4, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


DEMO_CLASSES = ("mpox", "genital_herpes", "genital_warts", "healthy_skin")


def write_demo_folder(dest: Path, per_class: int = 6, tmp_dir: Path | None = None) -> int:
    """Write a small demo clinic export as the new folder `dest` (class sub-folders, case ids in names); returns
    files written. It is built in `tmp_dir` (default: beside `dest`; same filesystem) and renamed into place
    whole (`curate.files.atomic_dir`), so a kill leaves no `dest` rather than a smaller demo or a cut JPEG."""
    with atomic_dir(dest, tmp_dir=tmp_dir) as root:
        return _write_demo(root, per_class)


def _write_demo(root: Path, per_class: int) -> int:
    n = 0
    for k, klass in enumerate(DEMO_CLASSES):
        folder = root / klass
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            seed = 1000 * (k + 1) + i
            img = photo(seed, (640, 480))
            img.save(folder / f"case{seed:05d}_1.jpg", "JPEG", quality=90)
            n += 1
            if i == 0:  # planted near-duplicates: a resized re-encode and a mirror image
                img.resize((480, 360)).save(folder / f"case{seed:05d}_1_small.jpg", "JPEG", quality=75)
                ImageOps.mirror(img).save(folder / f"case{seed:05d}_1_mirror.png", "PNG")
                n += 2
    return n
