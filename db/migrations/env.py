"""Alembic environment: the engine is handed in by `db.migrate`."""

from alembic import context
from sqlmodel import SQLModel

import db.models  # noqa: F401  - registers every table on SQLModel.metadata

engine = context.config.attributes.get("engine")
if engine is None:  # `alembic` CLI use: take the URL from -x url=...
    from db.engine import make_engine

    engine = make_engine(context.get_x_argument(as_dictionary=True)["url"])

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
