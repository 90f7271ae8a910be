"""The three leak kinds of issue 9, and the clean corpus they are measured against (tests and bench/leakage.py).

`bases()` gives distinct photos: disjoint tiles of the colour and grey photos that ship with
scikit-image (so several "photos" share one subject and texture) and synthetic skin close-ups
(`dedupe_corpus.photo`) with a sibling each (same skin and light, other spots). `LEAKS` holds the
re-posting edits a reviewer found crossing splits: a burned-in watermark plus a different crop, a
mirror image plus a crop, the photo inside a white frame. `exported(img)` is what `curate export`
writes (stretched to a square, JPEG).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from dedupe_corpus import photo, sibling
from PIL import Image, ImageDraw, ImageFont, ImageOps

TILES = {
    "astronaut": (2, 2),
    "chelsea": (1, 2),
    "coffee": (2, 3),
    "hubble_deep_field": (2, 2),
    "immunohistochemistry": (2, 2),
    "retina": (2, 2),
    "rocket": (1, 2),
    "brick": (2, 2),
    "camera": (2, 2),
    "clock": (1, 2),
    "coins": (1, 2),
    "grass": (2, 2),
    "gravel": (2, 2),
    "moon": (2, 2),
    "page": (1, 2),
    "text": (1, 2),
}


def _rgb(a: np.ndarray) -> Image.Image:
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    return Image.fromarray(a[..., :3].astype(np.uint8))


def bases(skin: int = 30, photos: bool = True) -> list[tuple[str, Image.Image]]:
    """(group, image) of distinct photos; images of one group look alike (one subject, or one skin)."""
    out = []
    if photos:
        import skimage.data

        for name, (ny, nx) in TILES.items():
            a = getattr(skimage.data, name)()
            th, tw = a.shape[0] // ny, a.shape[1] // nx
            out += [(name, _rgb(a[y * th : (y + 1) * th, x * tw : (x + 1) * tw])) for y in range(ny) for x in range(nx)]
    for s in range(skin):
        out += [(f"skin{s}", photo(s, (320, 256))), (f"skin{s}", sibling(s, 0, (320, 256)))]
    return out


def ruled(n: int, real: bool = True) -> list[tuple[str, Image.Image]]:
    """(group, image) of `n` different photos, each beside one clinic's ruler (`photo_corpus.with_ruler`):
    two thirds single lesions on plain skin, a third real photos and tiles (`real`; else synthetic skin
    photos: `bases`' tiles are parts of the same real photos). Every pair of them shares the ruler's
    keypoints, which agree on one transform (the leakage audit's `one_object` case)."""
    from photo_corpus import closeup, originals, with_ruler

    out = [(f"ruled{k}", with_ruler(closeup(k), k)) for k in range((2 * n) // 3)]
    if not real:
        return out + [(f"ruled-skin{k}", with_ruler(photo(500 + k, (320, 256)), 500 + k)) for k in range(n - len(out))]
    photos = originals()
    picks = np.random.default_rng(7).choice(len(photos), n - len(out), replace=False)
    return out + [(f"ruled-photo{k}", with_ruler(photos[int(k)], 1000 + int(k))) for k in picks]


def _crop(img: Image.Image, rng: np.random.Generator, lo: float, hi: float) -> Image.Image:
    w, h = img.size
    cw, ch = round(w * rng.uniform(lo, hi)), round(h * rng.uniform(lo, hi))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((x0, y0, x0 + cw, y0 + ch))


def _font(px: int):
    try:
        return ImageFont.truetype("DejaVuSans-Bold.ttf", px)
    except OSError:
        return ImageFont.load_default(px)


def watermark_crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """75-90 % of each side kept, then a semi-opaque site name burned in near the top or bottom."""
    img = _crop(img, rng, 0.75, 0.9).convert("RGBA")
    w, h = img.size
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    x, y = int(rng.uniform(0.02, 0.3) * w), int(rng.choice([0.05, 0.85]) * h)
    ImageDraw.Draw(layer).text(
        (x, y),
        "© derm-atlas.example",
        font=_font(max(10, h // 12)),
        fill=(255, 255, 255, 200),
        stroke_width=1,
        stroke_fill=(0, 0, 0, 160),
    )
    return Image.alpha_composite(img, layer).convert("RGB")


def mirror_crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return _crop(ImageOps.mirror(img), rng, 0.75, 0.9)


def white_frame(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A white frame of 5-15 % on each side (uneven), then rescaled ×0.6-1.2."""
    w, h = img.size
    left, top, right, bottom = (int(rng.uniform(0.05, 0.15) * s) for s in (w, h, w, h))
    out = Image.new("RGB", (w + left + right, h + top + bottom), (255, 255, 255))
    out.paste(img, (left, top))
    f = rng.uniform(0.6, 1.2)
    return out.resize((round(out.width * f), round(out.height * f)), Image.LANCZOS)


LEAKS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "watermark_crop": watermark_crop,
    "mirror_crop": mirror_crop,
    "white_frame": white_frame,
}


class Parts:
    """Files laid out as a version's parts under `root` (train/, test/ …) and the audit's entry for each."""

    def __init__(self, root):
        self.root, self.entries = root, []

    def put(self, name: str, data: bytes, split: str, fold: int | None) -> None:
        from curate.export.leakage import Entry

        (self.root / split).mkdir(exist_ok=True)
        (self.root / split / name).write_bytes(data)
        self.entries.append(Entry(f"{split}/{name}", split, fold))


def exported(img: Image.Image, size: int = 320) -> bytes:
    """JPEG bytes as `curate export` writes them: stretched to size×size."""
    buf = io.BytesIO()
    img.convert("RGB").resize((size, size), Image.BICUBIC).save(buf, "JPEG", quality=90)
    return buf.getvalue()
