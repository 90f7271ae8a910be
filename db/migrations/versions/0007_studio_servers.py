"""Each Label Studio project records its own server (one server per clinician).

Revision ID: 0007_studio_servers
Revises: 0006_diagnoses

Projects made before lived on their round's one server: they inherit its URL.
"""
from alembic import op
import sqlalchemy as sa

revision = "0007_studio_servers"
down_revision = "0006_diagnoses"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("label_projects", sa.Column("server_url", sa.Text(), nullable=True))
    op.execute("UPDATE label_projects SET server_url = (SELECT label_rounds.server_url FROM label_rounds "
               "WHERE label_rounds.id = label_projects.round_id)")


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite >= 3.35 has it): a batch copy of label_projects would drop the table
    # that label_tasks references, which the catalogue's foreign keys refuse.
    op.drop_column("label_projects", "server_url")
