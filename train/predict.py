"""Triage from the command line: P(mpox) from the mean of a run's fold models, calibrated, the
decision at the run's operating point (or at an explicit threshold), and a Grad-CAM overlay per image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curate.errors import ServeError
from train.ensemble import Ensemble
from train.errors import TrainError
from train.gradcam import overlay
from train.metrics import predicted_classes
from train.outputs import save_image
from train.photos import Limits, decode


def predict(run: Path, images: list[Path], threshold: float | None = None, out_dir: Path | None = None) -> list[dict]:
    """Per image: class probabilities, P(positive) before and after calibration, and the decision.

    Without `threshold` the decision is the run's operating point on calibrated P(positive)
    (chosen on out-of-fold predictions for the run's target sensitivity); with it, the decision is
    `P(positive) >= threshold` on the uncalibrated probability, as the Table-2 metrics use.
    """
    run = Path(run)
    model = Ensemble.load(run)
    out_dir = Path(out_dir) if out_dir else run / "predict"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for n, path in enumerate(images):
        path = Path(path)
        try:
            # camera photos are triaged upright, as exported training images are (EXIF orientation applied)
            # full size (no JPEG draft, unlike `serve`): the Grad-CAM overlay is saved at the photo's own size
            img = decode(path.read_bytes(), Limits())
        except OSError as exc:
            raise TrainError(f"cannot read image {path.name} ({type(exc).__name__})") from None
        except ServeError as exc:
            raise TrainError(f"cannot read image {path.name}: {exc}") from None
        t = model.triage([img], cam=True)[0]
        if model.positive and threshold is not None:
            row = np.array([[t.probabilities[c] for c in model.classes]])
            decision = model.classes[int(predicted_classes(row, model.classes.index(model.positive), threshold)[0])]
            used = threshold
        elif model.positive:
            decision = t.predicted_class
            used = model.operating_threshold if model.operating_threshold is not None else model.threshold
        else:
            decision, used = t.predicted_class, None
        png = (
            out_dir / f"{n:03d}-{path.stem}-gradcam.png"
        )  # numbered: two IMG_0001.jpg from two folders must not collide
        save_image(overlay(img, t.cam), png)
        results.append(
            {
                "image": str(path),
                "probabilities": {c: round(v, 6) for c, v in t.probabilities.items()},
                "positive_class": model.positive,
                "p_positive": round(t.p_positive, 6) if t.p_positive is not None else None,
                "p_calibrated": round(t.p_calibrated, 6) if t.p_calibrated is not None else None,
                "threshold": used,
                "calibrated": threshold is None and model.calibration is not None,
                "decision": decision,
                "gradcam": str(png),
            }
        )
    return results
