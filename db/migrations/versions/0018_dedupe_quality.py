"""dedupe codes: a JPEG's quality read off its quantization tables, for the representative rule.

Revision ID: 0018_dedupe_quality
Revises: 0017_review_shown

Adds one nullable column, so every existing row survives; the codes' algorithm version changed with it
(`curate.dedupe.run.ALGO`), so the next `curate dedupe` hashes every picture again and fills it.
"""
from alembic import op
import sqlalchemy as sa

revision = "0018_dedupe_quality"
down_revision = "0017_review_shown"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dedupe_codes") as t:
        t.add_column(sa.Column("quality", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dedupe_codes") as t:
        t.drop_column("quality")
