"""Benchmark `curate ingest` on ~2,000 mixed photos (a third camera-sized) against what a
steward would otherwise do: copy the folder and checksum it, or a plain Pillow verify loop.

    python bench/ingest.py [--n 2000] [--out bench/out/ingest]

Prints a table: wall time and images/s for each way.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from images import photo

from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace


def build_corpus(root: Path, n: int) -> Path:
    marker = root / f".complete-{n}"
    if marker.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(0)
    classes = ["mpox", "herpes", "warts", "syphilis", "healthy"]
    for i in range(n):
        d = root / classes[i % len(classes)]
        d.mkdir(parents=True, exist_ok=True)
        base = photo(i, (320, 240))
        if i % 3 == 0:  # camera-sized: 2-3k px on the long side
            w = int(rng.integers(2000, 3001))
            base = base.resize((w, w * 3 // 4), Image.BILINEAR)
            arr = np.asarray(base, np.int16) + rng.integers(-6, 7, (base.height, base.width, 1), dtype=np.int16)
            base = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
            base.save(d / f"IMG_{i:05d}.jpg", "JPEG", quality=92)
        elif i % 3 == 1:
            base.resize((800, 600)).save(d / f"img_{i:05d}.jpg", "JPEG", quality=88)
        else:
            base.save(d / f"img_{i:05d}.png", "PNG")
    marker.touch()
    return root


def images_in(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in {".jpg", ".png"})


def cp_and_sha256(src: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        subprocess.run(["cp", "-r", str(src), tmp], check=True)
        subprocess.run(f"find {tmp} -type f -print0 | xargs -0 sha256sum > /dev/null", shell=True, check=True)
        return time.perf_counter() - t


def pillow_loop(src: Path) -> float:
    t = time.perf_counter()
    for p in images_in(src):
        data = p.read_bytes()
        hashlib.sha256(data).hexdigest()
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=Path("bench/out/ingest"))
    args = ap.parse_args()
    console = Console()
    with console.status("building corpus"):
        corpus = build_corpus(args.out / "corpus", args.n)
    files = len(images_in(corpus))
    mb = sum(p.stat().st_size for p in images_in(corpus)) / 1e6

    rows = []
    t = cp_and_sha256(corpus)
    rows.append(("cp -r + sha256sum (no validation, no catalogue)", t))
    t = pillow_loop(corpus)
    rows.append(("Pillow full decode loop, 1 process (no store, no catalogue)", t))
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.init(Path(tmp) / "ws")
        t0 = time.perf_counter()
        rep = ingest_folder(ws, corpus, IngestOptions(source="bench", label_from_folders=True))
        rows.append((f"curate ingest (validate + store + catalogue, {rep.added} added)", time.perf_counter() - t0))
        t0 = time.perf_counter()
        again = ingest_folder(ws, corpus, IngestOptions(source="bench", label_from_folders=True))
        rows.append((f"curate ingest re-run ({again.known} already known)", time.perf_counter() - t0))

    table = Table(title=f"ingest: {files} files, {mb:.0f} MB, a third camera-sized (2-3k px)")
    table.add_column("method")
    table.add_column("wall s", justify="right")
    table.add_column("images/s", justify="right")
    for name, secs in rows:
        table.add_row(name, f"{secs:.1f}", f"{files / secs:.0f}")
    console.print(table)


if __name__ == "__main__":
    main()
