"""dedupe codes and local features: the SHA-256 of the bytes they were computed from.

Revision ID: 0014_dedupe_bound
Revises: 0013_dedupe_panels

A cached row was trusted by its image id alone, so one copied in from another catalogue (where that id
is another photo) was reused as this image's. Each row now carries the checksum of the original it was
computed from, and `curate dedupe` recomputes a row whose checksum is not its image's. Existing rows were
computed here, from the image their id names: the upgrade binds them to it, so nothing is recomputed.
"""
from alembic import op
import sqlalchemy as sa

revision = "0014_dedupe_bound"
down_revision = "0013_dedupe_panels"
branch_labels = None
depends_on = None

_TABLES = ("dedupe_codes", "dedupe_local")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as t:
            t.add_column(sa.Column("image_sha256", sa.String(length=64), nullable=True))
        op.execute(
            f"UPDATE {table} SET image_sha256 = (SELECT images.sha256 FROM images WHERE images.id = {table}.image_id)"
        )


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as t:
            t.drop_column("image_sha256")
