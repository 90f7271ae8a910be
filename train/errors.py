"""train's errors, importable without torch so that refusals come before any heavy import."""

from __future__ import annotations

from curate import errors
from curate.errors import CurateError


class TrainError(CurateError):
    """A training input, option, or run folder is wrong; the message says what to do."""


class WeightsError(TrainError, errors.WeightsError):
    """Pretrained weights are unavailable or do not fit the backbone (curate.lite0 raises the base class)."""
