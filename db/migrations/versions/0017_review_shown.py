"""label_annotations.shown: the two raters' diagnoses a review task showed its reviewer, as a JSON list.

Revision ID: 0017_review_shown
Revises: 0016_dedupe_turned

A review answer counts only for the dispute it was shown: a rater who changes their diagnosis after the
review makes it stale (curate.label.recompute). One nullable column, so every existing row survives; answers
recorded before it (their tasks did not carry the diagnoses) count as they did.
"""
from alembic import op
import sqlalchemy as sa

revision = "0017_review_shown"
down_revision = "0016_dedupe_turned"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("label_annotations") as t:
        t.add_column(sa.Column("shown", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("label_annotations") as t:
        t.drop_column("shown")
