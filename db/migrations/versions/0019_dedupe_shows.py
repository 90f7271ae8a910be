"""dedupe pairs: what each picture of a "same" pair shows of the other, for the representative rule.

Revision ID: 0019_dedupe_shows
Revises: 0018_dedupe_quality

Adds two nullable columns, so every existing row survives; the verification rules' version changed with them
(`curate.dedupe.run.RULES`), so the next `curate dedupe` verifies its pairs again and fills them.
"""
from alembic import op
import sqlalchemy as sa

revision = "0019_dedupe_shows"
down_revision = "0018_dedupe_quality"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dedupe_pairs") as t:
        t.add_column(sa.Column("a_shows", sa.Float(), nullable=True))
        t.add_column(sa.Column("b_shows", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dedupe_pairs") as t:
        t.drop_column("b_shows")
        t.drop_column("a_shows")
