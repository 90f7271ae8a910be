"""dedupe stage tables (filled in by the dedupe work).

Revision ID: 0002_dedupe
Revises: 0001_intake
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = "0002_dedupe"
down_revision = "0001_intake"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
