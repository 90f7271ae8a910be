"""Tables of the export stage: one row per dataset version written under exports/.

The folder is the dataset; this row is the catalogue's record that it exists, what it was
built from, and the checksum that identifies it. The row is committed only after the
complete folder has been renamed into place.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from db.models.intake import _ts, utcnow


class DatasetVersionRecord(SQLModel, table=True):
    """A written, immutable dataset version (`exports/<name>/<version>/`)."""

    __tablename__ = "dataset_versions"
    __table_args__ = (sa.UniqueConstraint("name", "version", name="uq_dataset_version"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, index=True)
    version: str = Field(max_length=40)
    task: str = Field(max_length=20)  # binary | diagnosis
    checksum: str = Field(max_length=64)  # sha256 of the version's SHA256SUMS file
    fingerprint: str = Field(max_length=64)  # sha256 of the export plan (inputs + settings)
    path: str = Field(sa_column=sa.Column(sa.Text, nullable=False))  # relative to the workspace
    parent: str | None = Field(default=None, max_length=40)
    images: int = 0
    roi_images: int = 0
    counts: str = Field(default="{}", sa_column=sa.Column(sa.Text, nullable=False))  # JSON {split: {class: n}}
    settings: str = Field(default="{}", sa_column=sa.Column(sa.Text, nullable=False))  # JSON: dataset.json minus counts
    archive: str | None = Field(default=None, sa_column=sa.Column(sa.Text))  # relative path of the .tar
    archive_sha256: str | None = Field(default=None, max_length=64)
    run_id: int | None = Field(default=None, foreign_key="command_runs.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


__all__ = ["DatasetVersionRecord"]
