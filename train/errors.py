"""train's errors, importable without torch so that refusals come before any heavy import."""
from __future__ import annotations

from curate.errors import CurateError


class TrainError(CurateError):
    """A training input, option, or run folder is wrong; the message says what to do."""


class WeightsError(TrainError):
    """Pretrained weights are unavailable or do not fit the backbone."""
