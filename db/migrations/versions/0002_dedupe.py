"""dedupe stage: codes, pairs, cluster members, steward overrides.

Revision ID: 0002_dedupe
Revises: 0001_intake
"""
from alembic import op
import sqlalchemy as sa

revision = "0002_dedupe"
down_revision = "0001_intake"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dedupe_codes",
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id"), primary_key=True),
        sa.Column("algo", sa.String(length=40), nullable=False),
        sa.Column("codes", sa.LargeBinary(), nullable=False),
        sa.Column("thumb", sa.LargeBinary(), nullable=False),
        sa.Column("masked", sa.Float(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("searched_with", sa.String(length=120), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "dedupe_pairs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("image_a", sa.Integer(), sa.ForeignKey("images.id"), nullable=False),
        sa.Column("image_b", sa.Integer(), sa.ForeignKey("images.id"), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("hamming", sa.Integer(), nullable=True),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("command_runs.id"), nullable=True),
    )
    op.create_index("ix_dedupe_pairs_image_a", "dedupe_pairs", ["image_a"])
    op.create_index("ix_dedupe_pairs_image_b", "dedupe_pairs", ["image_b"])
    op.create_table(
        "dedupe_members",
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id"), primary_key=True),
        sa.Column("cluster_key", sa.String(length=40), nullable=False),
        sa.Column("representative", sa.Boolean(), nullable=False),
        sa.Column("low_res", sa.Boolean(), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("command_runs.id"), nullable=True),
    )
    op.create_index("ix_dedupe_members_cluster_key", "dedupe_members", ["cluster_key"])
    op.create_table(
        "dedupe_overrides",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("image_a", sa.Integer(), sa.ForeignKey("images.id"), nullable=False),
        sa.Column("image_b", sa.Integer(), sa.ForeignKey("images.id"), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("image_a", "image_b", name="uq_dedupe_override_pair"),
    )
    op.create_index("ix_dedupe_overrides_image_a", "dedupe_overrides", ["image_a"])
    op.create_index("ix_dedupe_overrides_image_b", "dedupe_overrides", ["image_b"])


def downgrade() -> None:
    for name, cols in (("dedupe_overrides", ["image_a", "image_b"]), ("dedupe_members", ["cluster_key"]),
                       ("dedupe_pairs", ["image_a", "image_b"])):
        for c in cols:
            op.drop_index(f"ix_{name}_{c}", table_name=name)
    op.drop_table("dedupe_overrides")
    op.drop_table("dedupe_members")
    op.drop_table("dedupe_pairs")
    op.drop_table("dedupe_codes")
