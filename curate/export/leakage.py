"""The leakage audit: an independent second look at a dataset version, by a method the dedupe hashes do not use.

Every test and external image is compared with every train image, and every train image with the train
images of the other folds. Evidence of "same photo" is local-feature geometry (`leakage_match`: ORB
keypoints on the content box, a smooth photo's texture raised first, spread over a grid so that a burned-in
watermark's lettering cannot take them all, a faiss binary index, RANSAC verification, mirror images
included), after each image's flat uniform border is cut away (`content_box`), so
a white or coloured frame, a different crop, a mirror image or a burned-in watermark do not hide a copy.
A pair is suspect when at least `THRESHOLD` keypoints agree on one geometric transform; that number is
calibrated by `bench/leakage.py` (bench/README.md). Pairs that only a shared stamp explains (a site's
watermark at one place on different photos: `leakage_match.stamped`) or one object both photos show (a
clinic's ruler beside different lesions, a site's banner across their foot: `leakage_match.one_object`)
are left out of the suspects and listed apart. A collage's panels (several photos in one figure) are
compared as pictures of their own too (`panel_views`).

Deterministic: the same files give the same pairs in the same order (single-threaded ORB, index
training and seeded RANSAC; the pairs do not depend on how many worker processes share the work), so the
card written at export time is byte-identical across runs.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from curate.dataset import DatasetVersion, recorded_fault
from curate.dedupe.decode import panels
from curate.errors import DatasetError, NothingCompared
from curate.export import leakage_match
from curate.parallel import run_parallel, stage_of

THRESHOLD = 20  # RANSAC inliers; calibrated in bench/leakage.py, see bench/README.md
SMALLEST = 256  # px: a smaller picture is enlarged to this longest side first (`gray_and_frame`)
LETTERBOX = 1.5  # a content box this many times wider (or taller) than its image is stretched back (`letterbox_views`)
METHOD = (
    "ORB local features on the content box (mirror included; a smooth photo's texture raised; spread over a grid), "
    "faiss binary index, RANSAC affine verification"
)
BORDER_TOLERANCE = 18  # 0-255; a frame's pixels stay within this of its colour (JPEG ringing included)
BORDER_SHARE = 0.97  # share of a line's pixels that must match the frame colour
BORDER_FLAT = 1.0  # grey levels: a frame's line deviates from its own median by at most this (at the median)
BORDER_SEAM = 3  # lines after a frame's last flat one still its own (JPEG ringing, resampling where it meets the photo)
LUMA = np.float32([0.299, 0.587, 0.114])  # RGB to grey, as Pillow's "L"
RUN_BLOCK = 16  # lines of a side compared with its outer line at a time (`content_box`)
MAX_LISTED = 200  # pairs kept in the result (the strongest); `suspects` counts them all
NOTHING_TO_COMPARE = "none in two parts (test or external beside train, or train images in two folds)"
LEFT_OUT = {  # pairs of different photos that pass verification, left out of the suspects: why, in words
    "stamped": "that share only a stamp (a site's watermark)",
    "one_object": "that match on one object only (a ruler, a colour card, a site's banner or logo both show)",
}


@dataclass(frozen=True)
class Entry:
    """One image to compare: its file relative to the version, split and fold (None outside train)."""

    file: str
    split: str
    fold: int | None

    @property
    def part(self) -> str:
        return f"train/fold {self.fold}" if self.split == "train" else self.split


@dataclass(frozen=True)
class LeakPair:
    """Two images in different parts that show the same photo; `a` is the train image (lower fold)."""

    a: Entry
    b: Entry
    inliers: int  # keypoints agreeing on one transform between the two
    cover: float  # share of the smaller content area those keypoints span
    mirrored: bool  # one image is the mirror image of the other
    panel: bool = False  # one image is a panel of the other, a collage (`panel_views`)
    identical: bool = False  # the two files are the same bytes (`identical_pairs`)

    def seen_as(self) -> str:
        """What the evidence is, in words: "identical files", "mirror image", "panel of a collage"."""
        return ", ".join(
            w
            for w, on in (
                ("identical files", self.identical),
                ("mirror image", self.mirrored),
                ("panel of a collage", self.panel),
            )
            if on
        )

    def as_dict(self) -> dict:
        out = {
            "a": {**asdict(self.a), "part": self.a.part},
            "b": {**asdict(self.b), "part": self.b.part},
            "inliers": self.inliers,
            "cover": self.cover,
            "mirrored": self.mirrored,
        }
        return out | {k: True for k in ("panel", "identical") if getattr(self, k)}


@dataclass
class LeakageAudit:
    status: str  # clean | suspects
    method: str
    threshold: int
    images: int = 0
    compared: int = 0  # image pairs compared
    suspects: int = 0  # pairs at or above the threshold (`pairs` lists the strongest MAX_LISTED)
    pairs: list[LeakPair] = field(default_factory=list)
    seconds: float = 0.0
    stamped: int = 0  # pairs left out of the suspects: only a shared stamp explains them (`leakage_match.stamped`)
    stamped_pairs: list[LeakPair] = field(default_factory=list)  # the strongest MAX_LISTED of them
    one_object: int = 0  # pairs left out: their agreement rests on one object both show (`leakage_match.one_object`)
    one_object_pairs: list[LeakPair] = field(default_factory=list)  # the strongest MAX_LISTED of them

    def as_dict(self, timing: bool = True) -> dict:
        """JSON shape; `timing=False` for what goes into a version (byte-identical across runs)."""
        out = {
            "status": self.status,
            "method": self.method,
            "threshold": self.threshold,
            "images": self.images,
            "compared": self.compared,
            "suspects": self.suspects,
            "pairs": [p.as_dict() for p in self.pairs],
        }
        for kind in LEFT_OUT:
            if getattr(self, kind):
                out[kind] = getattr(self, kind)
                out[f"{kind}_pairs"] = [p.as_dict() for p in getattr(self, f"{kind}_pairs")]
        if timing:
            out["seconds"] = round(self.seconds, 2)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> LeakageAudit:
        """Back from `as_dict` (e.g. a version's audit.json)."""

        def entry(e: dict) -> Entry:
            return Entry(e["file"], e["split"], e["fold"])

        def pair(p: dict) -> LeakPair:
            return LeakPair(
                entry(p["a"]),
                entry(p["b"]),
                p["inliers"],
                p["cover"],
                p["mirrored"],
                p.get("panel", False),
                p.get("identical", False),
            )

        pairs = [pair(p) for p in d.get("pairs", [])]
        return cls(
            d["status"],
            d["method"],
            d["threshold"],
            d.get("images", 0),
            d.get("compared", 0),
            d.get("suspects", 0),
            pairs,
            d.get("seconds", 0.0),
            d.get("stamped", 0),
            [pair(p) for p in d.get("stamped_pairs", [])],
            d.get("one_object", 0),
            [pair(p) for p in d.get("one_object_pairs", [])],
        )

    def summary(self) -> str:
        """One line for the terminal and the card."""
        if not self.compared:  # "no suspect pairs among 0 pairs" read as a pass
            return f"leakage audit: nothing to compare: {self.images} image(s), {NOTHING_TO_COMPARE}"
        verdict = (
            "no suspect pairs" if not self.suspects else f"{self.suspects} suspect pair(s) (same photo in two parts)"
        )
        left_out = "".join(f"; {getattr(self, k)} pair(s) left out {LEFT_OUT[k]}" for k in LEFT_OUT if getattr(self, k))
        return (
            f"leakage audit: {verdict} among {self.compared:,} cross-split and cross-fold pairs of "
            f"{self.images} images (≥ {self.threshold} matching keypoints){left_out}"
        )


def content_box(
    arr: np.ndarray, tolerance: int = BORDER_TOLERANCE, share: float = BORDER_SHARE
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of `arr` (H, W[, 3]) without its uniform border on each side, any colour and width.

    A side's border is the run of lines whose pixels (at least `share` of them) are within `tolerance`
    of that side's outer line's median colour, up to `BORDER_SEAM` lines past the last flat one (the median
    absolute deviation of its grey levels at most `BORDER_FLAT`). Exported white frames' lines: 99 % at most
    1.0; plain skin's beside a lesion: 99 % at least 2.0 (`bench/leakage.py --closeups 50 --rulers 60`,
    bench/README.md). Without the flat line, a close-up's box shrank to its lesion while its framed copy's
    kept the skin, and the two no longer matched. An image that is uniform through and through, or whose
    content would be under 8 pixels, keeps its full box.
    """
    a = arr.astype(np.int16)
    if a.ndim == 2:
        a = a[..., None]
    h, w = a.shape[:2]
    to_grey = LUMA if a.shape[2] == 3 else np.full(a.shape[2], 1 / a.shape[2], np.float32)

    def run(lines: np.ndarray) -> int:
        if not len(lines):
            return 0
        ref = np.median(lines[0], axis=0)
        flat = -1  # the last flat line of the run so far
        for start in range(0, len(lines), RUN_BLOCK):  # most sides have no border: stop at the first block off it
            dev = np.abs(lines[start : start + RUN_BLOCK] - ref).max(axis=-1)
            close = (dev <= tolerance).mean(axis=1) >= share
            end = start + int(np.argmin(close)) if not close.all() else start + len(close)
            grey = lines[start:end] @ to_grey
            spread = np.median(np.abs(grey - np.median(grey, axis=1, keepdims=True)), axis=1)
            flats = np.flatnonzero(spread <= BORDER_FLAT)
            flat = start + int(flats[-1]) if len(flats) else flat
            if end < start + len(close) or flat < start - BORDER_SEAM:
                break
        return 0 if flat < 0 else min(end, flat + 1 + BORDER_SEAM)

    top, bottom = run(a[: h // 2]), run(a[::-1][: h // 2])
    cols = a.transpose(1, 0, 2)
    left, right = run(cols[: w // 2]), run(cols[::-1][: w // 2])
    if h - top - bottom < 8 or w - left - right < 8:
        return 0, 0, w, h
    return left, top, w - right, h - bottom


def gray_content(path: Path, rel: str, ref: str) -> np.ndarray:
    """The image's content box in grayscale (uint8); DatasetError naming the file when it cannot be read."""
    return gray_and_frame(path, rel, ref)[0]


def gray_and_frame(path: Path, rel: str, ref: str) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """`gray_content`, and where the box lies: its (x0, y0) and the image's width and height. A picture under
    `SMALLEST` px is enlarged first: ORB's corners need a patch around them (`leakage_match._orb`), and a 64-px
    export gave two byte-identical copies in train and test no keypoint at all, so the audit said "clean"."""
    try:
        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DatasetError(f"{ref}: cannot read image {rel} ({type(exc).__name__})") from None
    if 0 < max(img.shape[:2]) < SMALLEST:
        f = SMALLEST / max(img.shape[:2])
        size = (max(1, round(img.shape[1] * f)), max(1, round(img.shape[0] * f)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC)
    x0, y0, x1, y1 = content_box(img)
    g = img[y0:y1, x0:x1].astype(np.float32) @ LUMA
    return np.ascontiguousarray(np.clip(g + 0.5, 0, 255).astype(np.uint8)), (x0, y0, img.shape[1], img.shape[0])


def letterbox_views(grays: Sequence[np.ndarray], frames: Sequence[tuple[int, int, int, int]]) -> list[tuple]:
    """(view, image, frame) for each content box `LETTERBOX` times wider or taller than its image: the box stretched
    back to the image's size, as a version exported by the "stretch" policy stretched the photo before it was
    letterboxed, looked at as a picture of its own (the box as it is stays one too: a photo whose dark sky or
    plain skin was cut as a border keeps its match with its crops). A photo padded to 2:1 or 4:1 and then
    stretched to the square kept a half or a quarter of its width, and ORB's corners are not that anisotropic:
    the audit found 57 % of 2:1 copies, none at 4:1, 3 % at 1:3 (`bench/leakage.py --pads`, bench/README.md)."""
    out = []
    for k, (g, (_, _, w, h)) in enumerate(zip(grays, frames, strict=True)):
        shape = (g.shape[1] * h) / (g.shape[0] * w)
        if max(shape, 1 / shape) >= LETTERBOX:
            out.append((cv2.resize(g, (w, h), interpolation=cv2.INTER_LINEAR), k, (0, 0, w, h)))
    return out


def read_contents(
    files: Sequence[tuple[Path, str, str]], workers: int = 0, tick: Callable[[int, int], None] | None = None
) -> tuple[list[np.ndarray], list[tuple[int, int, int, int]]]:
    """`gray_and_frame` of each (path, name, ref), in `workers` processes (0: one per core), in order."""
    grays, frames = [], []

    def read(done: list) -> None:
        for _, (gray, frame) in done:
            grays.append(gray)
            frames.append(frame)

    run_parallel(_read_content, files, read, workers=workers, on_progress=tick)
    return grays, frames


def _read_content(file: tuple[Path, str, str]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """`gray_and_frame` of one (path, name, ref): a worker's task."""
    return gray_and_frame(*file)


def audit_files(
    root: Path,
    entries: Sequence[Entry],
    ref: str,
    threshold: int = THRESHOLD,
    on_progress: Callable[[str, int, int | None], None] | None = None,
    workers: int = 0,
    stretched: bool = True,
) -> LeakageAudit:
    """Audit the images `entries` (paths relative to `root`) in `workers` processes (0: one per core).
    `on_progress(stage, done, total)` hears the three stages: "read images", "features" (images) and
    "compare" (each image's two queries, as it is and mirrored). `stretched`: exported by the "stretch" resize
    policy, whose letterboxed photos are looked at stretched back too (`letterbox_views`)."""
    started = time.perf_counter()
    entries = sorted(entries, key=lambda e: e.file)
    files = [(root / e.file, e.file, ref) for e in entries]
    grays, frames = read_contents(files, workers, stage_of(on_progress, "read images"))
    parts = np.array([-1 if e.fold is None or e.split != "train" else e.fold for e in entries], np.int64)
    looks, of, frames, is_panel = every_look(grays, frames, stretched)
    feats = leakage_match.features(looks, stage_of(on_progress, "features"), workers)
    compare = stage_of(on_progress, "compare")
    matches = by_image(leakage_match.match(feats, parts[of], threshold, compare, workers), of)
    shared = leakage_match.stamped(matches, looks, feats, frames, threshold)
    objects = leakage_match.one_object([m for m in matches if (m.i, m.j) not in shared], looks, feats, workers)

    same_bytes = set(identical_pairs(root, entries, parts))

    def images(m: leakage_match.Match) -> tuple[int, int]:
        return tuple(sorted((int(of[m.i]), int(of[m.j]))))

    def ordered(i: int, j: int) -> tuple[Entry, Entry]:
        """The two images, the train one (of the lower fold) first."""
        return (
            (entries[j], entries[i])
            if (parts[i] < 0 <= parts[j]) or (0 <= parts[j] < parts[i])
            else (entries[i], entries[j])
        )

    def pair(m: leakage_match.Match) -> LeakPair:
        panel = bool(is_panel[m.i] or is_panel[m.j])
        return LeakPair(*ordered(of[m.i], of[m.j]), m.inliers, m.cover, m.mirrored, panel, images(m) in same_bytes)

    explained = {(m.i, m.j) for m in matches if images(m) not in same_bytes} & (shared | objects)  # never a copy
    left_out = [m for m in matches if (m.i, m.j) in shared & explained]
    on_object = [m for m in matches if (m.i, m.j) in objects & explained]
    matches = [m for m in matches if (m.i, m.j) not in explained]
    unseen = sorted(same_bytes - {images(m) for m in matches})  # the same bytes, yet too few keypoints (flat)
    pairs = [LeakPair(*ordered(i, j), 0, 1.0, False, identical=True) for i, j in unseen]
    pairs = (pairs + [pair(m) for m in matches])[:MAX_LISTED]
    per_fold = np.bincount(parts[parts >= 0]) if (parts >= 0).any() else np.zeros(0, np.int64)
    n_train, n_eval = int(per_fold.sum()), int((parts < 0).sum())
    compared = n_eval * n_train + (n_train * n_train - int((per_fold**2).sum())) // 2
    return LeakageAudit(
        "suspects" if matches or unseen else "clean",
        METHOD,
        threshold,
        images=len(entries),
        compared=compared,
        suspects=len(matches) + len(unseen),
        pairs=pairs,
        seconds=time.perf_counter() - started,
        stamped=len(left_out),
        stamped_pairs=[pair(m) for m in left_out[:MAX_LISTED]],
        one_object=len(on_object),
        one_object_pairs=[pair(m) for m in on_object[:MAX_LISTED]],
    )


def identical_pairs(root: Path, entries: Sequence[Entry], parts: np.ndarray) -> list[tuple[int, int]]:
    """(i, j), i < j, of the entries whose files are the same bytes, in two parts that are compared (test or
    external beside train, train in two folds): a leak whatever the pictures hold. Local features alone missed
    such a copy where they find too few keypoints (a flat picture)."""
    by_digest: dict[str, list[int]] = {}
    for k, e in enumerate(entries):
        by_digest.setdefault(hashlib.sha256((root / e.file).read_bytes()).hexdigest(), []).append(k)
    out = []
    for same in by_digest.values():
        for x, i in enumerate(same):
            for j in same[x + 1 :]:
                a, b = parts[i], parts[j]
                if a != b and (a >= 0 or b >= 0):  # never two evaluation images (test beside external)
                    out.append((i, j))
    return out


def panel_views(grays: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """Each collage's panels (several photos in one figure, split by flat gutters: `curate.dedupe.decode.panels`),
    cut out and stretched to their image's size as the export stretches every photo, and the image each is
    of. A figure holding a photo that is also in another part is a leak; compared whole, the photo is a
    quarter of the figure, squeezed, and kept its keypoints in a fifth of such pairs (`bench/leakage.py
    --collages 18`: 0.204, with the panels 0.870; bench/README.md, "A collage")."""
    views, owner = [], []
    for k, g in enumerate(grays):
        for x0, y0, x1, y1 in panels(g):
            views.append(cv2.resize(g[y0:y1, x0:x1], (g.shape[1], g.shape[0]), interpolation=cv2.INTER_LINEAR))
            owner.append(k)
    return views, owner


class Looks(NamedTuple):
    """What is compared (`every_look`): the pictures, the image each is of, each one's frame (`gray_and_frame`),
    and which are a collage's panels."""

    grays: list[np.ndarray]
    of: np.ndarray
    frames: list[tuple[int, int, int, int]]
    panel: np.ndarray


def every_look(grays: list[np.ndarray], frames: list[tuple[int, int, int, int]], stretched: bool = True) -> Looks:
    """Each image, then each panel of a collage (`panel_views`) and, in a version the "stretch" policy made, each
    letterboxed box stretched back (`letterbox_views`), as pictures of their own."""
    views, owner = panel_views(grays)
    frames = frames + [(0, 0, v.shape[1], v.shape[0]) for v in views]
    panel = [False] * len(grays) + [True] * len(views)
    for view, k, frame in letterbox_views(grays, frames[: len(grays)]) if stretched else []:
        views.append(view)
        owner.append(k)
        frames.append(frame)
        panel.append(False)
    return Looks(grays + views, np.array(list(range(len(grays))) + owner, np.int64), frames, np.array(panel))


def by_image(matches: list[leakage_match.Match], of: np.ndarray) -> list[leakage_match.Match]:
    """The matches between two images, strongest first, one a pair of images: a collage's panel stands for
    its image (`panel_views`), and its match replaces the whole figure's when stronger."""
    best: dict[tuple[int, int], leakage_match.Match] = {}
    for m in matches:
        key = tuple(sorted((int(of[m.i]), int(of[m.j]))))
        if key[0] != key[1] and (key not in best or m.inliers > best[key].inliers):
            best[key] = m
    return sorted(best.values(), key=lambda m: (-m.inliers, m.i, m.j))


def entries_of(rows: Sequence[dict[str, str]]) -> list[Entry]:
    """Manifest rows (the export contract's) as audit entries."""
    return [Entry(r["file"], r["split"], int(r["fold"]) if r["fold"] != "" else None) for r in rows]


def audit_version(
    ref: str,
    workspace: Path | None = None,
    threshold: int = THRESHOLD,
    on_progress: Callable[[str, int, int | None], None] | None = None,
    workers: int = 0,
    recorded: Callable[[str, str], str | None] | None = None,
) -> tuple[DatasetVersion, LeakageAudit]:
    """Open NAME@VERSION (or a folder), check its files against SHA256SUMS, and audit it in `workers` processes
    (0: one per core); DatasetError for a missing or damaged version or an unreadable image. Checked first: a
    manifest cut short would otherwise audit fewer images, or none, and pass. `recorded(name, version)`: the
    checksum the catalogue recorded when it wrote that version (None: not one it wrote), asked of the workspace's
    own `exports/<name>/<version>` only (a copy or another workspace's version, audited by path, is its own): a
    version whose files were changed and sealed again (the manifest cut to its header, SHA256SUMS made anew)
    differs from it."""
    ds = DatasetVersion.open(ref, workspace)
    ds.verify()
    if workspace is not None and recorded is not None:  # without a workspace, a copy: its own
        asked = DatasetVersion.resolve(ref, workspace)
        if why := recorded_fault(ds, asked, Path(workspace) / "exports", recorded):
            raise DatasetError(why)
    for row in ds.rows:  # a manifest row SHA256SUMS does not list
        if not (ds.path / row["file"]).is_file():
            raise DatasetError(f"{ds.ref}: image {row['file']} is missing")
    stretched = ds.meta.get("resize_policy", "stretch") == "stretch"
    return ds, audit_files(ds.path, entries_of(ds.rows), ds.ref, threshold, on_progress, workers, stretched)


def require_comparisons(ref: str, audit: LeakageAudit) -> None:
    """NothingCompared (exit 3) when the audit compared no pair: `--strict` must not pass a version it could not
    check."""
    if not audit.compared:
        raise NothingCompared(
            f"{ref}: the leakage audit had nothing to compare: {audit.images} image(s), {NOTHING_TO_COMPARE}"
        )
