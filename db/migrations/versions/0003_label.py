"""Label stage tables: consensus and the Label Studio bookkeeping (rounds, projects, tasks, annotations).

Revision ID: 0003_label
Revises: 0002_dedupe
"""
from alembic import op
import sqlalchemy as sa

revision = "0003_label"
down_revision = "0002_dedupe"
branch_labels = None
depends_on = None


def _ts(name, nullable=False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "consensus",
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id"), primary_key=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("diagnosis", sa.String(length=50), nullable=True),
        sa.Column("method", sa.String(length=50), nullable=False),
        sa.Column("n_raters", sa.Integer(), nullable=False),
        sa.Column("agreement", sa.Float(), nullable=True),
        sa.Column("boxes", sa.Text(), nullable=False),
        sa.Column("exclusion", sa.String(length=200), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_consensus_status", "consensus", ["status"])

    op.create_table(
        "label_rounds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("raters", sa.Text(), nullable=False),
        sa.Column("server_url", sa.Text(), nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "label_projects",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("round_id", sa.Integer(), sa.ForeignKey("label_rounds.id"), nullable=False),
        sa.Column("rater", sa.String(length=254), nullable=False),
        sa.Column("ls_project_id", sa.Integer(), nullable=False),
        sa.Column("ls_storage_id", sa.Integer(), nullable=True),
        _ts("created_at"),
        sa.UniqueConstraint("round_id", "rater", name="uq_label_project_rater"),
    )
    op.create_index("ix_label_projects_round_id", "label_projects", ["round_id"])
    op.create_table(
        "label_tasks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("label_projects.id"), nullable=False),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id"), nullable=False),
        sa.Column("ls_task_id", sa.Integer(), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("project_id", "image_id", name="uq_label_task_image"),
        sa.UniqueConstraint("project_id", "ls_task_id", name="uq_label_task_ls"),
    )
    op.create_index("ix_label_tasks_project_id", "label_tasks", ["project_id"])
    op.create_index("ix_label_tasks_image_id", "label_tasks", ["image_id"])
    op.create_table(
        "label_annotations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("task_id", sa.Integer(), sa.ForeignKey("label_tasks.id"), nullable=False),
        sa.Column("ls_annotation_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("rater", sa.String(length=254), nullable=False),
        sa.Column("diagnosis", sa.String(length=50), nullable=True),
        sa.Column("boxes", sa.Text(), nullable=False),
        sa.Column("flags", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("withdrawn", sa.Boolean(), nullable=False),
        _ts("ls_created_at", nullable=True),
        _ts("ls_updated_at", nullable=True),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        _ts("fetched_at"),
        _ts("withdrawn_at", nullable=True),
        sa.UniqueConstraint("task_id", "ls_annotation_id", "revision", name="uq_label_annotation_rev"),
    )
    op.create_index("ix_label_annotations_task_id", "label_annotations", ["task_id"])
    op.create_index("ix_label_annotations_ls_annotation_id", "label_annotations", ["ls_annotation_id"])


def downgrade() -> None:
    op.drop_table("label_annotations")
    op.drop_table("label_tasks")
    op.drop_table("label_projects")
    op.drop_table("label_rounds")
    op.drop_index("ix_consensus_status", table_name="consensus")
    op.drop_table("consensus")
