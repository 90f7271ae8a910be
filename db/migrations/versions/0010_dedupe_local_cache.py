"""dedupe local-feature cache: each picture's strongest SIFT descriptors, kept between runs.

Revision ID: 0010_dedupe_local_cache
Revises: 0009_label_audit

Adds one table only, so every existing row survives; the next `curate dedupe` fills it
(`curate.dedupe.answers`), after which a run computes local features only for new pictures.
"""
from alembic import op
import sqlalchemy as sa

revision = "0010_dedupe_local_cache"
down_revision = "0009_label_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dedupe_local",
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id"), primary_key=True),
        sa.Column("version", sa.String(length=120), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("descriptors", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dedupe_local")
