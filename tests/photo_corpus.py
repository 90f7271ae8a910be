"""Real photos, their re-posted copies and their look-alikes, for dedupe tests and `bench/dedupe.py`.

Originals are the photographs shipped inside scikit-image (`skimage.data`:
astronaut, coffee, chelsea, rocket, retina, hubble …) and tiles cut from the
large ones, so every picture carries real camera texture. `LEAKS` are the
re-posting edits seen on real lesion photos (issue 9): frames and padding of
several colours and widths, watermark + crop, mirror + crop, frame + rescale.
The hard negatives are `closeup(seed)` (one lesion-like blob on plain skin,
a different blob per seed) and `same_frame` (different photos in one frame).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# skimage.data.cat() is chelsea again (one photo): listed once, or the corpus would call one photo two
COLOUR_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")
GREY_PHOTOS = ("camera", "moon", "coins", "clock", "brick", "grass", "gravel", "cell")
FRAME_COLOURS = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "grey": (128, 128, 128),
    "cream": (240, 228, 200),
    "teal": (40, 120, 130),
}


@cache
def _load(name: str) -> Image.Image:
    import skimage.data  # test and benchmark dependency only

    a = getattr(skimage.data, name)()
    img = Image.fromarray(a)
    return img.convert("RGB")


def tiles(name: str, side: int) -> list[Image.Image]:
    """Non-overlapping `side` x `side` tiles of a photo (different pictures, same camera and scene)."""
    img = _load(name)
    out = [
        img.crop((x, y, x + side, y + side))
        for y in range(0, img.height - side + 1, side)
        for x in range(0, img.width - side + 1, side)
    ]
    return [t for t in out if np.asarray(t.convert("L")).std() >= 12]  # not the black corners of a fundus photo


TILED = {
    "retina": 256,
    "hubble_deep_field": 160,
    "astronaut": 160,
    "coffee": 160,
    "immunohistochemistry": 160,
    "rocket": 160,
    "camera": 160,
    "brick": 160,
    "gravel": 160,
    "moon": 160,
}  # not skimage's grass: a synthesised texture that repeats its own patches (two patches 200 px
# apart correlate 0.85), so two of its tiles can share content: not different pictures


def originals(limit: int | None = None) -> list[Image.Image]:
    """Distinct real photos: whole pictures first, then non-overlapping tiles of the large ones
    (one tile size per photo; a tile is under a tenth of its photo, a different picture)."""
    out = [_load(n) for n in COLOUR_PHOTOS + GREY_PHOTOS]
    for n, side in TILED.items():
        out.extend(tiles(n, side))
    return out[:limit] if limit else out


# --- re-posting edits --------------------------------------------------------------


def frame(img: Image.Image, colour: str, width: float) -> Image.Image:
    """A uniform frame `width` (share of the shorter side) on every side."""
    b = max(2, round(min(img.size) * width))
    out = Image.new("RGB", (img.width + 2 * b, img.height + 2 * b), FRAME_COLOURS[colour])
    out.paste(img, (b, b))
    return out


def pad(img: Image.Image, colour: str, aspect: float) -> Image.Image:
    """Padding to a wider (or taller) aspect ratio, content centred or to one side."""
    w, h = img.size
    if aspect >= w / h:
        out = Image.new("RGB", (round(h * aspect), h), FRAME_COLOURS[colour])
        out.paste(img, ((out.width - w) // 3, 0))
    else:
        out = Image.new("RGB", (w, round(w / aspect)), FRAME_COLOURS[colour])
        out.paste(img, (0, (out.height - h) // 2))
    return out


def crop(img: Image.Image, rng: np.random.Generator, most: float = 0.15) -> Image.Image:
    w, h = img.size
    fx, fy = rng.uniform(0.04, most), rng.uniform(0.04, most)
    x0, y0 = round(w * fx * rng.uniform()), round(h * fy * rng.uniform())
    return img.crop((x0, y0, x0 + round(w * (1 - fx)), y0 + round(h * (1 - fy))))


def watermark(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = img.copy()
    d = ImageDraw.Draw(out)
    size = max(10, img.height // 12)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    y = round(img.height * rng.uniform(0.55, 0.85))
    d.text(
        (round(img.width * 0.05), y),
        "© dermatlas.example",
        fill=(255, 255, 255),
        font=font,
        stroke_width=1,
        stroke_fill=(0, 0, 0),
    )
    return out


def reencode(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _rescale(img: Image.Image, f: float) -> Image.Image:
    return img.resize((max(8, round(img.width * f)), max(8, round(img.height * f))), Image.LANCZOS)


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


LEAKS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "frame": lambda im, r: frame(im, _pick(r, list(FRAME_COLOURS)), float(r.uniform(0.03, 0.15))),
    "white_frame": lambda im, r: frame(im, "white", float(r.uniform(0.05, 0.2))),
    "pad_wide": lambda im, r: pad(im, _pick(r, ["white", "black", "grey"]), float(r.choice([16 / 9, 2.0, 0.6]))),
    "watermark_crop": lambda im, r: crop(watermark(im, r), r),
    "mirror_crop": lambda im, r: crop(im.transpose(Image.FLIP_LEFT_RIGHT), r),
    "frame_rescale": lambda im, r: _rescale(
        frame(im, _pick(r, list(FRAME_COLOURS)), float(r.uniform(0.04, 0.12))), float(r.choice([0.5, 0.7, 1.4]))
    ),
}


def leak(img: Image.Image, name: str, seed: int) -> Image.Image:
    return LEAKS[name](img, np.random.default_rng([seed, 9]))


# --- hard negatives ------------------------------------------------------------------


def closeup(
    seed: int, size: tuple[int, int] = (320, 256), skin: tuple[int, int, int] = (208, 160, 130), texture: float = 0.025
) -> Image.Image:
    """One lesion-like blob on plain skin: the same skin colour and light for every seed, its own
    pores and lesion. `texture=0` gives a smooth, noiseless picture (too little for keypoints)."""
    w, h = size
    base = np.random.default_rng([seed, 5])
    rng = np.random.default_rng([seed, 6])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1.0 + 0.12 * (xx / w - 0.5) - 0.08 * (yy / h - 0.5)
    pores = np.asarray(
        Image.fromarray(base.normal(0, 1, (h // 3, w // 3)).astype(np.float32), "F").resize((w, h), Image.BICUBIC)
    )
    rgb = np.array(skin, np.float32)[None, None] * (light * (1 + texture * pores))[..., None]
    cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    r = rng.uniform(0.08, 0.16) * min(w, h)
    ang = rng.uniform(0, np.pi)
    ex = rng.uniform(0.6, 1.5)
    u = ((xx - cx) * np.cos(ang) + (yy - cy) * np.sin(ang)) / (r * ex)
    v = (-(xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang)) / (r / ex)
    wobble = 1 + 0.25 * np.sin(rng.integers(3, 7) * np.arctan2(v, u) + rng.uniform(0, 6))
    d2 = (u**2 + v**2) / wobble**2
    lesion = np.array([rng.uniform(120, 170), rng.uniform(50, 90), rng.uniform(50, 80)], np.float32)
    halo, core = np.exp(-d2 / 2.5), np.exp(-(d2**2))
    rgb = rgb * (1 - 0.4 * halo[..., None]) + lesion * 0.4 * halo[..., None]
    rgb = rgb * (1 - core[..., None]) + lesion * rng.uniform(0.6, 1.1) * core[..., None]
    rgb += rng.normal(0, 2.0, rgb.shape) * (texture > 0)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(0.5 if texture else 3)
    )


def same_frame(
    img: Image.Image, width: int = 40, colour: str = "white", canvas: tuple[int, int] = (400, 340)
) -> Image.Image:
    """`img` fitted into one fixed frame: different photos come out with identical borders."""
    inner = (canvas[0] - 2 * width, canvas[1] - 2 * width)
    out = Image.new("RGB", canvas, FRAME_COLOURS[colour])
    out.paste(img.convert("RGB").resize(inner, Image.LANCZOS), (width, width))
    return out
