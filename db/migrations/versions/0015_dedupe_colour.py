"""dedupe codes: colour taken away or drawn on, for the representative rule (`curate.dedupe.fidelity`).

Revision ID: 0015_dedupe_colour
Revises: 0014_dedupe_bound

Adds two nullable columns, so every existing row survives; the codes' algorithm version changed with them
(`curate.dedupe.run.ALGO`), so the next `curate dedupe` hashes every picture again and fills them.
"""
from alembic import op
import sqlalchemy as sa

revision = "0015_dedupe_colour"
down_revision = "0014_dedupe_bound"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dedupe_codes") as t:
        t.add_column(sa.Column("colour", sa.Float(), nullable=True))
        t.add_column(sa.Column("drawn", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dedupe_codes") as t:
        t.drop_column("drawn")
        t.drop_column("colour")
