"""Repair: what a revision skipped on some older catalogues is added where it is missing.

Revision ID: 0020_repair_gaps
Revises: 0019_dedupe_shows

Two revision ids were reused with other parents in this repository's history, so an older catalogue's chain
passed over a revision that today's chain counts as applied:

- `0009_label_audit` followed `0007_studio_servers` (06861cb, ce9605e): no `0008_dedupe_verify`, so
  `dedupe_codes` lacks box, note and flat and `dedupe_pairs` inliers and reason (`curate dedupe` stopped on
  "no such column: box");
- `0007_studio_servers` followed `0004_export` (9c98e11), as the retired `0005_dedupe_verify` did (4eb5c94,
  re-stamped `0008_dedupe_verify` by `db.migrate.RETIRED`): no `0006_diagnoses`, so no `label_rules` (`curate
  export` stopped on "no such table: label_rules") and its "other" diagnoses not yet "not_assessable", and with
  the retired revision no `label_projects.server_url` either.

Each is added here only where it is missing, as the skipped revision made it (the diagnoses converted only where
`label_rules` was missing, as 0006 did with it), so a catalogue that ran every revision is left as it is.
Nothing is removed; a downgrade leaves what this added, which belongs to the earlier revisions.
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_repair_gaps"
down_revision = "0019_dedupe_shows"
branch_labels = None
depends_on = None


def _verify_columns() -> dict[str, list[sa.Column]]:
    """0008_dedupe_verify's columns, as it adds them."""
    return {
        "dedupe_codes": [
            sa.Column("box", sa.String(length=40), nullable=True),
            sa.Column("note", sa.String(length=200), nullable=True),
            sa.Column("flat", sa.Boolean(), nullable=False, server_default=sa.false()),
        ],
        "dedupe_pairs": [
            sa.Column("inliers", sa.Integer(), nullable=True),
            sa.Column("reason", sa.String(length=200), nullable=True),
        ],
    }


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "label_rules" not in tables:  # 0006_diagnoses skipped
        for table in ("consensus", "label_annotations"):
            op.execute(sa.text(f"UPDATE {table} SET diagnosis = 'not_assessable' WHERE diagnosis = 'other'"))
        op.create_table(
            "label_rules",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("third_opinion", sa.String(length=20), nullable=False),
            sa.Column("low_quality", sa.String(length=20), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        )
    if "server_url" not in _columns("label_projects"):  # 0007_studio_servers skipped
        # a plain ADD COLUMN, as 0007: a batch copy of label_projects would drop the table label_tasks references
        op.add_column("label_projects", sa.Column("server_url", sa.Text(), nullable=True))
        op.execute(
            "UPDATE label_projects SET server_url = (SELECT label_rounds.server_url FROM label_rounds "
            "WHERE label_rounds.id = label_projects.round_id)"
        )
    for table, columns in _verify_columns().items():  # 0008_dedupe_verify skipped
        have = _columns(table)
        if missing := [c for c in columns if c.name not in have]:
            with op.batch_alter_table(table) as t:
                for column in missing:
                    t.add_column(column)


def downgrade() -> None:
    pass
