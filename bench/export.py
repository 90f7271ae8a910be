"""Benchmark `curate export` on 3,000 labelled images (a third camera-sized, 2-4k px JPEGs, some
EXIF-rotated; the rest 800x600 JPEGs and 320x240 PNGs), half of them with lesion boxes, at the
paper's 320x320 (resize + encode + ROI crops + manifest, card and checksums).

    python bench/export.py [--n 3000] [--out bench/out/export] [--workers 2]

Prints a table: the export's images/s (wall clock, and CPU-time based: what its cores would do
if no other job shared them), and for comparison the plain Pillow loop a steward would
otherwise write (full decode, exif_transpose, resize, save) on a sample of the camera-sized photos.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import delete, select

from curate.export import ExportOptions, ImageSpec, export_version
from curate.export.images import prepare
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace
from db.models import Image as ImageRow
from db.models.export import DatasetVersionRecord
from db.models.label import Consensus

DIAGNOSES = ["mpox", "genital_herpes", "genital_warts", "primary_syphilis", "dermatosis", "healthy_skin"]


def _photo(i: int) -> tuple[str, str]:
    """Write photo i; return (relative path, kind)."""
    rng = np.random.default_rng(i)
    small = rng.integers(40, 230, size=(9, 12, 3), dtype=np.uint8)
    if i % 3 == 0:  # camera-sized, with sensor-like noise (realistic entropy to decode)
        w = int(rng.integers(2000, 4001))
        h = w * 3 // 4
        base = Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR)
        arr = np.asarray(base, np.int16) + rng.integers(-8, 9, (h, w, 1), dtype=np.int16)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        rel, kind = f"case{i // 3:04d}/IMG_{i:05d}.jpg", "camera"
        exif = Image.Exif()
        if i % 2 == 0:
            exif[0x0112] = 6
            img = img.transpose(Image.Transpose.ROTATE_90)
        exif[0x8825] = {1: "S", 2: (37.0, 48.0, 0.0)}
        path = ROOT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, "JPEG", quality=92, exif=exif)
        return rel, kind
    base = Image.fromarray(small).resize((800, 600), Image.Resampling.BILINEAR)
    arr = np.asarray(base, np.int16) + rng.integers(-6, 7, (600, 800, 1), dtype=np.int16)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    path = ROOT / f"case{i // 3:04d}"
    path.mkdir(parents=True, exist_ok=True)
    if i % 3 == 1:
        img.save(path / f"img_{i:05d}.jpg", "JPEG", quality=88)
        return f"case{i // 3:04d}/img_{i:05d}.jpg", "web"
    img.resize((320, 240)).save(path / f"img_{i:05d}.png", "PNG")
    return f"case{i // 3:04d}/img_{i:05d}.png", "png"


ROOT = Path(".")


def _init(root: str) -> None:
    global ROOT
    ROOT = Path(root)


def build_corpus(root: Path, n: int, workers: int) -> Path:
    marker = root / f".complete-{n}"
    if marker.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    with ProcessPoolExecutor(workers, initializer=_init, initargs=(str(root),)) as pool:
        list(pool.map(_photo, range(n), chunksize=8))
    marker.touch()
    return root


def build_workspace(root: Path, corpus: Path, n: int) -> Workspace:
    marker = root / f".labelled-{n}"
    if marker.exists():
        return Workspace.open(root / "ws")
    shutil.rmtree(root / "ws", ignore_errors=True)
    ws = Workspace.init(root / "ws")
    ingest_folder(
        ws,
        corpus,
        IngestOptions(source="clinic", kind="clinic", licence="clinic-consent", case_id_pattern=r"(?P<case>case\d+)/"),
    )
    rng = np.random.default_rng(1)
    with ws.session() as s:
        for im in s.exec(select(ImageRow).order_by(ImageRow.id)).all():
            boxes = []
            if rng.random() < 0.5:
                bw, bh = int(im.width * rng.uniform(0.15, 0.4)), int(im.height * rng.uniform(0.15, 0.4))
                x0, y0 = int(rng.integers(0, im.width - bw)), int(rng.integers(0, im.height - bh))
                boxes = [[x0, y0, x0 + bw, y0 + bh]]
            s.add(
                Consensus(
                    image_id=im.id,
                    status="agreed",
                    diagnosis=DIAGNOSES[im.id % len(DIAGNOSES)],
                    method="unanimous",
                    n_raters=2,
                    agreement=1.0,
                    boxes=json.dumps(boxes),
                )
            )
    marker.touch()
    return ws


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the image workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def plain_pillow(paths: list[Path]) -> float:
    """What one would write by hand: full decode, orientation, resize, save (one core)."""
    out = Path(os.devnull)
    t = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            img = ImageOps.exif_transpose(im).convert("RGB").resize((320, 320), Image.Resampling.BICUBIC)
        with open(out, "wb") as f:
            img.save(f, "JPEG", quality=90)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=Path("bench/out/export"))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    console = Console(width=150)
    t = time.perf_counter()
    corpus = build_corpus(args.out / "corpus", args.n, args.workers)
    ws = build_workspace(args.out, corpus, args.n)
    console.print(f"corpus and catalogue ready in {time.perf_counter() - t:.0f} s ({os.cpu_count()} cores)")
    shutil.rmtree(ws.exports, ignore_errors=True)
    ws.exports.mkdir()
    with ws.session() as s:  # each run measures a fresh export, not the "already exists" path
        s.exec(delete(DatasetVersionRecord))

    rows = []
    for workers in sorted({1, args.workers}):
        t, cpu = time.perf_counter(), _cpu()
        r = export_version(
            ws,
            ExportOptions(
                name="bench", version=f"1.0.{workers}", spec=ImageSpec(size=(320, 320)), folds=5, workers=workers
            ),
        )
        secs, cpu = time.perf_counter() - t, _cpu() - cpu
        rows.append(
            [
                f"curate export ({workers} workers): {r.images} images, {r.roi_images} ROI crops",
                f"{secs:.1f}",
                f"{r.images / secs:.0f}",
                f"{cpu:.1f}",
                f"{workers * r.images / cpu:.0f}",
            ]
        )
    cams = sorted(corpus.rglob("IMG_*.jpg"))[:60]
    cpu = _cpu()
    secs = plain_pillow(cams)
    cpu = _cpu() - cpu
    rows.append(
        [
            f"plain Pillow loop, 1 core, {len(cams)} camera-sized only",
            f"{secs:.1f}",
            f"{len(cams) / secs:.0f}",
            f"{cpu:.1f}",
            f"{len(cams) / cpu:.0f}",
        ]
    )
    t, cpu = time.perf_counter(), _cpu()
    for p in cams:
        prepare(str(p), ImageSpec(), None)
    secs, cpu = time.perf_counter() - t, _cpu() - cpu
    rows.append(
        [
            f"curate prepare(), 1 core, {len(cams)} camera-sized only (draft decode)",
            f"{secs:.1f}",
            f"{len(cams) / secs:.0f}",
            f"{cpu:.1f}",
            f"{len(cams) / cpu:.0f}",
        ]
    )
    table = Table(title=f"export benchmark: {args.n} images, 320x320", title_justify="left")
    for c in ("way", "seconds", "images/s", "CPU s", "images/s if its cores were idle"):
        table.add_column(c, justify="left" if c == "way" else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"load average while measuring: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
