"""train's errors, importable without torch so that refusals come before any heavy import."""

from __future__ import annotations

from curate import errors
from curate.errors import CurateError


class TrainError(CurateError):
    """A training input, option, or run folder is wrong; the message says what to do."""


class WeightsError(TrainError, errors.WeightsError):
    """Pretrained weights are unavailable or do not fit the backbone (curate.lite0 raises the base class)."""


def require_complete(run, info: dict, what: str = "") -> None:
    """A run killed or stopped half-way (run.json's status is not "complete") is refused by every reader of a
    finished run: its metrics, if any, are a fold's or an epoch's, not the run's."""
    if info.get("status") != "complete":
        raise TrainError(f"run {run} did not finish; re-run `train run --resume` first{what}")
