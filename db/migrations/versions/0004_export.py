"""Export stage tables: the dataset-version register.

Revision ID: 0004_export
Revises: 0003_label
"""
from alembic import op
import sqlalchemy as sa

revision = "0004_export"
down_revision = "0003_label"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("task", sa.String(length=20), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("parent", sa.String(length=40), nullable=True),
        sa.Column("images", sa.Integer(), nullable=False),
        sa.Column("roi_images", sa.Integer(), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("archive", sa.Text(), nullable=True),
        sa.Column("archive_sha256", sa.String(length=64), nullable=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("command_runs.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_dataset_version"),
    )
    op.create_index("ix_dataset_versions_name", "dataset_versions", ["name"])


def downgrade() -> None:
    op.drop_index("ix_dataset_versions_name", table_name="dataset_versions")
    op.drop_table("dataset_versions")
