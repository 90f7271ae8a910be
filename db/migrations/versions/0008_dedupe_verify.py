"""dedupe verification: content box per code, evidence per pair, "review" pairs.

Revision ID: 0008_dedupe_verify
Revises: 0007_studio_servers

Adds nullable/defaulted columns only, so every existing row survives; codes of
the older algorithm are recomputed by the next `curate dedupe` (their `algo`
differs), never dropped here.
"""
from alembic import op
import sqlalchemy as sa

revision = "0008_dedupe_verify"
down_revision = "0007_studio_servers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dedupe_codes") as t:
        t.add_column(sa.Column("box", sa.String(length=40), nullable=True))
        t.add_column(sa.Column("note", sa.String(length=200), nullable=True))
        t.add_column(sa.Column("flat", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("dedupe_pairs") as t:
        t.add_column(sa.Column("inliers", sa.Integer(), nullable=True))
        t.add_column(sa.Column("reason", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dedupe_pairs") as t:
        t.drop_column("reason")
        t.drop_column("inliers")
    with op.batch_alter_table("dedupe_codes") as t:
        t.drop_column("flat")
        t.drop_column("note")
        t.drop_column("box")
