"""Write tiny dataset versions in the export contract's layout, with real JPEG bytes.

Two visually different classes: "mpox" = warm blobs on skin tone, "non_mpox" = stripes.
`texture_only=True` gives both classes the same colours so only shape differs (harder for
random features, easy for ImageNet ones).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from curate.dataset import MANIFEST_COLUMNS


def make_image(
    kind: str, rng: np.random.Generator, size: int, texture_only: bool = False
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """One synthetic lesion photo and its lesion box (x0, y0, x1, y1)."""
    bg = (
        tuple(int(v) for v in rng.integers(150, 210, size=3))
        if texture_only
        else (int(rng.integers(180, 230)), int(rng.integers(140, 180)), int(rng.integers(110, 150)))
    )
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    box_w = int(size * rng.uniform(0.4, 0.6))
    x0 = int(rng.integers(0, size - box_w))
    y0 = int(rng.integers(0, size - box_w))
    box = (x0, y0, x0 + box_w, y0 + box_w)
    fg = (60, 60, 60) if texture_only else None
    if kind == "mpox":
        for _ in range(int(rng.integers(3, 6))):
            r = int(rng.integers(max(2, size // 16), max(3, size // 8)))
            cx = int(rng.integers(x0 + r, x0 + box_w - r + 1))
            cy = int(rng.integers(y0 + r, y0 + box_w - r + 1))
            col = fg or (int(rng.integers(150, 220)), int(rng.integers(20, 60)), int(rng.integers(20, 60)))
            d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=col)
    else:
        step = max(3, size // 10)
        col = fg or (int(rng.integers(20, 60)), int(rng.integers(130, 200)), int(rng.integers(40, 90)))
        for x in range(x0, x0 + box_w, step):
            d.rectangle((x, y0, x + step // 2 - 1, y0 + box_w), fill=col)
    arr = np.asarray(img).astype(np.int16) + rng.integers(-12, 13, size=(size, size, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), box


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_sums(version_dir: Path) -> None:
    lines = []
    for p in sorted(version_dir.rglob("*"), key=lambda p: p.relative_to(version_dir).as_posix()):
        if p.is_file() and p.name != "SHA256SUMS":
            rel = p.relative_to(version_dir).as_posix()
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {rel}")
    (version_dir / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def write_export(
    root: Path,
    name: str = "mpox",
    version: str = "1.0.0",
    counts: dict[str, dict[str, int]] | None = None,
    size: int = 48,
    folds: int = 5,
    seed: int = 0,
    texture_only: bool = False,
    roi_every: int = 1,
) -> Path:
    """Write <root>/exports/<name>/<version>/ and return it.

    counts: {split: {class: n}}; default 10 mpox / 16 non_mpox train (mpox is the minority),
    4 + 4 test, 4 + 4 external. roi_every=k gives every k-th image a lesion box (and ROI file).
    """
    counts = counts or {
        "train": {"mpox": 10, "non_mpox": 16},
        "test": {"mpox": 4, "non_mpox": 4},
        "external": {"mpox": 4, "non_mpox": 4},
    }
    classes = sorted({c for per in counts.values() for c in per})
    out = Path(root) / "exports" / name / version
    out.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows = []
    n = 0
    for split, per in counts.items():
        for cls, k in per.items():
            for i in range(k):
                n += 1
                img, box = make_image(cls, rng, size, texture_only)
                rel = f"{split}/{cls}/img{n:06d}.jpg"
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                data = _jpeg(img)
                (out / rel).write_bytes(data)
                roi_rel = roi_sha = roi_box = ""
                if n % roi_every == 0:
                    roi_rel = f"roi/{rel}"
                    (out / roi_rel).parent.mkdir(parents=True, exist_ok=True)
                    roi_data = _jpeg(img.crop(box))
                    (out / roi_rel).write_bytes(roi_data)
                    roi_sha = hashlib.sha256(roi_data).hexdigest()
                    roi_box = " ".join(str(v) for v in box)
                rows.append(
                    {
                        "file": rel,
                        "roi_file": roi_rel,
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "roi_sha256": roi_sha,
                        "image_id": f"img{n:06d}",
                        "label": cls,
                        "diagnosis": cls,
                        "split": split,
                        "fold": str(i % folds) if split == "train" else "",
                        "source": "synthetic",
                        "licence": "CC0-1.0",
                        "consensus_method": "majority",
                        "n_raters": "2",
                        "agreement": "1.0",
                        "roi_box": roi_box,
                        "cluster": f"c{n}",
                        "has_case_id": "false",
                    }
                )
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    meta = {
        "name": name,
        "version": version,
        "task": "binary",
        "classes": classes,
        "image_size": [size, size],
        "resize_policy": "stretch",
        "seed": seed,
        "folds": folds,
        "external_sources": ["synthetic"],
        "parent": None,
        "created_at": "2026-01-01T00:00:00Z",
        "original_sizes": {r["image_id"]: [size, size] for r in rows if r["roi_box"]},
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=2))
    (out / "README.md").write_text(f"# {name} {version}\n\nSynthetic test export.\n")
    (out / "croissant.json").write_text(json.dumps({"@type": "sc:Dataset", "name": name}))
    write_sums(out)
    return out


def replace_file(version_dir: Path, rel: str, data: bytes) -> None:
    """Change one image's bytes *and* its manifest/SHA256SUMS entries: a new, valid version."""
    version_dir = Path(version_dir)
    old = hashlib.sha256((version_dir / rel).read_bytes()).hexdigest()
    (version_dir / rel).write_bytes(data)
    new = hashlib.sha256(data).hexdigest()
    manifest = version_dir / "manifest.csv"
    manifest.write_text(manifest.read_text().replace(old, new))
    write_sums(version_dir)


def new_jpeg(kind: str = "non_mpox", size: int = 48, seed: int = 99) -> bytes:
    img, _ = make_image(kind, np.random.default_rng(seed), size)
    return _jpeg(img)


def tiny_run(root: Path, arch: str = "resnet18", image_size: int = 32, bootstrap: int = 200) -> Path:
    """A finished run (random weights, 2 epochs) on a tiny export with lesion boxes on every other image."""
    from train.config import TrainConfig
    from train.recipe import run

    export = write_export(Path(root), roi_every=2)
    return run(
        TrainConfig(
            dataset=str(export),
            arch=arch,
            out=str(Path(root) / "runs" / arch),
            weights="none",
            epochs=2,
            image_size=image_size,
            bootstrap=bootstrap,
            gradcam_images=1,
        )
    )
