"""dedupe codes: a collage's panels (`curate.dedupe.decode.box_panels`).

Revision ID: 0013_dedupe_panels
Revises: 0012_dedupe_whole

Adds one nullable column, so every existing row survives; the codes' algorithm version changed with it
(`curate.dedupe.run.ALGO`), so the next `curate dedupe` hashes every picture again and fills it.
"""
from alembic import op
import sqlalchemy as sa

revision = "0013_dedupe_panels"
down_revision = "0012_dedupe_whole"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dedupe_codes") as t:
        t.add_column(sa.Column("panels", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dedupe_codes") as t:
        t.drop_column("panels")
