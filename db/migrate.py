"""Apply Alembic migrations programmatically (no alembic.ini needed by users)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

MIGRATIONS = Path(__file__).parent / "migrations"

# Revision ids that older commits of this repository stamped and that no longer exist, each with the revision of
# today's chain whose schema it holds. A catalogue stamped one is re-stamped there in the upgrade's transaction, then
# upgraded; `0020_repair_gaps` adds what the retired revision's chain did not make. Before, such a catalogue was
# called "written by a newer mpox-curate", the wrong advice: it is older.
RETIRED = {
    # the dedupe branch's verification revision (4eb5c94, after 0004_export): the same columns renumbered
    # 0008_dedupe_verify after 0007_studio_servers at the merge (4905d55); 0006's and 0007's part comes with 0020
    "0005_dedupe_verify": "0008_dedupe_verify",
}

# 0002_dedupe was an empty placeholder in the first commits (5d70e03..aa6ee40) and filled in later under the same
# id (5fc3755): a catalogue made then is stamped past it without its tables, which later revisions alter.
PLACEHOLDER = "0002_dedupe"
PLACEHOLDER_TABLES = ("dedupe_codes", "dedupe_pairs", "dedupe_members", "dedupe_overrides")

VERSION_TABLE = "alembic_version"
RESTORE = "nothing was changed; restore the catalogue from a backup"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config(None))  # type: ignore[arg-type]
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The catalogue's schema revision, None where it has none. CatalogueMismatch where its revision table holds
    several rows (before: "unexpected CommandError: Version table 'alembic_version' has more than one head")."""
    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    if len(heads) > 1:
        raise CatalogueMismatch(
            f"the catalogue's schema revision table ({VERSION_TABLE}) holds {len(heads)} rows "
            f"({', '.join(sorted({repr(h) for h in heads}))}) where it should hold one, so its schema is not known "
            f"(edited or damaged): {RESTORE}"
        )
    return heads[0] if heads else None


class CatalogueMismatch(Exception):
    """A database this toolkit's migrations cannot take: written by a newer version, holding another application's
    tables, a damaged revision table, a schema lacking what its revision holds, or an upgrade a read-only catalogue
    cannot take. The message is the one line to show (no SQL statement, no traceback)."""


class UpgradeNeedsWrite(CatalogueMismatch):
    """An older catalogue opened where it cannot be written (a read-only mount, a copy made read-only, a read-only
    PostgreSQL transaction): its schema upgrade is the write it needs."""


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the catalogue schema up to `revision` (idempotent). CatalogueMismatch for a revision this version does
    not know (before: alembic's "Can't locate revision …") or, on a database without one, tables of this schema's
    names already there (before: a DuplicateTable error carrying the whole CREATE TABLE)."""
    upgrade_from(engine, current_revision(engine), revision)


def upgrade_from(engine: Engine, current: str | None, revision: str = "head") -> None:
    """`upgrade` for a caller that has asked the catalogue's revision already (`current`): one query fewer."""
    head = head_revision()
    if revision == "head" and current == head:
        return
    script = ScriptDirectory.from_config(alembic_config(engine))
    if current is not None and current not in RETIRED and current not in {r.revision for r in script.walk_revisions()}:
        raise CatalogueMismatch(
            f"the catalogue was written by a newer mpox-curate (schema revision {current!r}, this one knows up to "
            f"{head!r}): upgrade mpox-curate"
        )
    if current is None:
        taken = taken_names(engine)
        if taken and (now := current_revision(engine)) is not None:  # another command's upgrade made it meanwhile
            return upgrade_from(engine, now, revision)
        if taken and _has_version_table(engine):
            raise CatalogueMismatch(
                f"the catalogue holds mpox-curate's tables ({_some(taken)}) but its schema revision table "
                f"({VERSION_TABLE}) is empty, so its schema is not known (edited or damaged): {RESTORE}"
            )
        if taken:
            raise CatalogueMismatch(
                f"the database already holds tables of another application ({_some(taken)}) and no mpox-curate "
                "schema revision: give an empty database"
            )
    try:
        command.upgrade(alembic_config(engine), revision)
    except DBAPIError as exc:
        if not _read_only(exc):
            raise
        target = head if revision == "head" else revision
        start = f"revision {current!r}" if current is not None else "no schema"
        raise UpgradeNeedsWrite(
            f"needs a schema upgrade (from {start} to {target!r}), which needs write access, and it can only be read "
            "here (a read-only mount or file, a full disk, a read-only database): run one curate command where it "
            "can be written (or on a writable copy) first"
        ) from None


def _read_only(exc: DBAPIError) -> bool:
    """The write was refused because the catalogue is read-only: SQLite's READONLY codes, PostgreSQL's
    read_only_sql_transaction (a standby, default_transaction_read_only)."""
    orig = exc.orig
    name = getattr(orig, "sqlite_errorname", "") or ""
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return name.startswith("SQLITE_READONLY") or "readonly database" in str(orig) or state == "25006"


def _some(names: list[str]) -> str:
    return f"{', '.join(names[:3])}{', …' if len(names) > 3 else ''}"


def _has_version_table(engine: Engine) -> bool:
    from sqlalchemy import inspect

    return inspect(engine).has_table(VERSION_TABLE)


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


def before_migrations(context: MigrationContext, script: ScriptDirectory) -> None:
    """What `db/migrations/env.py` does inside the upgrade's transaction (after PostgreSQL's lock), before alembic
    reads the revision to start from: a retired revision id is re-stamped as the revision it corresponds to
    (`RETIRED`), and a catalogue stamped past the 0002 placeholder without its tables gets them, as 0002 makes them,
    for the later revisions that alter them (before: "unexpected NoSuchTableError: dedupe_codes")."""
    from alembic.operations import Operations
    from sqlalchemy import inspect, text

    heads = context.get_current_heads()
    if len(heads) != 1:
        return
    current = heads[0]
    if current in RETIRED:
        context.connection.execute(
            text(f"UPDATE {VERSION_TABLE} SET version_num = :new WHERE version_num = :old"),
            {"new": RETIRED[current], "old": current},
        )
        current = RETIRED[current]
    if current not in {r.revision for r in script.walk_revisions()}:
        return
    applied = {r.revision for r in script.walk_revisions(base="base", head=current)}
    present = set(inspect(context.connection).get_table_names())
    if PLACEHOLDER in applied and not present & set(PLACEHOLDER_TABLES):
        with Operations.context(context):
            script.get_revision(PLACEHOLDER).module.upgrade()


def refuse_gaps(connection: Connection) -> None:
    """After an upgrade to the head: every table and column of the models is there, else CatalogueMismatch naming
    what is missing (the upgrade's transaction is then rolled back). A gap no revision mends was, before, an
    "unexpected" error of whichever command first read it."""
    from sqlalchemy import inspect
    from sqlmodel import SQLModel

    import db.models  # noqa: F401 - registers every table on SQLModel.metadata

    seen = inspect(connection)
    present = set(seen.get_table_names())
    missing: list[str] = []
    for name, table in sorted(SQLModel.metadata.tables.items()):
        if name not in present:
            missing.append(f"table {name}")
            continue
        columns = {c["name"] for c in seen.get_columns(name)}
        missing += [f"column {name}.{c.name}" for c in table.columns if c.name not in columns]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise CatalogueMismatch(
            f"the catalogue's schema lacks what its revision holds ({shown}): the upgrade was rolled back, {RESTORE}"
        )
