"""dedupe codes: the whole picture's thumbnail beside the content box's (`curate.dedupe.whole`).

Revision ID: 0012_dedupe_whole
Revises: 0011_dedupe_in_place

Adds one nullable column, so every existing row survives; the codes' algorithm version changed with it
(`curate.dedupe.run.ALGO`), so the next `curate dedupe` hashes every picture again and fills it.
"""
from alembic import op
import sqlalchemy as sa

revision = "0012_dedupe_whole"
down_revision = "0011_dedupe_in_place"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dedupe_codes") as t:
        t.add_column(sa.Column("whole", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dedupe_codes") as t:
        t.drop_column("whole")
