"""Benchmark of the leakage audit: recall on issue 9's three leak kinds, false positives among different
photos that look alike, and time per 1,000 images.

    python bench/leakage.py [--skin 30] [--json]

Corpus (tests/leakage_corpus.py): disjoint tiles of scikit-image's photos and synthetic skin close-ups
with a look-alike sibling each, all in train (spread over five folds, so every pair of different photos
is compared); each photo's three leak variants go to test. Every image goes through what `curate export`
writes (stretched to 320×320 JPEG). Recall = share of variants paired with their own photo; false
positives = pairs of different photos (or a variant and another photo) reported, out of all compared
pairs, at each inlier threshold. `--cnn` adds the alternative that was considered first: EfficientNet-Lite0
ImageNet pooled features (the `train` backbone and preprocessing), border cut, mirror TTA, cosine; its
recall is shown at the lowest threshold that reports no false pair, and at 0.90. `--rulers N` adds N
different photos each beside one clinic's ruler (`tests/leakage_corpus.py`'s `ruled`), with their leak
variants: hard negatives whose ruler's keypoints agree on one transform.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from leakage_corpus import LEAKS, bases, exported, ruled

from curate.export import leakage_match
from curate.export.leakage import THRESHOLD, gray_and_frame


def build(
    out: Path, skin: int, photos: bool, stamped: int = 0, rulers: int = 0
) -> tuple[list[Path], list[tuple[int, str]], np.ndarray]:
    """The corpus; `stamped`: that many more different photos (single lesions on plain skin,
    `tests/photo_corpus.py`'s `closeup`) as one atlas previews them (its `stamp`, the logo), over the five
    folds and test; `rulers`: that many more photos beside one ruler, with their leak variants (real photos
    among them only with `photos` off: the tiles are parts of them)."""
    rng = np.random.default_rng(0)
    paths, meta, parts = [], [], []
    photos_ = bases(skin, photos) + (ruled(rulers, real=not photos) if rulers else [])
    for i, (_, img) in enumerate(photos_):
        for kind in ["original", *LEAKS]:
            data = exported(img if kind == "original" else LEAKS[kind](img, rng))
            p = out / f"{i:04d}-{kind}.jpg"
            p.write_bytes(data)
            paths.append(p)
            meta.append((i, kind))
            parts.append(i % 5 if kind == "original" else -1)
    if stamped:
        from photo_corpus import closeup, stamp

        for k, img in enumerate(closeup(k) for k in range(stamped)):
            p = out / f"s{k:03d}-stamped.jpg"
            p.write_bytes(exported(stamp(img, "logo")))
            paths.append(p)
            meta.append((len(photos_) + k, "stamped"))
            parts.append(k % 6 if k % 6 < 5 else -1)
    return paths, meta, np.array(parts, np.int64)


def cnn_rows(paths, meta, parts, compared) -> list[dict]:
    """Global CNN cosine (mirror TTA, border cut) on the same pairs; see the module docstring."""
    import torch
    from PIL import Image

    from curate.export.leakage import content_box
    from train.models import build_backbone, get_arch
    from train.presets import EvalPreset

    arch = get_arch("efficientnet_lite0")
    preset = EvalPreset(224, arch.mean, arch.std)
    model, _, _ = build_backbone(arch.name, "imagenet")
    model.eval()
    feats = []
    with torch.no_grad():
        for start in range(0, len(paths), 32):
            crops = []
            for p in paths[start : start + 32]:
                img = Image.open(p).convert("RGB")
                crops.append(preset(img.crop(content_box(np.asarray(img)))))
            x = torch.stack(crops)
            feats.append(model(torch.cat([x, torch.flip(x, dims=[3])])).numpy().reshape(2, len(crops), -1))
    f = np.concatenate(feats, axis=1)
    f /= np.linalg.norm(f, axis=2, keepdims=True)
    sim = np.maximum(f[0] @ f[0].T, f[0] @ f[1].T)
    sim = np.maximum(sim, sim.T)
    train = parts >= 0
    mask = np.triu(
        (train[:, None] & ~train[None, :])
        | (~train[:, None] & train[None, :])
        | (train[:, None] & train[None, :] & (parts[:, None] != parts[None, :])),
        1,
    )
    base = np.array([i for i, _ in meta])
    same = base[:, None] == base[None, :]
    neg = sim[mask & ~same]
    out = []
    for t in (round(float(neg.max()) + 0.001, 3), 0.9):
        row = {"method": "global CNN cosine", "threshold": t, "default": False}
        for kind in LEAKS:
            variants = [k for k, (i, kd) in enumerate(meta) if kd == kind]
            row[kind] = round(float(np.mean([sim[k, meta.index((meta[k][0], "original"))] >= t for k in variants])), 3)
        row["false_pairs"] = int((neg >= t).sum())
        row["false_rate"] = row["false_pairs"] / compared
        out.append(row)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skin", type=int, default=30, help="synthetic skin photos (each with a sibling)")
    ap.add_argument("--no-photos", action="store_true", help="skip the scikit-image tiles")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench-leakage"))
    ap.add_argument("--cnn", action="store_true", help="also measure global CNN embeddings (needs torch)")
    ap.add_argument(
        "--stamped", type=int, default=0, help="different photos more, under one stock site's logo (false pairs only)"
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rulers", type=int, default=0, help="different photos more, each beside one clinic's ruler")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for old in [*args.out.glob("[0-9][0-9][0-9][0-9]-*.jpg"), *args.out.glob("s[0-9][0-9][0-9]-stamped.jpg")]:
        old.unlink()  # this script's files from a run with other options, nothing else in the folder
    paths, meta, parts = build(args.out, args.skin, not args.no_photos, args.stamped, args.rulers)
    t0 = time.perf_counter()
    grays, frames = map(list, zip(*(gray_and_frame(p, p.name, "bench") for p in paths), strict=True))
    feats = leakage_match.features(grays)
    t1 = time.perf_counter()
    matches = leakage_match.match(feats, parts, min_inliers=8)
    t2 = time.perf_counter()
    at_default = [m for m in matches if m.inliers >= THRESHOLD]
    shared = leakage_match.stamped(at_default, grays, feats, frames, THRESHOLD)  # what the audit leaves out
    t3 = time.perf_counter()
    objects = leakage_match.one_object([m for m in at_default if (m.i, m.j) not in shared], grays, feats)
    t4 = time.perf_counter()
    per_fold = np.bincount(parts[parts >= 0])
    compared = int((parts < 0).sum()) * int(per_fold.sum()) + (int(per_fold.sum()) ** 2 - int((per_fold**2).sum())) // 2
    rows = []
    thresholds = [(t, 0) for t in sorted({8, 10, 12, 15, THRESHOLD, 20, 30})] + [(THRESHOLD, 1), (THRESHOLD, 2)]
    for t, left_out in thresholds:  # 1: shared stamps left out; 2: and one object (the audit's way)
        found = {(m.i, m.j) for m in matches if m.inliers >= t} - (shared if left_out else set())
        found -= objects if left_out == 2 else set()
        row = {"threshold": t, "default": t == THRESHOLD and left_out == 2, "left_out": left_out}
        for kind in LEAKS:
            variants = [k for k, (i, kd) in enumerate(meta) if kd == kind]
            hits = sum(
                (min(k, o), max(k, o)) in found for k in variants for o in [meta.index((meta[k][0], "original"))]
            )
            row[kind] = round(hits / len(variants), 3)
        fp = sum(1 for i, j in found if meta[i][0] != meta[j][0])
        row["false_pairs"] = fp
        row["false_rate"] = fp / compared
        rows.append(row)
    n = len(paths)
    timing = {
        "images": n,
        "compared_pairs": compared,
        "features_s_per_1000": round((t1 - t0) / n * 1000, 1),
        "search_verify_s_per_1000": round((t2 - t1) / n * 1000, 1),
        "stamps_s_per_1000": round((t3 - t2) / n * 1000, 1),
        "one_object_s_per_1000": round((t4 - t3) / n * 1000, 1),
        "total_s_per_1000": round((t4 - t0) / n * 1000, 1),
    }
    if args.cnn:
        rows += cnn_rows(paths, meta, parts, compared)
    if args.json:
        print(json.dumps({"rows": rows, "timing": timing}, indent=2))
        return
    photos_n = sum(kind == "original" for _, kind in meta)
    print(
        f"{n} images ({photos_n} photos + 3 leak variants each, {args.rulers} of them beside one ruler, "
        f"{args.stamped} stamped previews), {compared:,} compared pairs"
    )
    print("| method, threshold | " + " | ".join(f"recall {k}" for k in LEAKS) + " | false pairs | false-pair rate |")
    print("|---|" + "---|" * (len(LEAKS) + 2))
    for r in rows:
        mark = ["", ", shared stamps left out", ", shared stamps and one object left out"][r.get("left_out", 0)]
        mark = (" (default)" if r["default"] else "") + mark
        print(
            f"| {r.get('method', 'ORB + RANSAC, min inliers')} {r['threshold']}{mark} | "
            + " | ".join(f"{r[k]:.3f}" for k in LEAKS)
            + f" | {r['false_pairs']} | {r['false_rate']:.2e} |"
        )
    print(
        f"time per 1,000 images: features {timing['features_s_per_1000']} s, index + verification "
        f"{timing['search_verify_s_per_1000']} s, shared stamps {timing['stamps_s_per_1000']} s, one object "
        f"{timing['one_object_s_per_1000']} s, total {timing['total_s_per_1000']} s"
    )


if __name__ == "__main__":
    main()
