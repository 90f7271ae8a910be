"""Image preprocessing and the paper's offline augmentation, as small deterministic builders.

Everything here is PIL + numpy so that the same bytes, size and seed always give the same tensor:
that is what makes the feature cache (keyed on those) safe.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from train.errors import TrainError

PRESET_VERSION = 1  # bump when EvalPreset changes what it computes
AUGMENT_VERSION = 1  # bump when `augment` changes


@dataclass(frozen=True)
class EvalPreset:
    """Resize (stretch) to size×size, scale to [0, 1], normalise. The only preprocessing there is."""

    size: int
    mean: tuple
    std: tuple

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.normalise(self.unit(img))))

    def unit(self, img: Image.Image) -> np.ndarray:
        """(3, S, S) float32 RGB in [0, 1], not normalised: the exported model's input (it normalises inside)."""
        img = img.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        return np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0

    def normalise(self, unit: np.ndarray) -> np.ndarray:
        """`unit`'s (…, 3, S, S) array minus the mean, over the std (what the network sees)."""
        mean, std = (np.asarray(v, np.float32).reshape(3, 1, 1) for v in (self.mean, self.std))
        return (unit - mean) / std

    @property
    def id(self) -> str:
        """Short hash of everything that changes the tensor; part of every cache key."""
        blob = json.dumps({**asdict(self), "v": PRESET_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def augment(img: Image.Image, seed: int, source_sha: str, index: int) -> Image.Image:
    """One offline-augmented copy: rotation, area crop, zoom, h/v flips, brightness, contrast.

    Deterministic in (seed, source image bytes, index), like the paper's Augmentor pipeline
    (Table S1): the same copy is produced every time, so its features can be cached.
    """
    rng = random.Random(f"{AUGMENT_VERSION}:{seed}:{source_sha}:{index}")
    img = img.convert("RGB")
    w, h = img.size
    img = img.rotate(rng.uniform(-25, 25), resample=Image.BILINEAR, fillcolor=_edge_colour(img))
    if rng.random() < 0.5:  # area crop: keep 70-100 % of the area
        frac = rng.uniform(0.7, 1.0) ** 0.5
        cw, ch = max(1, int(w * frac)), max(1, int(h * frac))
        x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
        img = img.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BILINEAR)
    zoom = rng.uniform(0.85, 1.2)  # zoom in (>1) crops the centre, zoom out pads with the edge colour
    if zoom > 1:
        cw, ch = int(w / zoom), int(h / zoom)
        img = img.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)).resize(
            (w, h), Image.BILINEAR
        )
    elif zoom < 1:
        small = img.resize((max(1, int(w * zoom)), max(1, int(h * zoom))), Image.BILINEAR)
        canvas = Image.new("RGB", (w, h), _edge_colour(img))
        canvas.paste(small, ((w - small.width) // 2, (h - small.height) // 2))
        img = canvas
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    if rng.random() < 0.5:
        img = ImageOps.flip(img)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.2))
    return img


def _edge_colour(img: Image.Image) -> tuple:
    arr = np.asarray(img)
    edge = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    return tuple(int(v) for v in edge.mean(axis=0))


@dataclass(frozen=True)
class ImageRef:
    """One image the backbone sees: an exported file, or an augmented copy of one."""

    path: Path
    sha256: str
    target: int
    image_id: str
    aug_index: int | None = None
    aug_seed: int | None = None

    @property
    def key(self) -> str:
        if self.aug_index is None:
            return self.sha256
        return f"{self.sha256}-aug{AUGMENT_VERSION}.{self.aug_index}-s{self.aug_seed}"

    def image(self) -> Image.Image:
        try:
            with Image.open(self.path) as im:
                img = im.convert("RGB")
        except (OSError, SyntaxError, ValueError) as exc:  # truncated, not an image: before, "unexpected OSError"
            raise TrainError(
                f"cannot read image {self.path}: damaged or not an image ({type(exc).__name__}); export the "
                "dataset version again"
            ) from None
        if self.aug_index is not None:
            img = augment(img, self.aug_seed, self.sha256, self.aug_index)
        return img
