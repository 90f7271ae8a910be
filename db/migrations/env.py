"""Alembic environment: the engine is handed in by `db.migrate`."""

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import db.models  # noqa: F401  - registers every table on SQLModel.metadata
from db.migrate import before_migrations, refuse_gaps

engine = context.config.attributes.get("engine")
if engine is None:  # `alembic` CLI use: take the URL from -x url=...
    from db.engine import make_engine

    engine = make_engine(context.get_x_argument(as_dictionary=True)["url"])


UPGRADE_LOCK = 0x6D706F78  # "mpox": the advisory lock key every upgrade of a PostgreSQL catalogue takes


@contextmanager
def one_transaction(connection: Connection) -> Iterator[None]:
    """SQLite: the whole upgrade in one transaction that this connection begins itself. Python's sqlite3 opens a
    transaction only before INSERT, UPDATE or DELETE, so each ALTER and batch copy of a migration ran on its own
    and was saved at once: a command stopped mid-upgrade left columns added under the old schema revision, and every
    later command failed on "duplicate column name". SQLite's DDL is transactional; killed, the journal undoes it
    all. PostgreSQL's DDL is transactional through SQLAlchemy already; there a transaction-scoped advisory lock makes a
    second upgrade wait for the first, whose revision alembic then reads (before: two commands opening one older
    catalogue at once stopped one on "column … already exists", two `init`s of an empty database on "duplicate key
    value violates unique constraint pg_type_typname_nsp_index")."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({UPGRADE_LOCK})")
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    saved = raw.isolation_level
    raw.isolation_level = None  # no implicit transactions: the BEGIN below is the only one
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock first: a second upgrade waits for this one
        yield
    finally:
        raw.isolation_level = saved  # after the COMMIT or ROLLBACK: the pool's next user gets sqlite3's default


with engine.connect() as connection, one_transaction(connection):
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        # in the transaction: a retired revision re-stamped, the 0002 placeholder's tables made (db.migrate)
        before_migrations(context.get_context(), context.script)
        context.run_migrations()
        if set(context.get_context().get_current_heads()) == set(context.script.get_heads()):
            refuse_gaps(connection)  # a table or column still missing: one line, and the upgrade rolled back
    connection.commit()
