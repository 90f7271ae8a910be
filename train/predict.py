"""Triage from the command line: P(mpox) from the mean of a run's fold models, calibrated, the
decision at the run's operating point (or at an explicit threshold), and a Grad-CAM overlay per image.
The decision is `train serve`'s: "refer" or "routine" for a binary run (`predicted_class` names the class),
the most likely class for a diagnosis run.

One unreadable input (a folder, a named pipe, a text file, a truncated JPEG) is an entry with an
`error` and no prediction; the other inputs are still triaged. Overlays are named by the input's
position only (`000-gradcam.png`): a file name may hold a patient's name and the run folder is shared.
Each call writes into a folder of its own (`<run>/predict/001/`, `002/`, …; `--out` must be a folder without
overlays), so a second batch never overwrites the first's pictures while the first's JSON still names them.
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

import numpy as np
from PIL import Image

from curate.dataset import refuse_sealed
from curate.errors import ServeError
from curate.numbers import whole_number
from curate.regular import NotRegular, open_regular
from train.calibration import applied, unfit
from train.config import RANGES, check_range
from train.ensemble import Ensemble
from train.errors import TrainError
from train.gradcam import overlay
from train.metrics import predicted_classes
from train.outputs import save_image
from train.photos import Limits, decode_sized, for_overlay, low_resolution

MAX_FILE_BYTES = 100_000_000  # `curate ingest`'s bound on an original (curate.intake.limits), copied likewise
# what ingest takes, Pillow's own decompression-bomb bound (~89 MP): a 48 MP phone photo is one (before: serve's
# 40 MP default refused it, and predict has no --max-megapixels)
LIMITS = Limits(MAX_FILE_BYTES, Image.MAX_IMAGE_PIXELS)


OVERLAY_SIDE = 1024  # px, the Grad-CAM overlay's longer side at most (`train serve` sends 512)


def predict(
    run: Path, images: list[Path], threshold: float | None = None, out_dir: Path | None = None, gradcam: bool = True
) -> list[dict]:
    """Per image: class probabilities, P(positive) before and after calibration, and the decision;
    or, for an input that cannot be read, {"image", "error"}. With `gradcam`, an overlay per image at most
    `OVERLAY_SIDE` px (drawn on a 48 MP photo at full size it took a minute and 4 GB, and wrote 60 MB).

    Without `threshold` the decision is the run's operating point on calibrated P(positive)
    (chosen on out-of-fold predictions for the run's target sensitivity); with it, the decision is
    `P(positive) >= threshold` on the uncalibrated probability, as the Table-2 metrics use.
    A picture whose shorter side is below `train.photos.LOW_RES_SIDE` is still decided, and flagged (`low_resolution`).
    """
    if threshold is not None:
        check_range("--threshold", threshold, *RANGES["threshold"][:2])
    run = Path(run)
    if out_dir:
        refuse_sealed(Path(out_dir), "--out")
    out_dir = _batch_folder(Path(out_dir)) if out_dir and gradcam else None  # no overlays: no folder to make
    model = Ensemble.load(run)
    numbered = out_dir is None and gradcam
    out_dir = out_dir or (_next_batch(run / "predict") if gradcam else None)
    results = []
    for n, path in enumerate(images):
        path = Path(path)
        try:
            # camera photos are triaged upright, as exported training images are (EXIF orientation applied), from
            # the pixels `serve` decodes (a JPEG at reduced scale): before, full-size pixels gave another P(mpox)
            # than the server for the same JPEG (0.4964 against 0.4972). The overlay is drawn on the photo shrunk.
            data = read_photo(path)
            img, size = decode_sized(data, LIMITS, model.preset.size)
            shown = None
            if gradcam:  # a copy: `img` is what the model sees
                shown = for_overlay(data, img, size, LIMITS, OVERLAY_SIDE)
        except TrainError as exc:
            results.append({"image": str(path), "error": str(exc)})
            continue
        except ServeError as exc:
            results.append({"image": str(path), "error": f"cannot read image {path}: {exc}"})
            continue
        t = model.triage([img], cam=gradcam)[0]
        decision, predicted = t.decision, t.predicted_class  # refer/routine and the class, as `train serve` says
        if model.positive and threshold is not None:
            row = np.array([[t.probabilities[c] for c in model.classes]])
            predicted = model.classes[int(predicted_classes(row, model.classes.index(model.positive), threshold)[0])]
            decision = "refer" if predicted == model.positive else "routine"
            used = threshold
        elif model.positive:
            used = model.operating_threshold if model.operating_threshold is not None else model.threshold
        else:
            used = None
        png = out_dir / f"{n:03d}-gradcam.png" if shown else None  # the position only: never the input's name
        if png:
            save_image(overlay(shown, t.cam), png)
        low = low_resolution(f"image {path}", size, model.preset.size)
        results.append(
            {
                "image": str(path),
                "probabilities": {c: round(v, 6) for c, v in t.probabilities.items()},
                "positive_class": model.positive,
                "p_positive": round(t.p_positive, 6) if t.p_positive is not None else None,
                "p_calibrated": round(t.p_calibrated, 6) if t.p_calibrated is not None else None,
                # the names `train serve`'s answer has too: its `p_positive` is the calibrated one
                "p_uncalibrated": round(t.p_positive, 6) if t.p_positive is not None else None,
                "threshold": used,
                "calibrated": threshold is None and applied(model.calibration),
                "decision": decision,
                "predicted_class": predicted,
                "gradcam": str(png) if png else None,
                "size": list(size),
                "low_resolution": low is not None,
                "warning": low,
                "model_warning": unfit(model.calibration),  # the run's, the same for every photo
            }
        )
    if numbered and not any(r.get("gradcam") for r in results):  # every input refused: no empty numbered folder
        with suppress(OSError):
            out_dir.rmdir()
    return results


def _batch_folder(out: Path) -> Path:
    """`--out`: created if missing; refused, before the model loads, when an earlier batch's overlays are in it."""
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out} is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        earlier = next(out.glob("*-gradcam.png"), None)
    except OSError as exc:
        raise TrainError(f"cannot use --out {out} ({exc.strerror or type(exc).__name__})") from None
    if earlier is not None:
        raise TrainError(
            f"--out {out} already holds Grad-CAM overlays from an earlier predict ({earlier.name}): name an empty "
            "folder, or leave --out out for a new numbered folder under <run>/predict"
        )
    return out


def _next_batch(parent: Path) -> Path:
    """The next numbered folder under `parent` (001, 002, …), made with exclusive `mkdir`: two predicts at once
    never share one."""
    parent.mkdir(parents=True, exist_ok=True)
    taken = [k for p in parent.iterdir() if (k := whole_number(p.name)) is not None]
    n = max(taken, default=0) + 1
    while True:
        try:
            (parent / f"{n:03d}").mkdir()
            return parent / f"{n:03d}"
        except FileExistsError:
            n += 1


def read_photo(path: Path) -> bytes:
    """A regular file's bytes (`curate.regular`: a named pipe would block the read forever), or a TrainError
    naming the file."""
    try:
        with open_regular(path) as (fh, st):
            if st.st_size > MAX_FILE_BYTES:  # a sparse or mistaken huge file is refused by its size, not read
                raise TrainError(
                    f"cannot read image {path}: {st.st_size / 1e6:.0f} MB is over the "
                    f"{MAX_FILE_BYTES / 1e6:.0f} MB a photo may have"
                )
            return fh.read(MAX_FILE_BYTES + 1)
    except NotRegular as exc:
        raise TrainError(f"cannot read image {path}: it is {exc.kind}, not a file") from None
    except OSError as exc:
        raise TrainError(f"cannot read image {path} ({exc.strerror or type(exc).__name__})") from None
