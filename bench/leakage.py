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
variants: hard negatives whose ruler's keypoints agree on one transform. `--collages N` adds N figures of
two to four of the corpus's photos each (`tests/photo_corpus.py`'s `collage`), in test: a photo in train
shown inside a figure in test is a leak, and its recall is a column of its own. Every image's panels,
when it is a collage, are compared as pictures of their own, as the audit does
(`curate.export.leakage.panel_views`). `--closeups N` adds N photos of one lesion on plain skin at a phone's sizes
(`bench/skin_photos.py`'s close-ups), with their leak variants: the smooth photos whose texture the audit
raises (`leakage_match._textured`). `--retouched` gives each photo the variants of `tests/photo_corpus.py`'s
`RETOUCHES` instead (what a journal, an app or a forum does to a photo): the copies dedupe leaves out most
(`bench/dedupe.py --retouched`), for which this audit is the net at export. `--pads` gives each photo three
letterboxed copies instead (2:1, 4:1, 1:3 in white, black or grey), which the export then stretches to its square.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from leakage_corpus import LEAKS, bases, exported, ruled
from photo_corpus import pad

from curate.export import leakage_match
from curate.export.leakage import THRESHOLD, by_image, every_look, read_contents

FIGURE_SIZES = (2, 3, 4)  # photos in each `--collages` figure, in turn


def _padded(aspect: float):
    """A `--pads` variant: the photo letterboxed to `aspect` (width / height), in a colour picked per copy."""
    return lambda im, r: pad(im, str(r.choice(["white", "black", "grey"])), aspect)


PADS = {f"pad {name}": _padded(aspect) for name, aspect in (("2:1", 2.0), ("4:1", 4.0), ("1:3", 1 / 3))}


def build(
    out: Path,
    skin: int,
    photos: bool,
    stamped: int = 0,
    rulers: int = 0,
    collages: int = 0,
    templates: int = 0,
    closeups: int = 0,
    kinds: dict | None = None,
) -> tuple[list[Path], list[tuple[int, str]], np.ndarray]:
    """The corpus; `stamped`: that many more different photos (single lesions on plain skin,
    `tests/photo_corpus.py`'s `closeup`) as one atlas previews them (its `stamp`, the logo), over the five
    folds and test; `rulers`: that many more photos beside one ruler, with their leak variants (real photos
    among them only with `photos` off: the tiles are parts of them); `collages`: that many figures in test,
    each of the next two to four photos, their meta (-1 - figure, "figure:" + the photos' numbers);
    `templates`: that many more different close-ups as one site serves them (`tests/photo_corpus.py`'s
    `banner`, flat and with an emblem, `avatar` and a `vignette`, in turn), over the five folds and test;
    `closeups`: that many more photos of one lesion on plain skin at a phone's sizes
    (`bench/skin_photos.py`'s), with their leak variants. `kinds`: the variants (default: issue 9's `LEAKS`)."""
    kinds = LEAKS if kinds is None else kinds
    rng = np.random.default_rng(0)
    paths, meta, parts = [], [], []
    photos_ = bases(skin, photos)
    first_ruled = len(photos_)
    photos_ += ruled(rulers, real=not photos) if rulers else []
    if closeups:
        from skin_photos import closeups as plain_skin

        photos_ += list(plain_skin(closeups))
    for i, (_, img) in enumerate(photos_):
        for kind in ["original", *kinds]:
            data = exported(img if kind == "original" else kinds[kind](img, rng))
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
            # `ruled` puts `closeup(k)` beside its ruler too: that preview and that photo are one photo
            same = first_ruled + k if k < (2 * rulers) // 3 else len(photos_) + k
            meta.append((same, "stamped"))
            parts.append(k % 6 if k % 6 < 5 else -1)
    if templates:
        from photo_corpus import avatar, banner, closeup, vignette

        served = (lambda im: banner(im, "flat"), lambda im: banner(im, "logo"), avatar, lambda im: vignette(im, 0.7))
        for k in range(templates):
            p = out / f"t{k:03d}-template.jpg"
            p.write_bytes(exported(served[k % len(served)](closeup(9000 + k))))
            paths.append(p)
            meta.append((len(photos_) + stamped + k, "template"))
            parts.append(k % 6 if k % 6 < 5 else -1)
    if collages:
        from photo_corpus import collage

        at = 0
        for k in range(collages):
            held = [(at + t) % len(photos_) for t in range(FIGURE_SIZES[k % len(FIGURE_SIZES)])]
            at += len(held)
            p = out / f"f{k:03d}-figure.jpg"
            p.write_bytes(exported(collage([photos_[i][1] for i in held], k)))
            paths.append(p)
            meta.append((-1 - k, "figure:" + ",".join(map(str, held))))
            parts.append(-1)
    return paths, meta, np.array(parts, np.int64)


def _held(meta: list[tuple[int, str]], i: int) -> set[int]:
    """The photos a figure shows (`build`'s `collages`); none for any other image."""
    kind = meta[i][1]
    return {int(x) for x in kind.removeprefix("figure:").split(",")} if kind.startswith("figure:") else set()


def _true(meta: list[tuple[int, str]], i: int, j: int) -> bool:
    """Whether images i and j show one photo: a photo and its variants, or a figure and a photo in it."""
    return meta[i][0] == meta[j][0] or meta[j][0] in _held(meta, i) or meta[i][0] in _held(meta, j)


def cnn_rows(paths, meta, parts, compared, kinds) -> list[dict]:
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
        for kind in kinds:
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
    ap.add_argument(
        "--workers", type=int, default=0, help="processes, as `curate audit leakage --workers` (0: one per core)"
    )
    ap.add_argument("--rulers", type=int, default=0, help="different photos more, each beside one clinic's ruler")
    ap.add_argument("--collages", type=int, default=0, help="figures of 2-4 of the photos each, in test")
    ap.add_argument(
        "--closeups", type=int, default=0, help="photos more, each of one lesion on plain skin, 224-1,024 px"
    )
    ap.add_argument(
        "--templates",
        type=int,
        default=0,
        help="different photos more, under one site's banner or vignette, or in a round crop (false pairs only)",
    )
    ap.add_argument(
        "--retouched",
        action="store_true",
        help="each photo's variants are what a journal, an app or a forum does to it (`tests/photo_corpus.py`'s "
        "RETOUCHES: greyscale, an app's filter, heavy JPEG, a tight crop ...) instead of issue 9's three leak kinds",
    )
    ap.add_argument(
        "--pads",
        action="store_true",
        help="each photo's variants are padded to another aspect ratio (2:1, 4:1 and 1:3, white, black or grey) "
        "instead of issue 9's three leak kinds: a letterboxed copy the export then stretches to its square",
    )
    args = ap.parse_args(argv)
    if args.retouched:
        from photo_corpus import RETOUCHES as kinds
    elif args.pads:
        kinds = PADS
    else:
        kinds = LEAKS
    args.out.mkdir(parents=True, exist_ok=True)
    mine = ("[0-9][0-9][0-9][0-9]-*.jpg", "s[0-9][0-9][0-9]-stamped.jpg", "f[0-9][0-9][0-9]-figure.jpg")
    mine += ("t[0-9][0-9][0-9]-template.jpg",)
    for old in [p for pattern in mine for p in args.out.glob(pattern)]:
        old.unlink()  # this script's files from a run with other options, nothing else in the folder
    paths, meta, parts = build(
        args.out,
        args.skin,
        not args.no_photos,
        args.stamped,
        args.rulers,
        args.collages,
        args.templates,
        args.closeups,
        kinds,
    )
    t0 = time.perf_counter()
    grays, frames = read_contents([(p, p.name, "bench") for p in paths], args.workers)  # as the audit does
    looks, of, frames, is_panel = every_look(grays, frames)  # as the audit: a collage's panels, a letterbox stretched
    owner = of[is_panel]
    feats = leakage_match.features(looks, workers=args.workers)
    t1 = time.perf_counter()
    matches = by_image(leakage_match.match(feats, parts[of], min_inliers=8, workers=args.workers), of)
    t2 = time.perf_counter()
    at_default = [m for m in matches if m.inliers >= THRESHOLD]
    shared = leakage_match.stamped(at_default, looks, feats, frames, THRESHOLD)  # what the audit leaves out
    t3 = time.perf_counter()
    objects = leakage_match.one_object([m for m in at_default if (m.i, m.j) not in shared], looks, feats, args.workers)
    t4 = time.perf_counter()
    per_fold = np.bincount(parts[parts >= 0])
    compared = int((parts < 0).sum()) * int(per_fold.sum()) + (int(per_fold.sum()) ** 2 - int((per_fold**2).sum())) // 2
    rows = []
    thresholds = [(t, 0) for t in sorted({8, 10, 12, 15, THRESHOLD, 20, 30})] + [(THRESHOLD, 1), (THRESHOLD, 2)]
    for t, left_out in thresholds:  # 1: shared stamps left out; 2: and one object (the audit's way)
        kept = {(m.i, m.j) for m in matches if m.inliers >= t} - (shared if left_out else set())
        kept -= objects if left_out == 2 else set()
        found = {(min(of[i], of[j]), max(of[i], of[j])) for i, j in kept}  # looks -> images
        row = {"threshold": t, "default": t == THRESHOLD and left_out == 2, "left_out": left_out}
        for kind in kinds:
            variants = [k for k, (i, kd) in enumerate(meta) if kd == kind]
            hits = sum(
                (min(k, o), max(k, o)) in found for k in variants for o in [meta.index((meta[k][0], "original"))]
            )
            if variants:  # a corpus of false-pair kinds only (`--no-photos --skin 0 --stamped N`) has none
                row[kind] = round(hits / len(variants), 3)
        if args.collages:  # each figure with the originals of the photos it shows
            held = [(k, meta.index((i, "original"))) for k in range(len(meta)) for i in sorted(_held(meta, k))]
            row["figure"] = round(sum((min(k, o), max(k, o)) in found for k, o in held) / len(held), 3)
        fp = sum(1 for i, j in found if not _true(meta, i, j))
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
        rows += cnn_rows(paths, meta, parts, compared, kinds)
    if args.json:
        print(json.dumps({"rows": rows, "timing": timing}, indent=2))
        return
    photos_n = sum(kind == "original" for _, kind in meta)
    print(
        f"{n} images ({photos_n} photos + {len(kinds)} leak variants each, {args.rulers} of them beside one ruler, "
        f"{args.closeups} close-ups on plain skin, "
        f"{args.stamped} stamped previews, {args.templates} in one site's template, {args.collages} figures), "
        f"{compared:,} compared pairs; "
        f"{len(owner)} panels of {len(set(owner))} collages and {len(looks) - n - len(owner)} letterboxes stretched "
        "back looked at on their own"
    )
    columns = list(kinds) + (["figure"] if args.collages else [])
    print("| method, threshold | " + " | ".join(f"recall {k}" for k in columns) + " | false pairs | false-pair rate |")
    print("|---|" + "---|" * (len(columns) + 2))
    for r in rows:
        mark = ["", ", shared stamps left out", ", shared stamps and one object left out"][r.get("left_out", 0)]
        mark = (" (default)" if r["default"] else "") + mark
        print(
            f"| {r.get('method', 'ORB + RANSAC, min inliers')} {r['threshold']}{mark} | "
            + " | ".join(f"{r[k]:.3f}" if k in r else "" for k in columns)
            + f" | {r['false_pairs']} | {r['false_rate']:.2e} |"
        )
    print(
        f"time per 1,000 images: features {timing['features_s_per_1000']} s, index + verification "
        f"{timing['search_verify_s_per_1000']} s, shared stamps {timing['stamps_s_per_1000']} s, one object "
        f"{timing['one_object_s_per_1000']} s, total {timing['total_s_per_1000']} s"
    )


if __name__ == "__main__":
    main()
