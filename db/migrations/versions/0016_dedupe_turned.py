"""dedupe codes: the share of its canvas a picture turned on one covers, for the representative rule.

Revision ID: 0016_dedupe_turned
Revises: 0015_dedupe_colour

Adds one nullable column, so every existing row survives; the codes' algorithm version changed with it
(`curate.dedupe.run.ALGO`), so the next `curate dedupe` hashes every picture again and fills it.
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


def downgrade() -> None:
    with op.batch_alter_table("dedupe_codes") as t:
        t.drop_column("turned")
