"""Apply Alembic migrations programmatically (no alembic.ini needed by users)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config(None))  # type: ignore[arg-type]
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


class CatalogueMismatch(Exception):
    """A database this toolkit's migrations cannot take: written by a newer version, or holding another
    application's tables. The message is the one line to show (no SQL statement, no traceback)."""


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the catalogue schema up to `revision` (idempotent). CatalogueMismatch for a revision this version does
    not know (before: alembic's "Can't locate revision …") or, on a database without one, tables of this schema's
    names already there (before: a DuplicateTable error carrying the whole CREATE TABLE)."""
    upgrade_from(engine, current_revision(engine), revision)


def upgrade_from(engine: Engine, current: str | None, revision: str = "head") -> None:
    """`upgrade` for a caller that has asked the catalogue's revision already (`current`): one query fewer."""
    if revision == "head" and current == head_revision():
        return
    script = ScriptDirectory.from_config(alembic_config(engine))
    if current is not None and current not in {r.revision for r in script.walk_revisions()}:
        raise CatalogueMismatch(
            f"the catalogue was written by a newer mpox-curate (schema revision {current!r}, this one knows up to "
            f"{head_revision()!r}): upgrade mpox-curate"
        )
    if current is None:
        taken = taken_names(engine)
        if taken and (now := current_revision(engine)) is not None:  # another command's upgrade made it meanwhile
            return upgrade_from(engine, now, revision)
        if taken:
            raise CatalogueMismatch(
                f"the database already holds tables of another application ({', '.join(taken[:3])}"
                f"{', …' if len(taken) > 3 else ''}) and no mpox-curate schema revision: give an empty database"
            )
    command.upgrade(alembic_config(engine), revision)


def taken_names(engine: Engine) -> list[str]:
    """The tables of this schema's names a database without a schema revision already holds (another
    application's, or a catalogue whose revision table was lost)."""
    from sqlalchemy import inspect

    return sorted(set(inspect(engine).get_table_names()) & _ours())


def _ours() -> set[str]:
    """The table names this toolkit's schema makes."""
    from sqlmodel import SQLModel

    import db.models  # noqa: F401 - registers every table on SQLModel.metadata

    return set(SQLModel.metadata.tables)
