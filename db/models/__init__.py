"""All catalogue tables, one module per pipeline stage.

Importing this package registers every table on `SQLModel.metadata`, which
Alembic compares against when a migration is written.
"""

from db.models.intake import CommandRun, Image, Provenance, Rejection, Source, utcnow
from db.models.dedupe import *  # noqa: F401,F403
from db.models.label import *  # noqa: F401,F403
from db.models.export import *  # noqa: F401,F403

__all__ = ["CommandRun", "Image", "Provenance", "Rejection", "Source", "utcnow"]
