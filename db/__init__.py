"""The catalogue: SQLModel tables, engine set-up and Alembic migrations.

Every table is declared in `db.models`; the schema only changes through a
migration in `db/migrations/versions`, so a workspace made by an older
version opens with a newer one (`db.migrate.upgrade`).
"""

from db.engine import make_engine, session_scope
from db.migrate import upgrade

__all__ = ["make_engine", "session_scope", "upgrade"]
