"""The study's diagnosis list: "other" becomes "not_assessable"; the consensus rules are recorded.

Before this revision one choice, "Other / not assessable" (code `other`), stood for two facts and
every export dropped it. Raters used it for photos they could not assess, so existing consensus and
annotation rows with `other` become `not_assessable` (still excluded from exports, now with that
reason); no row is added or removed. The new "other diagnosis" (`other_diagnosis`) only comes from
new labels. `label_rules` records the consensus rules in force (`curate label pull --low-quality`).

Downgrade is lossy by necessity: both `not_assessable` and `other_diagnosis` go back to `other`.

Revision ID: 0006_diagnoses
Revises: 0004_export
"""
from alembic import op
import sqlalchemy as sa

revision = "0006_diagnoses"
down_revision = "0004_export"
branch_labels = None
depends_on = None

TABLES = ("consensus", "label_annotations")


def upgrade() -> None:
    for table in TABLES:
        op.execute(sa.text(f"UPDATE {table} SET diagnosis = 'not_assessable' WHERE diagnosis = 'other'"))
    op.create_table(
        "label_rules",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("third_opinion", sa.String(length=20), nullable=False),
        sa.Column("low_quality", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("label_rules")
    for table in TABLES:
        op.execute(sa.text(f"UPDATE {table} SET diagnosis = 'other' "
                           "WHERE diagnosis IN ('not_assessable', 'other_diagnosis')"))
