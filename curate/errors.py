"""Errors the library raises; the CLI turns each into one red line and exit code 1."""


class CurateError(Exception):
    """Base class: the message is shown to the user as-is, so make it one line."""


class WorkspaceError(CurateError):
    """The workspace is missing, unreadable, or not writable."""


class ConfigError(CurateError):
    """A command-line value or config field is out of range or malformed."""


class StoreError(CurateError):
    """The image store could not write or read an object."""
