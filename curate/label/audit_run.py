"""Read a `train run` folder as data: its out-of-fold probabilities and the dataset version it was trained on.

curate never imports train (train reads curate's export, never the reverse), so the few names needed
are written here. They follow train's writers: `train/triage.py` `_write_table` (oof_predictions.csv:
set, image_id, file, label, is_positive, fold, n_models, p_<class>..., p_positive, p_positive_calibrated,
triage) and `train/recipe.py` (run.json: "dataset" {"ref", "name", "version", "checksum", "task", "classes"}).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from curate.dataset import DatasetVersion
from curate.errors import DatasetError, LabelError

OOF_FILE = "oof_predictions.csv"  # train/triage.py
RUN_FILE = "run.json"  # train/recipe.py
SET_COLUMN, IMAGE_COLUMN, PROB_PREFIX = "set", "image_id", "p_"
ROI_SUFFIX = "_roi"  # test_roi: the same test image cut to its lesion box (train/data.py)


@dataclass
class RunPredictions:
    path: Path
    dataset: str  # NAME@VERSION the run was trained on
    checksum: str  # that version's checksum (sha256 of SHA256SUMS)
    task: str
    classes: list[str]
    probs: dict[int, dict[str, float]]  # image id -> class -> probability (out-of-fold for train images)
    sets: dict[int, str]  # image id -> train | test | external


def read_run(run: Path) -> RunPredictions:
    """The run's dataset and per-image probabilities; one-line errors naming the file."""
    run = Path(run)
    if not (run / RUN_FILE).is_file():
        raise LabelError(f"{run} is not a train run folder ({RUN_FILE} missing)")
    try:
        ds = json.loads((run / RUN_FILE).read_text(encoding="utf-8"))["dataset"]
        name, version, checksum, classes = ds["name"], ds["version"], ds["checksum"], list(ds["classes"])
        task = ds.get("task", "")
    except (ValueError, KeyError, TypeError) as exc:
        raise LabelError(f"{run / RUN_FILE}: no readable dataset record ({type(exc).__name__}: {exc})") from None
    path = run / OOF_FILE
    if not path.is_file():
        raise LabelError(
            f"{run} has no out-of-fold predictions ({OOF_FILE}); re-run `train run` with this version "
            "of train, which writes them"
        )
    try:
        probs, sets = _read_oof(path, classes)
    except UnicodeDecodeError as exc:  # before: "unexpected UnicodeDecodeError", naming no file
        raise LabelError(f"{path} is not UTF-8 text (byte {exc.start}): write it again with `train run`") from None
    except csv.Error as exc:
        raise LabelError(f"{path} is not valid CSV ({exc})") from None
    if not probs:
        raise LabelError(f"{path}: no predictions (only its header): train again, or name another --run")
    return RunPredictions(run, f"{name}@{version}", checksum, task, classes, probs, sets)


def _read_oof(path: Path, classes: list[str]) -> tuple[dict[int, dict[str, float]], dict[int, str]]:
    """`read_run`'s probabilities and sets, one line each; LabelError naming the line of a row it cannot take."""
    probs: dict[int, dict[str, float]] = {}
    sets: dict[int, str] = {}
    seen: dict[tuple[str, int], int] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [
            c
            for c in (SET_COLUMN, IMAGE_COLUMN, *[PROB_PREFIX + k for k in classes])
            if c not in (reader.fieldnames or [])
        ]
        if missing:
            raise LabelError(f"{path}: column {missing[0]!r} is missing")
        for n, row in enumerate(reader, 2):
            try:
                image_id = int(row[IMAGE_COLUMN])
            except (TypeError, ValueError):
                raise LabelError(
                    f"{path} line {n}: image_id {row[IMAGE_COLUMN]!r} is not a catalogue image id "
                    "(was the run trained on an export of this workspace?)"
                ) from None
            key = (row[SET_COLUMN], image_id)  # an image is in one set, and again in its crop's (test_roi)
            if key in seen:  # before: the last row won, silently
                raise LabelError(f"{path} line {n}: image {image_id} again in {key[0]} (first on line {seen[key]})")
            seen[key] = n
            try:
                p = {k: float(row[PROB_PREFIX + k]) for k in classes}
            except (TypeError, ValueError):
                raise LabelError(f"{path} line {n}: a probability is not a number") from None
            if not all(0.0 <= x <= 1.0 for x in p.values()):  # NaN too: it fails every comparison
                # before: a NaN scrambled the ranking (it sorts anywhere) and put the wrong images in the round
                raise LabelError(f"{path} line {n}: a probability is not between 0 and 1")
            if _whole_picture(row[SET_COLUMN], sets.get(image_id), path, n, image_id):
                probs[image_id], sets[image_id] = p, row[SET_COLUMN]
    return probs, sets


def _whole_picture(this: str, before: str | None, path: Path, n: int, image_id: int) -> bool:
    """Whether line `n`'s prediction (set `this`) is the one the audit keeps for its image, which had one from set
    `before` (None: none yet). The whole picture's prediction is kept over its lesion crop's (`test_roi`), whichever
    line comes first: the raters labelled the whole picture, and before, the crop's line (written after the test
    line) replaced it. An image in two sets of whole pictures (train and test) is not a run of one version."""
    if before is None or (before.endswith(ROI_SUFFIX) and not this.endswith(ROI_SUFFIX)):
        return True
    if this.endswith(ROI_SUFFIX) or before.endswith(ROI_SUFFIX):
        return False
    raise LabelError(
        f"{path} line {n}: image {image_id} is in {this} and in {before}: a run predicts each image in one set"
    )


def newest_export(exports: Path) -> str | None:
    """NAME@VERSION of the most recently written version under `exports/` (by dataset.json created_at)."""
    best: tuple[str, str] | None = None
    for meta in exports.glob("*/*/dataset.json"):
        try:
            d = json.loads(meta.read_text(encoding="utf-8"))
            key = (str(d.get("created_at") or ""), f"{d['name']}@{d['version']}")
        except (ValueError, KeyError, TypeError):
            continue
        best = key if best is None or key > best else best
    return best[1] if best else None


def matching_version(run: RunPredictions, workspace: Path, exports: Path, dataset: str | None) -> DatasetVersion:
    """The workspace's dataset version the run was trained on; refused when the run was made on another one."""
    want = dataset or newest_export(exports)
    if want is None:
        raise LabelError("this workspace has no exported dataset version to audit against (curate export)")
    if run.dataset != want:
        why = "" if dataset else " (the workspace's newest export; choose another with --dataset)"
        raise LabelError(f"run {run.path} was trained on {run.dataset}, not {want}{why}")
    try:
        version = DatasetVersion.open(want, workspace)
    except DatasetError as exc:
        raise LabelError(
            f"run {run.path} was trained on {run.dataset}, which this workspace does not hold ({exc})"
        ) from None
    if version.checksum != run.checksum:
        raise LabelError(
            f"run {run.path} was trained on another {run.dataset} (checksum {run.checksum[:12]}, "
            f"this workspace's is {version.checksum[:12]})"
        )
    try:
        held = set(version.catalogue_ids())
    except DatasetError as exc:
        raise LabelError(str(exc)) from None
    if stray := sorted(set(run.probs) - held):  # before: listed as "not ranked (consensus is now missing)"
        raise LabelError(
            f"{run.path / OOF_FILE} predicts image(s) {', '.join(map(str, stray[:5]))} that {run.dataset} does not "
            "hold: the file was edited or comes from another run"
        )
    return version
