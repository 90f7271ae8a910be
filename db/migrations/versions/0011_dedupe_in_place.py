"""dedupe pairs: the pixels' correlation of a "same" pair laid in place (shared stamps).

Revision ID: 0011_dedupe_in_place
Revises: 0010_dedupe_local_cache

Adds one nullable column, so every existing row survives; the next `curate dedupe` fills it for the pairs
it verifies (`curate.dedupe.pairs.stamps`).
"""
from alembic import op
import sqlalchemy as sa

revision = "0011_dedupe_in_place"
down_revision = "0010_dedupe_local_cache"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dedupe_pairs") as t:
        t.add_column(sa.Column("in_place", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dedupe_pairs") as t:
        t.drop_column("in_place")
