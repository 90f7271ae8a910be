"""Scale of the second proposal (shared local features, `curate.dedupe.local`): time, peak memory and
planted copies found, at catalogue sizes no photo corpus here reaches.

    python bench/local_scale.py [--pictures 10000 100000] [--float-lists] [--new 0.01] [--json]

Corpus: `base` smoothed-noise pictures at `verify.COARSE` px (photo-like blobs at three scales), 1 % of
them with a planted copy (cropped to 87 %, turned 10 degrees, noise), their SIFT descriptors taken as
`curate dedupe` takes them (`verify.features`) and kept under `--corpus` (2-3 minutes for 10,000
pictures, once). A catalogue of N pictures is N / base variants of that corpus: in variant r every
descriptor's eight orientation bins are turned by r steps (from the ninth, the 4 x 4 grid mirrored as
well), which keeps SIFT's statistics while no variant's descriptors stay near another's; a planted copy
and its original in one variant are one planted pair. Each size runs in its own process (its memory is
its own); "peak" is that process's peak resident memory, the descriptors themselves included (16 KB a
picture). `--float-lists` adds the same sizes with the float lists used below `local.FAST` (what every
size used before), for the side-by-side. `--new SHARE` times a re-run instead: that share of the pictures
(and half the planted copies) is new, and the proposal as a re-run makes it (only new pictures ask, with
the old questions that find them: `local.ALONE`) is set beside everyone asking, on the same catalogue.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIDE = 160  # `verify.COARSE`, checked in `features`
PLANT_EVERY = 100  # one planted copy for this many pictures


def _picture(seed: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    img = np.zeros((SIDE, SIDE), np.float32)
    for sigma in (2, 5, 12):
        img += cv2.GaussianBlur(rng.standard_normal((SIDE, SIDE)).astype(np.float32), (0, 0), sigma) * sigma
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def _features(job: tuple[int, bool]) -> np.ndarray:
    """The answering descriptors of picture `seed`, or of its planted copy."""
    import cv2

    from curate.dedupe import local, verify

    assert verify.COARSE == SIDE
    cv2.setNumThreads(1)
    seed, copy = job
    img = _picture(seed)
    if copy:
        rng = np.random.default_rng(10**9 + seed)
        turn = cv2.getRotationMatrix2D((SIDE / 2, SIDE / 2), 10, 1.15)
        img = cv2.warpAffine(img, turn, (SIDE, SIDE), borderMode=cv2.BORDER_REFLECT)
        img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    desc = verify.features(img, SIDE).desc
    return np.zeros((0, 128), np.uint8) if desc is None else desc[: local.TOP]


def corpus(base: int, folder: Path) -> list[np.ndarray]:
    """`base` pictures' descriptors, then those of the copies of pictures 0, 100, 200, ... (cached)."""
    path = folder / f"local-scale-v1-{base}.npz"
    if path.exists():
        with np.load(path) as z:
            return [z[f"d{k}"] for k in range(len(z.files))]
    jobs = [(k, False) for k in range(base)] + [(k, True) for k in range(0, base, PLANT_EVERY)]
    t = time.perf_counter()
    with ProcessPoolExecutor() as pool:
        descs = list(pool.map(_features, jobs, chunksize=64))
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"d{k}": d for k, d in enumerate(descs)})
    print(f"corpus: {len(descs)} pictures' descriptors in {time.perf_counter() - t:.0f} s -> {path}", file=sys.stderr)
    return descs


def variant(desc: np.ndarray, r: int) -> np.ndarray:
    """`desc` with every descriptor's orientation bins turned by r steps (from r = 8, its grid mirrored too)."""
    cells = desc.reshape(-1, 4, 4, 8)
    if r >= 8:
        cells = cells[:, ::-1]
    return np.ascontiguousarray(np.roll(cells, r % 8 + (r >= 8), axis=3).reshape(-1, 128))


def measure(pictures: int, base: int, folder: Path, float_lists: bool, new_share: float = 0.0) -> dict:
    import resource

    from curate.dedupe import local

    if float_lists:
        local.FAST = 1 << 62
    descs = corpus(base, folder)
    copies = len(descs) - base
    reps = max(1, round(pictures / base))
    catalogue, planted = {}, set()
    for r in range(reps):
        for k, d in enumerate(descs):
            catalogue[r * len(descs) + k] = variant(d, r) if r else d
        planted |= {(r * len(descs) + c * PLANT_EVERY, r * len(descs) + base + c) for c in range(copies)}
    new = None
    if new_share:
        rng = np.random.default_rng(1)
        copies = sorted(b for _, b in planted)
        new = set(rng.choice(sorted(catalogue), int(new_share * len(catalogue)), replace=False).tolist())
        new |= set(copies[: len(copies) // 2])
        planted = {p for p in planted if new & set(p)}
    before = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    pairs = local.local_pairs(catalogue, new)
    seconds = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_SELF)
    found = {(a, b) for a, b, _ in pairs}
    answering = sum(min(len(d), local.TOP) for d in catalogue.values())
    rerun = {}
    if new is not None:  # the same re-run with everyone asking, as before `local.ALONE`
        alone, local.ALONE = local.ALONE, 0.0
        t = time.perf_counter()
        everyone = {(a, b) for a, b, _ in local.local_pairs(catalogue, new)}
        local.ALONE = alone
        rerun = {
            "new": len(new),
            "everyone_seconds": time.perf_counter() - t,
            "everyone_candidates": len(everyone),
            "everyone_kept": len(everyone & found),
        }
    return rerun | {
        "pictures": len(catalogue),
        "answering": answering,
        "lists": "4-bit codes" if answering >= local.FAST else "float",
        "seconds": seconds,
        "cpu_seconds": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        "peak_mb": after.ru_maxrss / 1024,
        "candidates": len(pairs),
        "planted": len(planted),
        "planted_found": len(planted & found),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pictures", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--base", type=int, default=10_000, help="different pictures whose SIFT is taken (default 10000)")
    ap.add_argument("--float-lists", action="store_true", help="also run each size with the float lists")
    ap.add_argument("--corpus", type=Path, default=Path("/tmp/curate-dedupe-bench"))
    ap.add_argument("--new", type=float, default=0.0, help="time a re-run with this share of the pictures new")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a size, in this process (a worker run)
    ap.add_argument("--floats", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        sizes = (args.one, min(args.base, args.one), args.corpus, args.floats, args.new)
        print("RESULT " + json.dumps(measure(*sizes)))
        return
    corpus(min(args.base, min(args.pictures)), args.corpus)  # built once, before any size is timed
    corpus(args.base, args.corpus)
    rows = []
    for n in args.pictures:
        for floats in [False, True] if args.float_lists else [False]:
            argv = [sys.executable, __file__, "--one", str(n), "--base", str(args.base), "--corpus", str(args.corpus)]
            argv += ["--new", str(args.new)]
            proc = subprocess.run(argv + (["--floats"] if floats else []), capture_output=True, text=True, cwd=ROOT)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                raise SystemExit(f"{n} pictures: the run failed: {proc.stderr.strip().splitlines()[-1:]}")
            rows.append(json.loads(line[7:]))
    if args.json:
        print(json.dumps(rows))
        return
    if args.new:
        print(
            "| pictures | new | re-run: new pictures ask (s) | candidates | everyone asks (s) | candidates | "
            "kept of everyone's | planted copies found |"
        )
        print("|---" * 8 + "|")
        for r in rows:
            print(
                f"| {r['pictures']:,} | {r['new']:,} | {r['seconds']:.1f} | {r['candidates']:,} | "
                f"{r['everyone_seconds']:.1f} | {r['everyone_candidates']:,} | {r['everyone_kept']:,} | "
                f"{r['planted_found']} of {r['planted']} |"
            )
        return
    head = ["pictures", "answering descriptors", "lists", "seconds", "CPU seconds", "peak memory", "candidates"]
    print("| " + " | ".join([*head, "planted found"]) + " |")
    print("|---" * (len(head) + 1) + "|")
    for r in rows:
        print(
            f"| {r['pictures']:,} | {r['answering']:,} | {r['lists']} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | "
            f"{r['peak_mb']:,.0f} MB | {r['candidates']:,} | {r['planted_found']} of {r['planted']} |"
        )


if __name__ == "__main__":
    main()
