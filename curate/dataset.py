"""Read one exported dataset version: the ONLY thing `train/` imports from `curate`.

The dataset-version contract
----------------------------
The export stage writes, and this module reads, one folder per version
(``<workspace>/exports/<name>/<version>/``)::

    dataset.json    {"name", "version", "task": "binary"|"diagnosis", "classes": [sorted names],
                     "image_size": [w, h], "resize_policy": "stretch"|"pad"|"center-crop",
                     "seed": int, "folds": int, "external_sources": [...], "parent": null|"x.y.z",
                     "created_at": iso-8601, "diagnoses": [{"slug", "name", "binary": class|null}]
                     (the study's declared list; format_version >= 2),
                     "original_sizes": {image_id: [w, h]} of the oriented original, for rows with a roi_box
                                       (optional; places the box on the exported image), ...more keys allowed}
    manifest.csv    one row per exported image; header, in this order:
                    file,roi_file,sha256,roi_sha256,image_id,label,diagnosis,split,fold,source,licence,
                    consensus_method,n_raters,agreement,roi_box,cluster,has_case_id
                      file      relative path, e.g. "train/mpox/img000123.jpg"
                      roi_file  "roi/train/mpox/img000123.jpg", or "" when the image has no lesion box
                      split     train | test | external
                      fold      0..folds-1 for train rows, "" otherwise
                      label     class folder name (binary task: "mpox" / "non_mpox")
                      diagnosis fine diagnosis slug (a declared one, or "other_diagnosis")
                      roi_box   "x0 y0 x1 y1" in original pixels, or ""
    SHA256SUMS      "<hex>  <relative/path>" (sha256sum format) for every file except itself, sorted by path
    README.md, croissant.json
    audit.json    the leakage audit run at export (curate.export.leakage; absent in older versions)
    train/<class>/*.jpg  test/<class>/*.jpg  external/<class>/*.jpg            (ImageFolder-loadable)
    roi/train/<class>/*.jpg  roi/test/<class>/*.jpg  roi/external/<class>/*.jpg

A version's identity is the sha256 of its SHA256SUMS file (`DatasetVersion.checksum`): two folders
with the same checksum hold the same bytes once `verify()` passes. `open` refuses a row whose files are
not ``<split>/<label>/<name>`` (and ``roi/…``) inside the folder, and a file or image id listed twice;
`verify` refuses a row whose sha256 is not the one SHA256SUMS gives its file.

Example:
    >>> ds = DatasetVersion.open("mpox@1.0.0", workspace="ws")   # or a folder path
    >>> ds.verify()
    >>> train = ds.samples("train", exclude_fold=0); val = ds.samples("train", fold=0)
    >>> roi_test = ds.samples("test", roi=True)
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from curate.errors import DatasetError
from curate.numbers import whole_number

MANIFEST_COLUMNS = [
    "file",
    "roi_file",
    "sha256",
    "roi_sha256",
    "image_id",
    "label",
    "diagnosis",
    "split",
    "fold",
    "source",
    "licence",
    "consensus_method",
    "n_raters",
    "agreement",
    "roi_box",
    "cluster",
    "has_case_id",
]
SPLITS = ("train", "test", "external")
RESIZE_POLICIES = ("stretch", "pad", "center-crop")  # how an export fits an image to image_size (dataset.json)
REQUIRED_META = ("name", "version", "task", "classes")
NAME_MAX = 255  # bytes of one folder name most file systems take
_PART = re.compile(rf"[^/\\@\x00-\x1f\x7f]{{1,{NAME_MAX}}}")  # a version's name or number: one folder name, no "@"


@dataclass(frozen=True)
class Sample:
    """One image of a dataset version, as a training recipe needs it."""

    path: Path
    label: str
    target: int
    image_id: str
    split: str
    fold: int | None
    sha256: str
    cluster: str
    diagnosis: str
    source: str


def sha256_file(path: Path) -> str:
    """Streamed, so a large archive or checkpoint never sits in memory whole."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def split_counts(rows: list[dict[str, str]], key: str = "label") -> dict[str, dict[str, int]]:
    """{split: {value of `key`: images}} from manifest rows: splits in `SPLITS` order (only those with
    images), values sorted. What `curate export` reports and the dataset card's tables show."""
    out: dict[str, Counter] = {}
    for r in rows:
        out.setdefault(r["split"], Counter())[r[key]] += 1
    return {s: dict(sorted(out[s].items())) for s in SPLITS if s in out}


def _short(names: list[str], n: int = 3) -> str:
    more = f" (+{len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


# What a desktop writes into any folder it shows (Finder, Explorer, KDE's Dolphin): never read by `train` (it reads
# the manifest's files), so a version opened in a file manager still verifies. Any other file is "extra".
DESKTOP_LITTER = frozenset({".DS_Store", "Thumbs.db", "ehthumbs.db", "desktop.ini", ".directory"})


def desktop_litter(name: str) -> bool:
    """A file a desktop leaves in a folder it shows: `DESKTOP_LITTER`, or macOS's AppleDouble `._<name>`."""
    return name in DESKTOP_LITTER or name.startswith("._")


class DatasetVersion:
    """An opened dataset-version folder; constructor only stores, `open()` validates."""

    def __init__(self, path: Path, meta: dict[str, Any], rows: list[dict[str, str]], checksum: str):
        self.path = path
        self.meta = meta
        self.rows = rows
        self.checksum = checksum
        self.name: str = meta["name"]
        self.version: str = meta["version"]
        self.task: str = meta["task"]
        self.classes: list[str] = list(meta["classes"])

    def __repr__(self) -> str:
        return f"DatasetVersion({self.name}@{self.version}, {len(self.rows)} images, {self.checksum[:12]})"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def resolve(cls, ref: str | os.PathLike, workspace: str | os.PathLike | None = None) -> Path:
        """A folder path as-is; "name@version" under <workspace>/exports/<name>/<version>."""
        text = str(ref)
        if not text.strip():  # Path("") is the current folder: a blank argument must not audit or train on it
            raise DatasetError(
                f"dataset reference {text!r} is {'blank' if text else 'empty'}: give NAME@VERSION (e.g. mpox@1.0.0) "
                "or a version's folder"
            )
        if "@" in text and not Path(text).exists():
            name, _, version = text.partition("@")
            if not name or not version or "/" in name or "/" in version:
                raise DatasetError(f"dataset reference {text!r} is not NAME@VERSION")
            root = Path(workspace or os.environ.get("CURATE_WORKSPACE") or Path.cwd())
            return root / "exports" / name / version
        return Path(text)

    @classmethod
    def open(cls, ref: str | os.PathLike, workspace: str | os.PathLike | None = None) -> DatasetVersion:
        """Open a version folder (path or NAME@VERSION) and check its shape, not yet its bytes."""
        path = cls.resolve(ref, workspace).resolve()
        if not path.is_dir():
            hint = "" if "@" in str(ref) or Path(ref).is_absolute() else "; a version is NAME@VERSION, e.g. mpox@1.0.0"
            raise DatasetError(f"dataset version not found: {ref} (looked in {path}){hint}")
        for required in ("dataset.json", "manifest.csv", "SHA256SUMS"):
            if not (path / required).is_file():
                raise DatasetError(f"{ref} is not a dataset version: {required} is missing")
        try:
            meta = json.loads((path / "dataset.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{ref}: dataset.json is not valid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise DatasetError(f"{ref}: dataset.json must hold an object")
        missing = [k for k in REQUIRED_META if k not in meta]
        if missing:
            raise DatasetError(f"{ref}: dataset.json lacks {', '.join(missing)}")
        for key in ("name", "version"):  # a folder name each (exports/<name>/<version>) and a reference's parts
            value = meta[key]
            if not (isinstance(value, str) and value.strip() and value not in (".", "..") and _PART.fullmatch(value)):
                raise DatasetError(
                    f"{ref}: dataset.json {key} must be a name without slashes or control characters, got "
                    f"{str(value)[:80]!r}"
                )
        if meta["task"] not in ("binary", "diagnosis"):
            raise DatasetError(f"{ref}: unknown task {meta['task']!r} (expected binary or diagnosis)")
        classes = meta["classes"]
        if not isinstance(classes, list) or len(classes) < 2 or classes != sorted(set(classes)):
            raise DatasetError(f"{ref}: classes must be a sorted list of at least two distinct names")
        if meta["task"] == "binary" and len(classes) != 2:
            raise DatasetError(f"{ref}: dataset.json classes of a binary task must be two, got {len(classes)}")
        folds = meta.get("folds") or 0
        if not isinstance(folds, int) or isinstance(folds, bool) or folds < 0:
            raise DatasetError(f"{ref}: dataset.json folds must be a whole number, got {folds!r}")
        size = meta.get("image_size")
        if size is not None and not (
            isinstance(size, list) and len(size) == 2 and all(_whole(v) and v > 0 for v in size)
        ):
            raise DatasetError(f"{ref}: dataset.json image_size must be [width, height] in pixels, got {size!r}")
        policy = meta.get("resize_policy", "stretch")
        if policy not in RESIZE_POLICIES:  # before: any other value placed the lesion boxes as "stretch"
            raise DatasetError(
                f"{ref}: dataset.json resize_policy must be one of {', '.join(RESIZE_POLICIES)}, "
                f"got {str(policy)[:40]!r}"
            )
        if (bad := _bad_sizes(meta.get("original_sizes"))) is not None:  # before: a ZeroDivisionError after training
            raise DatasetError(f"{ref}: dataset.json {bad}")
        rows = cls._read_manifest(path, ref, classes, folds)
        checksum = hashlib.sha256((path / "SHA256SUMS").read_bytes()).hexdigest()
        return cls(path, meta, rows, checksum)

    @staticmethod
    def _read_manifest(path: Path, ref: Any, classes: list[str], folds: int) -> list[dict[str, str]]:
        """The manifest's rows; a damaged file (not UTF-8, not CSV, rows of the wrong width) is one DatasetError
        naming manifest.csv, never a decoder's traceback."""
        try:
            with open(path / "manifest.csv", newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames != MANIFEST_COLUMNS:
                    raise DatasetError(
                        f"{ref}: manifest.csv header is not the contract's ({', '.join(MANIFEST_COLUMNS[:4])}, …)"
                    )
                rows = list(reader)
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"{ref}: manifest.csv is not UTF-8 text (byte {exc.start}): the file is damaged: "
                "restore the version from a copy"
            ) from None
        except csv.Error as exc:
            raise DatasetError(f"{ref}: manifest.csv is not valid CSV ({exc}): the file is damaged") from None
        first: dict[tuple[str, str], int] = {}  # (column, value) -> the line it was first seen on
        for i, row in enumerate(rows, start=2):
            where = f"{ref}: manifest.csv line {i}"
            if None in row or None in row.values():  # DictReader: extra fields under None, missing ones None
                raise DatasetError(f"{where}: expected {len(MANIFEST_COLUMNS)} fields, the header's")
            for column in ("file", "image_id"):  # one image once: in two splits it would leak
                if (seen := first.setdefault((column, row[column]), i)) != i:
                    raise DatasetError(f"{where}: {column} {row[column]!r} is listed already on line {seen}")
            if row["split"] not in SPLITS:
                raise DatasetError(f"{where}: unknown split {row['split']!r}")
            if row["label"] not in classes:
                raise DatasetError(f"{where}: label {row['label']!r} is not one of the classes")
            if row["split"] == "train":
                fold = whole_number(row["fold"])
                if fold is None or (folds and fold >= folds):
                    raise DatasetError(
                        f"{where}: train row needs a fold in 0..{max(folds - 1, 0)}, got {row['fold']!r}"
                    )
            elif row["fold"] != "":
                raise DatasetError(f"{where}: only train rows have a fold")
            if row["roi_box"] and _box(row["roi_box"]) is None:  # before: a ValueError once every fold had trained
                raise DatasetError(
                    f"{where}: roi_box must be four numbers x0 y0 x1 y1 (pixels, x0 < x1, y0 < y1), got "
                    f"{row['roi_box'][:40]!r}"
                )
            _check_place(where, row)
        return rows

    def verify(self) -> None:
        """Check every file against SHA256SUMS; raise naming what was changed, missing, or extra."""
        expected: dict[str, str] = {}
        try:
            listed = (self.path / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise DatasetError(f"{self.ref}: SHA256SUMS is not UTF-8 text: the file is damaged") from None
        for line in listed:
            if not line.strip():
                continue
            digest, sep, rel = line.partition("  ")
            if not sep or len(digest) != 64:
                raise DatasetError(f"{self.ref}: SHA256SUMS line is malformed: {line[:80]!r}")
            expected[rel] = digest
        present = {
            p.relative_to(self.path).as_posix()
            for p in self.path.rglob("*")
            if p.is_file() and p.name != "SHA256SUMS" and not desktop_litter(p.name)
        }
        missing = sorted(set(expected) - present)
        extra = sorted(present - set(expected))
        changed = sorted(rel for rel in set(expected) & present if sha256_file(self.path / rel) != expected[rel])
        problems = []
        if changed:
            problems.append(f"{len(changed)} changed ({_short(changed)})")
        if missing:
            problems.append(f"{len(missing)} missing ({_short(missing)})")
        if extra:
            problems.append(f"{len(extra)} extra ({_short(extra)})")
        if problems:
            raise DatasetError(f"{self.ref} fails its checksums: " + "; ".join(problems))
        for i, row in enumerate(self.rows, start=2):  # the manifest's digests are the files' (SHA256SUMS's)
            for column, digest in (("file", "sha256"), ("roi_file", "roi_sha256")):
                if row[column] and expected.get(row[column]) != row[digest]:
                    raise DatasetError(
                        f"{self.ref}: manifest.csv line {i}: {digest} of {row[column]} is not the one SHA256SUMS "
                        "gives its file: the manifest or the file was changed"
                    )

    def samples(
        self,
        split: str | None = None,
        fold: int | None = None,
        roi: bool = False,
        exclude_fold: int | None = None,
    ) -> list[Sample]:
        """Rows as `Sample`s, in manifest order.

        Args:
            split: train, test or external (None: all).
            fold: keep only this fold (train rows).
            roi: return the ROI crop files instead; rows without a lesion box are skipped.
            exclude_fold: keep train rows of every other fold (the training part of a CV split).
        """
        if split is not None and split not in SPLITS:
            raise DatasetError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
        out = []
        for row in self.rows:
            if split is not None and row["split"] != split:
                continue
            row_fold = int(row["fold"]) if row["fold"] != "" else None
            if fold is not None and row_fold != fold:
                continue
            if exclude_fold is not None and (row_fold is None or row_fold == exclude_fold):
                continue
            if roi and not row["roi_file"]:
                continue
            rel, sha = (row["roi_file"], row["roi_sha256"]) if roi else (row["file"], row["sha256"])
            out.append(
                Sample(
                    path=self.path / rel,
                    label=row["label"],
                    target=self.classes.index(row["label"]),
                    image_id=row["image_id"],
                    split=row["split"],
                    fold=row_fold,
                    sha256=sha,
                    cluster=row["cluster"],
                    diagnosis=row["diagnosis"],
                    source=row["source"],
                )
            )
        return out

    def roi_boxes(self) -> dict[str, tuple[float, float, float, float]]:
        """Lesion region per image id as fractions (x0, y0, x1, y1) of the *exported* image.

        `roi_box` is in pixels of the oriented original; dataset.json's `original_sizes` and
        `resize_policy` place it on the exported image. Exports made before `original_sizes` existed
        give an empty dict.
        """
        sizes = self.meta.get("original_sizes") or {}
        sw, sh = (float(v) for v in (self.meta.get("image_size") or [1, 1])[:2])
        policy = self.meta.get("resize_policy", "stretch")
        out = {}
        for row in self.rows:
            size = sizes.get(row["image_id"])
            if not row["roi_box"] or not size:
                continue
            x0, y0, x1, y1 = _box(row["roi_box"])  # type: ignore[misc]  # checked by `open`
            w, h = float(size[0]), float(size[1])
            if policy == "center-crop":
                scale = max(sw / w, sh / h)
                cw, ch = sw / scale, sh / scale
                ox, oy = (w - cw) / 2, (h - ch) / 2
                fx = [min(max((x - ox) / cw, 0.0), 1.0) for x in (x0, x1)]
                fy = [min(max((y - oy) / ch, 0.0), 1.0) for y in (y0, y1)]
            elif policy == "pad":
                ratio = min(sw / w, sh / h)
                iw, ih = max(1, round(w * ratio)), max(1, round(h * ratio))
                ox, oy = (sw - iw) // 2, (sh - ih) // 2
                fx = [(ox + x * iw / w) / sw for x in (x0, x1)]
                fy = [(oy + y * ih / h) / sh for y in (y0, y1)]
            else:  # stretch
                fx, fy = [x0 / w, x1 / w], [y0 / h, y1 / h]
            out[row["image_id"]] = (fx[0], fy[0], fx[1], fy[1])
        return out

    def catalogue_ids(self) -> list[int]:
        """Each row's image_id as the catalogue's number, in row order. `curate export` writes numbers, but `train`
        takes any id (its fixtures name images "img000123"), so only the commands that go back to the catalogue ask:
        a DatasetError naming the line, not int()'s traceback."""
        ids = []
        for i, row in enumerate(self.rows, start=2):
            if (n := whole_number(row["image_id"])) is None:
                raise DatasetError(
                    f"{self.ref}: manifest.csv line {i}: image_id {row['image_id'][:40]!r} is not a catalogue "
                    "image id (was this version exported from this workspace?)"
                )
            ids.append(n)
        return ids

    def groups(self) -> dict[str, str]:
        """Image id -> its near-duplicate cluster (the unit a bootstrap resamples); the id when unclustered."""
        return {row["image_id"]: row["cluster"] or row["image_id"] for row in self.rows}

    def folds(self) -> list[int]:
        """Fold numbers present in the train split, sorted."""
        return sorted({int(r["fold"]) for r in self.rows if r["split"] == "train"})


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _box(text: str) -> tuple[float, float, float, float] | None:
    """A manifest's roi_box ("x0 y0 x1 y1", pixels of the oriented original) as numbers, or None when it is not
    four finite numbers, none negative, spanning a region."""
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        return None
    if len(values) != 4 or not all(math.isfinite(v) and v >= 0 for v in values):
        return None
    x0, y0, x1, y1 = values
    return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None


def _bad_sizes(sizes: Any) -> str | None:
    """What is wrong with dataset.json's original_sizes ({image_id: [w, h]}): not a table, or its first entry
    that is not a size; None when nothing is."""
    if sizes is None:
        return None
    if not isinstance(sizes, dict):
        return "original_sizes must map image ids to [width, height] in pixels"
    for key, size in sizes.items():
        if not (isinstance(size, list) and len(size) == 2 and all(_whole(v) and v > 0 for v in size)):
            return f"original_sizes[{str(key)[:40]!r}] must be [width, height] in pixels"
    return None


def _check_place(where: str, row: dict[str, str]) -> None:
    """A row's files lie where the export puts them, inside the version: `<split>/<label>/<name>` and
    `roi/<split>/<label>/<name>`. A path that leaves the folder (absolute, `..`) is read from anywhere, its
    name carried into a run's outputs; one under another label's folder says two labels for one image."""
    for column, head in (("file", ()), ("roi_file", ("roi",))):
        text = row[column]
        if column == "roi_file" and not text:
            continue
        parts = PurePosixPath(text).parts
        if (
            "\\" in text
            or len(parts) != len(head) + 3
            or parts[:-1] != (*head, row["split"], row["label"])
            or parts[-1] in (".", "..")
        ):
            where_to = "/".join((*head, row["split"], row["label"], "<name>"))
            raise DatasetError(f"{where}: {column} {text!r} is not {where_to} inside the version")


def sealed_around(path: Path) -> Path | None:
    """The dataset version folder `path` is, or lies in (a folder holding dataset.json and SHA256SUMS), or None."""
    here = Path(path).resolve()
    return next(
        (f for f in (here, *here.parents) if (f / "SHA256SUMS").is_file() and (f / "dataset.json").is_file()), None
    )


def refuse_sealed(path: Path, what: str) -> None:
    """A DatasetError when `path` (a file or folder a command is about to write) is inside a dataset version: a
    version is sealed by its checksums, and a file written there made it fail them for every later use
    ("1 extra (train/000-gradcam.png)")."""
    if (version := sealed_around(path)) is not None:
        raise DatasetError(
            f"{what} {path} is inside the dataset version {version}, which is sealed by its checksums: "
            "choose a place outside it"
        )


def own_place(path: Path, exports: Path) -> tuple[str, str] | None:
    """(name, version) when `path` (as given, or resolved) is a workspace's `exports/<name>/<version>` folder
    (`exports`: that workspace's; `exports/<name>` may be a link to another folder), else None. What the catalogue
    recorded is asked of the folder asked for, never of the name and version its dataset.json claims: an edited
    dataset.json would point the check at another version, or none. A place the catalogue has no version for (an
    archive unpacked beside the versions, a backup folder) is a copy, its own."""
    resolved = Path(path).resolve()
    for folder in (Path(path).absolute(), resolved):
        if (Path(exports) / folder.parent.name / folder.name).resolve() == resolved:
            return folder.parent.name, folder.name
    return None


def recorded_fault(ds: DatasetVersion, asked: Path, exports: Path, recorded) -> str | None:
    """The one line for a version opened as `asked` that is not what its workspace (`exports`: its exports folder)
    recorded: its dataset.json names another version than its folder (`misplaced`), or its SHA256SUMS is not the
    checksum `recorded(name, version)` gives (`tampered`); None when it is, or when the catalogue wrote no version
    there (a copy, its own)."""
    place = own_place(asked, exports)
    sealed = recorded(*place) if place is not None else None
    if sealed is None:
        return None
    if place != (ds.name, ds.version):
        return misplaced(ds, place)
    return tampered(ds.ref, ds.path, ds.checksum, sealed) if sealed != ds.checksum else None


def misplaced(ds: DatasetVersion, place: tuple[str, str]) -> str:
    """The one line for a workspace's own version whose dataset.json names another version than its folder."""
    return (
        f"{ds.path}: dataset.json names {ds.ref}, but the folder is {place[0]}@{place[1]}'s: the version was changed "
        f"since `curate export` wrote it; move {ds.path} aside and run the same export again, or restore it from a copy"
    )


def tampered(ref: str, folder: Path, checksum: str, recorded: str) -> str:
    """The one line for a version whose files were changed, and sealed again, since `curate export` wrote it."""
    return (
        f"{ref} was changed since `curate export` wrote it (its SHA256SUMS {checksum[:12]}, recorded "
        f"{recorded[:12]}): a version never changes; move {folder} aside and run the same export again (the "
        "catalogue rebuilds the same files, checked against the recorded checksum), or restore it from a copy"
    )
