"""Errors the library raises; the CLI turns each into one red line and its `exit_code` (1 unless a class says)."""

from collections.abc import Iterator
from contextlib import contextmanager


class CurateError(Exception):
    """Base class: the message is shown to the user as-is, so make it one line."""

    exit_code = 1
    # a fault of the machine met once the command's work had begun (the store's disk, the catalogue's server), not
    # a refusal of its input: the run is recorded "aborted" and `curate status` lists it until it runs to the end
    midway = False


@contextmanager
def midway() -> Iterator[None]:
    """Inside, the command's work has begun: a CurateError raised there (Label Studio gone mid-push) leaves it half
    done, so its run is recorded "aborted" and `curate status` lists it until it runs to the end, not "failed" as a
    refusal of its input. Before, a push whose server went away after its round was made was "failed", unlisted."""
    try:
        yield
    except CurateError as exc:
        exc.midway = True
        raise


class WorkspaceError(CurateError):
    """The workspace is missing, unreadable, or not writable."""


class CatalogueFault(WorkspaceError):
    """The catalogue failed under a command (its server gone, its disk full, locked too long)."""

    midway = True


class ConfigError(CurateError):
    """A command-line value or config field is out of range or malformed."""


class StoreError(CurateError):
    """The image store could not write or read an object."""

    midway = True


class MissingOriginals(StoreError):
    """Originals a command needs are not in the store: found before it starts its work (a refusal, not a fault
    met mid-work)."""

    midway = False


class ScrapeError(CurateError):
    """The crawl could not run at all (no result page readable, store failure)."""


class StudioError(CurateError):
    """Label Studio is unreachable, refused the credentials, or answered unexpectedly."""


class LabelError(CurateError):
    """A labeling round or annotation does not fit the catalogue or the label config."""


class ExportError(ConfigError):
    """An export request that cannot be fulfilled; nothing has been written."""


class DatasetError(CurateError):
    """A dataset version is missing, malformed, or does not match its checksums."""


class NothingCompared(DatasetError):
    """A check (`audit leakage --strict`) that had nothing to compare: exit 3, so that a script tells it from a
    damaged version (1) and from pairs found (2)."""

    exit_code = 3


class WeightsError(CurateError):
    """Pretrained weights are unavailable or do not fit the network."""


class DeviceError(CurateError):
    """The asked-for torch device (e.g. cuda) is not available here."""


class ServeError(CurateError):
    """An uploaded image cannot be triaged; the message is the one-line reason the client sees."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status
