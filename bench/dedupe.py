"""Dedupe benchmark: this project vs imagededup (PHash, default threshold) vs difPy ("similar").

Builds a corpus of real-looking skin photos (tests/dedupe_corpus.py) with planted
near-duplicates, one transformation each, a third of the originals camera-sized
(2-3k px JPEGs), plus hard negatives (same palette, different layout). Prints wall
time, recall per transformation and pairwise precision for each tool.

    .venv/bin/python bench/dedupe.py --images 2400 --planted 450 \
        --other-python /work/benchvenv/bin/python

imagededup and difPy run in their own virtualenv (`--other-python`), each in a
subprocess of this script, so their dependencies never touch the project's.
Every tool's matched pairs are joined into groups the same way (union), and a
planted variant counts as found when it lands in its original's group.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from scipy.cluster.hierarchy import DisjointSet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --- corpus ----------------------------------------------------------------------------


def _make(job: tuple) -> tuple[str, str, str]:
    """Write one file; returns (file name, group, transformation or '')."""
    import numpy as np
    from PIL import Image

    from tests.dedupe_corpus import photo, save, sibling, variant

    out, name, seed, kind, arg, big = job
    group = f"g{seed}" if kind != "sibling" else f"s{seed}_{arg}"
    if (Path(out) / name).exists():  # an interrupted build resumes
        return name, group, arg if kind == "variant" else ""
    if kind == "sibling":
        img = sibling(seed, arg)
    else:
        img = photo(seed)
    if big:  # camera-sized: upscale a detailed render and add sensor grain at full size
        rng = np.random.default_rng([seed, 7])
        w = int(rng.integers(2000, 3000))
        h = int(w * rng.uniform(0.66, 0.8))
        img = (sibling(seed, arg, (600, 500)) if kind == "sibling" else photo(seed, (600, 500))).resize((w, h), Image.BICUBIC)
        a = np.asarray(img, np.int16) + rng.integers(-3, 4, size=(h, w, 1), dtype=np.int16)
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if kind == "variant":
        img = variant(img, arg, seed)
    tmp = Path(out) / f".{name}.part{Path(name).suffix}"
    save(img, tmp, quality=90)
    tmp.rename(Path(out) / name)
    return name, group, arg if kind == "variant" else ""


def build_corpus(out: Path, images: int, planted: int, workers: int) -> dict:
    from tests.dedupe_corpus import TRANSFORMS

    truth_file = out / "truth.json"
    if truth_file.exists():
        truth = json.loads(truth_file.read_text())
        if truth.get("images") == images and truth.get("planted") == planted:
            return truth
    out.mkdir(parents=True, exist_ok=True)
    originals = images - planted
    n_sib = originals // 6  # hard negatives: same palette and lighting as another photo, new layout
    base = originals - n_sib
    jobs = []
    for k in range(base):
        jobs.append((str(out), f"p{k:05d}.jpg", k, "photo", "", k % 3 == 0))
    for k in range(n_sib):
        seed = (k * 7) % base
        jobs.append((str(out), f"s{k:05d}.jpg", seed, "sibling", k, False))
    names = list(TRANSFORMS)
    for k in range(planted):
        t = names[k % len(names)]
        seed = k % base  # one variant per original (while planted <= originals)
        ext = ".png" if t == "mirror" and k % 2 else ".jpg"
        jobs.append((str(out), f"v{k:05d}_{t}{ext}", seed, "variant", t, seed % 3 == 0 and t != "resize"))
    with ProcessPoolExecutor(workers) as pool:
        rows = list(pool.map(_make, jobs, chunksize=4))
    truth = {"images": images, "planted": planted, "files": {n: {"group": g, "transform": t} for n, g, t in rows}}
    truth_file.write_text(json.dumps(truth))
    return truth


# --- tools -------------------------------------------------------------------------------


def run_ours(corpus: Path, workdir: Path, workers: int) -> dict:
    from curate.dedupe.run import DedupeOptions, run_dedupe
    from curate.intake.ingest import IngestOptions, ingest_folder
    from curate.workspace import Workspace
    from db.models import DedupeMember, Provenance
    from sqlmodel import select

    ws = Workspace.init(workdir / "ws")
    t = time.perf_counter()
    ingest_folder(ws, corpus, IngestOptions(source="bench", kind="public", workers=workers))
    ingest_s = time.perf_counter() - t
    t = time.perf_counter()
    rep = run_dedupe(ws, DedupeOptions(min_side=1, workers=workers))
    seconds = time.perf_counter() - t
    with ws.session() as s:
        names_of = defaultdict(list)  # byte-identical files are one image with several arrivals
        for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all():
            names_of[i].append(loc)
        groups = defaultdict(list)
        for m in s.exec(select(DedupeMember)).all():
            groups[m.cluster_key].extend(names_of[m.image_id])
    pairs = [(g[0], x) for g in groups.values() for x in g[1:]]
    return {"seconds": seconds, "pairs": pairs, "extra": f"ingest {ingest_s:.1f}s (not counted); hash {rep.seconds['hash']:.1f}s search {rep.seconds['search']:.1f}s"}


def run_imagededup(corpus: Path) -> dict:
    from imagededup.methods import PHash

    t = time.perf_counter()
    dup = PHash(verbose=False).find_duplicates(image_dir=str(corpus))
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "pairs": [(a, b) for a, bs in dup.items() for b in bs]}


def run_difpy(corpus: Path) -> dict:
    import difPy

    t = time.perf_counter()
    dif = difPy.build(str(corpus), show_progress=False)
    search = difPy.search(dif, similarity="similar", show_progress=False)
    seconds = time.perf_counter() - t
    pairs = []

    def add(key, matches):  # difPy 4: {path: [[match path, mse], ...]} (nested per folder with in_folder)
        for m in matches:
            pairs.append((Path(str(key)).name, Path(str(m[0] if isinstance(m, (list, tuple)) else m)).name))

    for key, val in search.result.items():
        if isinstance(val, dict):
            for k2, v2 in val.items():
                add(k2, v2)
        else:
            add(key, val)
    return {"seconds": seconds, "pairs": pairs}


# --- scoring -------------------------------------------------------------------------------


def score(truth: dict, pairs: list) -> dict:
    files = truth["files"]
    joined = DisjointSet(files)
    for a, b in pairs:
        if a in joined and b in joined:
            joined.merge(a, b)
    # recall: a planted variant is found when it shares a cluster with its group's original
    original = {v["group"]: f for f, v in files.items() if not v["transform"] and f.startswith("p")}
    found, total = Counter(), Counter()
    for f, v in files.items():
        if v["transform"]:
            total[v["transform"]] += 1
            found[v["transform"]] += joined.connected(f, original[v["group"]])
    # precision: of the image pairs placed in one cluster, how many are truly the same photo
    tp = fp = 0
    for members in joined.subsets():
        if len(members) < 2:
            continue
        by_group = Counter(files[m]["group"] for m in members)
        same = sum(c * (c - 1) // 2 for c in by_group.values())
        all_pairs = len(members) * (len(members) - 1) // 2
        tp += same
        fp += all_pairs - same
    recall = {t: found[t] / total[t] for t in sorted(total)}
    return {
        "recall": recall,
        "recall_all": sum(found.values()) / max(1, sum(total.values())),
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "false_pairs": fp,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=2400, help="corpus size, planted variants included (default: 2400)")
    p.add_argument("--planted", type=int, default=450, help="planted near-duplicate variants (default: 450)")
    p.add_argument("--corpus", type=Path, default=Path(tempfile.gettempdir()) / "curate-dedupe-bench", help="where the corpus is built (reused when it matches)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--tools", default="ours,imagededup,difpy")
    p.add_argument("--other-python", default=None, help="python of a virtualenv with imagededup and difPy installed")
    p.add_argument("--tool", default=None, help=argparse.SUPPRESS)  # internal: run one foreign tool, print JSON
    args = p.parse_args(argv)
    corpus = args.corpus / f"{args.images}-{args.planted}"
    if args.tool:
        res = {"imagededup": run_imagededup, "difpy": run_difpy}[args.tool](corpus / "images")
        print("RESULT " + json.dumps(res))
        return
    t = time.perf_counter()
    truth = build_corpus(corpus / "images", args.images, args.planted, args.workers)
    print(f"corpus: {len(truth['files'])} files in {corpus / 'images'} ({time.perf_counter() - t:.0f}s to build or load)")
    results = {}
    for tool in args.tools.split(","):
        if tool == "ours":
            with tempfile.TemporaryDirectory() as tmp:
                results["mpox-curate"] = run_ours(corpus / "images", Path(tmp), args.workers)
            continue
        if not args.other_python:
            print(f"{tool}: skipped (pass --other-python with imagededup and difPy installed)")
            continue
        proc = subprocess.run([args.other_python, __file__, "--tool", tool, "--images", str(args.images), "--planted", str(args.planted), "--corpus", str(args.corpus)], capture_output=True, text=True, cwd=ROOT)
        line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            print(f"{tool}: failed\n{proc.stderr[-2000:]}")
            continue
        results[tool] = json.loads(line[7:])
    transforms = sorted({v["transform"] for v in truth["files"].values() if v["transform"]})
    header = ["tool", "seconds", "precision", "recall"] + transforms
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, res in results.items():
        sc = score(truth, res["pairs"])
        row = [name, f"{res['seconds']:.1f}", f"{sc['precision']:.3f}", f"{sc['recall_all']:.3f}"] + [f"{sc['recall'][t]:.2f}" for t in transforms]
        print("| " + " | ".join(row) + " |")
    for name, res in results.items():
        if res.get("extra"):
            print(f"{name}: {res['extra']}")


if __name__ == "__main__":
    main()
