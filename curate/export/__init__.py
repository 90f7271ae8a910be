"""Export: turn consensus labels into immutable, checksummed dataset versions.

`export_version(ws, ExportOptions(...))` is the one entry point; `splits` (pure), `images`,
`manifest`, `card`, `croissant` and `diff` are its parts. Trainers read versions with
`curate.dataset.DatasetVersion`, never with this package.
"""

from curate.export.images import ImageSpec
from curate.export.plan import ExportError, ExportOptions
from curate.export.writer import ExportResult, diff_versions, export_version, list_versions

__all__ = [
    "ExportError",
    "ExportOptions",
    "ExportResult",
    "ImageSpec",
    "diff_versions",
    "export_version",
    "list_versions",
]
