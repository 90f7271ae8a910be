"""Label audit: every consensus change an audit round makes is kept as history.

Revision ID: 0009_label_audit
Revises: 0008_dedupe_verify

`consensus_history` gets one row per change: the previous and the new consensus (status and
diagnosis), who decided (the audit reviewer), when, why (the rule that applied) and which audit
annotation revision it came from. Audit rounds reuse `label_rounds` with kind "audit"; no existing
row changes.
"""
from alembic import op
import sqlalchemy as sa

revision = "0009_label_audit"
down_revision = "0008_dedupe_verify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consensus_history",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id"), nullable=False),
        sa.Column("previous_status", sa.String(length=20), nullable=False),
        sa.Column("previous_diagnosis", sa.String(length=50), nullable=True),
        sa.Column("new_status", sa.String(length=20), nullable=False),
        sa.Column("new_diagnosis", sa.String(length=50), nullable=True),
        sa.Column("changed_by", sa.String(length=254), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("round_id", sa.Integer(), sa.ForeignKey("label_rounds.id"), nullable=True),
        sa.Column("annotation_id", sa.Integer(), sa.ForeignKey("label_annotations.id"), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_consensus_history_image_id", "consensus_history", ["image_id"])


def downgrade() -> None:
    op.drop_index("ix_consensus_history_image_id", "consensus_history")
    op.drop_table("consensus_history")
