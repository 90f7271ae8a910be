"""dedupe codes: the share of its canvas a picture turned on one covers, and its mean chroma, for the
representative rule.

Revision ID: 0016_dedupe_turned
Revises: 0015_dedupe_colour

Adds three nullable columns, so every existing row survives; the codes' algorithm version changed with them
(`curate.dedupe.run.ALGO`), so the next `curate dedupe` hashes every picture again and fills them.
"""
from alembic import op
import sqlalchemy as sa

revision = "0016_dedupe_turned"
down_revision = "0015_dedupe_colour"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dedupe_codes") as t:
        t.add_column(sa.Column("turned", sa.Float(), nullable=True))
        t.add_column(sa.Column("tint_cr", sa.Float(), nullable=True))
        t.add_column(sa.Column("tint_cb", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dedupe_codes") as t:
        t.drop_column("tint_cb")
        t.drop_column("tint_cr")
        t.drop_column("turned")
