"""All catalogue tables, one module per pipeline stage.

Importing this package registers every table on `SQLModel.metadata`, which
Alembic compares against when a migration is written.
"""

from db.models.dedupe import *  # noqa: F403
from db.models.export import *  # noqa: F403
from db.models.intake import CommandRun, Image, Provenance, Rejection, Source, utcnow
from db.models.label import *  # noqa: F403

__all__ = ["CommandRun", "Image", "Provenance", "Rejection", "Source", "most_chars", "utcnow"]


def most_chars(model, column: str) -> int:
    """The most characters `model`'s `column` holds: PostgreSQL refuses a longer value, SQLite takes it, so a
    command checks what it will write against this before its work."""
    return model.__table__.c[column].type.length
