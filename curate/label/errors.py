"""Errors of the label stage and the Label Studio connection (one line each, shown as-is)."""
from curate.errors import CurateError


class StudioError(CurateError):
    """Label Studio is unreachable, refused the credentials, or answered unexpectedly."""


class LabelError(CurateError):
    """A labeling round or annotation does not fit the catalogue or the label config."""
