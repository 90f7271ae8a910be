"""Real-looking skin photos and their re-posted variants, for dedupe tests and `bench/dedupe.py`.

`photo(seed, size)` draws a textured, skin-toned photo with lesion-like spots,
shading and sensor noise; every seed gives a different photo. `sibling(seed, k)`
keeps the palette and lighting of `seed` but moves every spot: a visually
similar but *distinct* photo, the hard negative that makes precision mean
something. `TRANSFORMS` holds the re-posting edits the dedupe stage must see
through; each takes (image, rng) and returns an image.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter


def _palette(rng: np.random.Generator) -> dict:
    skin = np.array([rng.uniform(150, 235), rng.uniform(105, 180), rng.uniform(80, 150)])
    return {
        "skin": skin,
        "lesion": skin * np.array([rng.uniform(0.55, 0.85), rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.6)]),
        "shade": rng.uniform(0.25, 0.5),
        "angle": rng.uniform(0, 2 * np.pi),
    }


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    small = rng.normal(0, 1, size=(cells, cells)).astype(np.float32)
    img = Image.fromarray(small, mode="F").resize((w, h), Image.BICUBIC)
    return np.asarray(img)


def _draw(pal: dict, layout: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Lighting: a directional gradient plus a soft vignette.
    gx, gy = np.cos(pal["angle"]), np.sin(pal["angle"])
    light = 1.0 + pal["shade"] * (((xx / w) - 0.5) * gx + ((yy / h) - 0.5) * gy)
    light -= 0.25 * (((xx / w) - 0.5) ** 2 + ((yy / h) - 0.5) ** 2)
    tex = 1.0 + 0.07 * _smooth_noise(layout, h, w, 12) + 0.03 * _smooth_noise(layout, h, w, 48)
    rgb = pal["skin"][None, None, :] * (light * tex)[..., None]
    # Folds / creases: a few darker sweeping bands.
    for _ in range(int(layout.integers(1, 4))):
        a, b, c = layout.uniform(-1, 1), layout.uniform(-1, 1), layout.uniform(-0.3, 0.3)
        d = np.abs(a * (xx / w - 0.5) + b * (yy / h - 0.5) + c) / np.hypot(a, b)
        rgb *= (1 - 0.18 * np.exp(-((d / 0.02) ** 2)))[..., None]
    # Lesions: raised spots with a red halo and a darker or paler centre.
    for _ in range(int(layout.integers(4, 12))):
        cx, cy = layout.uniform(0.08, 0.92) * w, layout.uniform(0.08, 0.92) * h
        r = layout.uniform(0.025, 0.09) * min(w, h)
        ex = layout.uniform(0.7, 1.4)
        d2 = ((xx - cx) / (r * ex)) ** 2 + ((yy - cy) / (r / ex)) ** 2
        halo = np.exp(-d2 / 3.0)
        core = np.exp(-(d2**2))
        rgb = rgb * (1 - 0.35 * halo[..., None]) + pal["lesion"][None, None, :] * 0.35 * halo[..., None]
        centre = layout.uniform(0.6, 1.3)
        rgb = rgb * (1 - core[..., None]) + (pal["lesion"] * centre)[None, None, :] * core[..., None]
    rgb += layout.normal(0, 4.0, size=rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def photo(seed: int, size: tuple[int, int] = (192, 160)) -> Image.Image:
    """A distinct photo per seed."""
    rng = np.random.default_rng([seed, 1])
    return _draw(_palette(rng), np.random.default_rng([seed, 2]), size)


def sibling(seed: int, k: int, size: tuple[int, int] = (192, 160)) -> Image.Image:
    """Same palette and lighting as `photo(seed)`, a different layout of spots (a hard negative)."""
    rng = np.random.default_rng([seed, 1])
    return _draw(_palette(rng), np.random.default_rng([seed, 3, k]), size)


# --- re-posting edits ------------------------------------------------------------------


def _reencode(img: Image.Image, rng) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(35, 60)))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _resize(img: Image.Image, rng) -> Image.Image:
    f = rng.choice([0.4, 0.6, 1.5])
    return img.resize((max(8, round(img.width * f)), max(8, round(img.height * f))), Image.LANCZOS)


def _tone(img: Image.Image, rng) -> Image.Image:
    img = ImageEnhance.Brightness(img).enhance(rng.choice([rng.uniform(0.7, 0.85), rng.uniform(1.15, 1.3)]))
    return ImageEnhance.Contrast(img).enhance(rng.choice([rng.uniform(0.7, 0.85), rng.uniform(1.15, 1.3)]))


def _crop(img: Image.Image, rng) -> Image.Image:
    """Remove up to 10 % of each dimension, split unevenly between the two borders."""
    w, h = img.size
    fx, fy = rng.uniform(0.05, 0.10), rng.uniform(0.05, 0.10)
    lx, ty = rng.uniform(0, 1), rng.uniform(0, 1)
    x0, y0 = round(w * fx * lx), round(h * fy * ty)
    return img.crop((x0, y0, x0 + round(w * (1 - fx)), y0 + round(h * (1 - fy))))


def _rotate(img: Image.Image, rng) -> Image.Image:
    angle = rng.choice([-1, 1]) * rng.uniform(2.0, 5.0)
    return img.rotate(angle, resample=Image.BICUBIC, expand=False, fillcolor=(0, 0, 0))


def _bar(img: Image.Image, rng) -> Image.Image:
    """A black anonymisation bar across the width, 8-15 % of the height."""
    out = img.copy()
    w, h = out.size
    bh = round(h * rng.uniform(0.08, 0.15))
    y = round(rng.uniform(0.1, 0.8) * h)
    ImageDraw.Draw(out).rectangle((0, y, w, y + bh), fill=(0, 0, 0))
    return out


def _mirror(img: Image.Image, rng) -> Image.Image:
    return img.transpose(Image.FLIP_LEFT_RIGHT)


def _quarter_turn(img: Image.Image, rng) -> Image.Image:
    return img.transpose(rng.choice([Image.ROTATE_90, Image.ROTATE_180, Image.ROTATE_270]))


def _flip_turn(img: Image.Image, rng) -> Image.Image:
    return img.transpose(rng.choice([Image.FLIP_TOP_BOTTOM, Image.TRANSPOSE, Image.TRANSVERSE]))


def _blur_sharpen(img: Image.Image, rng) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.2)))


TRANSFORMS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "reencode": _reencode,
    "resize": _resize,
    "tone": _tone,
    "crop": _crop,
    "rotate": _rotate,
    "bar": _bar,
    "mirror": _mirror,
    "quarter_turn": _quarter_turn,
    "flip_turn": _flip_turn,
    "blur": _blur_sharpen,
}


def variant(img: Image.Image, name: str, seed: int) -> Image.Image:
    """`img` after the named edit (deterministic per seed)."""
    return TRANSFORMS[name](img, np.random.default_rng([seed, 99]))


def save(img: Image.Image, path: Path, quality: int = 88) -> Path:
    """Write by extension (JPEG at `quality`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img.convert("RGB").save(path, "JPEG", quality=quality)
    else:
        img.save(path)
    return path


def photos_and_copies(
    tmp_path: Path, shown: dict[str, Image.Image], copy, suffix: str
) -> tuple[dict[str, str], dict[str, str], list]:
    """`dedupe_files` on each photo of `shown` (name -> picture) as NAME.jpg beside its copy `copy(k, picture)`
    (k: its place in `shown`) as NAME_`suffix`; (cluster key by file, the photo's name by file, stored pairs)."""
    files = {f"{n}.jpg": img for n, img in shown.items()}
    files |= {f"{n}_{suffix}": copy(k, img) for k, (n, img) in enumerate(shown.items())}
    cluster, _, pairs = dedupe_files(tmp_path, files)
    return cluster, {f: f.removesuffix(f"_{suffix}").removesuffix(".jpg") for f in files}, pairs


def dedupe_files(tmp_path: Path, files: dict[str, Image.Image]) -> tuple[dict, dict, list]:
    """Save `files` (name -> picture, JPEG at 90 as `bench/dedupe.py` writes its corpus), ingest and
    dedupe them in a new workspace; (cluster key by name, content box by name, stored pairs as
    (name a, name b, kind, reason))."""
    from sqlmodel import select

    from curate.dedupe.decode import parse_box
    from curate.dedupe.run import DedupeOptions, run_dedupe
    from curate.intake.ingest import IngestOptions, ingest_folder
    from curate.workspace import Workspace
    from db.models import DedupeCode, DedupeMember, DedupePair, Provenance

    for name, img in files.items():
        save(img, tmp_path / "in" / name, quality=90)
    ws = Workspace.init(tmp_path / "ws")
    ingest_folder(ws, tmp_path / "in", IngestOptions(source="atlas", kind="public", workers=1))
    run_dedupe(ws, DedupeOptions(min_side=1, workers=1))
    with ws.session() as s:
        name = {i: Path(loc).name for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all()}
        cluster = {name[m.image_id]: m.cluster_key for m in s.exec(select(DedupeMember)).all()}
        box = {name[c.image_id]: parse_box(c.box) for c in s.exec(select(DedupeCode)).all()}
        pairs = [(name[p.image_a], name[p.image_b], p.kind, p.reason) for p in s.exec(select(DedupePair)).all()]
    return cluster, box, pairs


def clinic_beside(tmp_path: Path, beside: Callable, seeds, posted: int) -> tuple[dict, dict, list]:
    """A clinic's close-ups (`photo_corpus.closeup` of each seed), each photographed beside one object
    (`beside`: `photo_corpus.with_ruler` or `with_chart`), lesion `posted` posted again cropped, and a real
    photo (coffee) beside the object too; saved, ingested and deduped (`dedupe_files`)."""
    from photo_corpus import closeup, crop, originals

    files = {f"lesion_{k}.jpg": beside(closeup(k), k) for k in seeds}
    files[f"lesion_{posted}_posted.jpg"] = crop(files[f"lesion_{posted}.jpg"], np.random.default_rng([posted, 9]))
    files["photo.jpg"] = beside(originals()[1], 1000)
    return dedupe_files(tmp_path, files)


def merged(cluster: dict[str, str]) -> list[set[str]]:
    """The clusters of more than one file (names), from `dedupe_files`' cluster key by name."""
    members: dict[str, set[str]] = {}
    for name, key in cluster.items():
        members.setdefault(key, set()).add(name)
    return [m for m in members.values() if len(m) > 1]
