"""Intake tables: sources, images, provenance, rejections and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(nullable: bool = False, **kw) -> sa.Column:
    return sa.Column(sa.DateTime(timezone=True), nullable=nullable, **kw)


class Source(SQLModel, table=True):
    """A named origin of images: a clinic export, a public dataset, a web engine."""

    __tablename__ = "sources"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(200), unique=True, nullable=False))
    kind: str = Field(max_length=20)  # clinic | public | web
    # Lower wins when dedupe picks a cluster representative (clinic 0 < public 1 < web 2).
    priority: int = 1
    licence: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class Image(SQLModel, table=True):
    """One distinct original, stored once in the content-addressed store."""

    __tablename__ = "images"
    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(sa_column=sa.Column(sa.String(64), unique=True, nullable=False))
    size_bytes: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    format: str = Field(max_length=10)
    width: int  # as displayed, i.e. after EXIF orientation
    height: int
    mode: str = Field(max_length=10)
    frames: int = 1
    exif_orientation: int | None = None
    # Privacy flags: the original is never modified, so exports must strip these.
    has_exif: bool = False
    has_gps: bool = False
    has_camera_serial: bool = False
    # Slots the dedupe stage fills.
    pixel_sha256: str | None = Field(default=None, sa_column=sa.Column(sa.String(64), index=True))
    phash: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class CommandRun(SQLModel, table=True):
    """Audit log: one row per command that changed the catalogue."""

    __tablename__ = "command_runs"
    id: int | None = Field(default=None, primary_key=True)
    command: str = Field(max_length=50)
    arguments: str = Field(default="{}", sa_column=sa.Column(sa.Text, nullable=False))  # JSON, secrets redacted
    status: str = Field(default="running", max_length=20)  # running | ok | failed | aborted | interrupted | killed
    summary: str = Field(default="{}", sa_column=sa.Column(sa.Text, nullable=False))  # JSON
    tool_version: str = Field(default="", max_length=40)
    started_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    finished_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class Provenance(SQLModel, table=True):
    """One arrival of an image: which source, where in it, when, under what licence.

    An image seen in a clinic folder and again on the web has two rows.
    `locator` is the path relative to the ingested folder, or the image URL.
    """

    __tablename__ = "provenance"
    __table_args__ = (sa.UniqueConstraint("image_id", "source_id", "locator", name="uq_provenance_arrival"),)
    id: int | None = Field(default=None, primary_key=True)
    image_id: int = Field(foreign_key="images.id", index=True)
    source_id: int = Field(foreign_key="sources.id", index=True)
    run_id: int | None = Field(default=None, foreign_key="command_runs.id")
    locator: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    prior_label: str | None = Field(default=None, max_length=100)
    case_id: str | None = Field(default=None, max_length=200, index=True)
    licence: str | None = Field(default=None, max_length=200)
    # Web provenance (None for folder ingests).
    engine: str | None = Field(default=None, max_length=20)
    query: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    licence_requested: str | None = Field(default=None, max_length=100)
    rank: int | None = None
    page_url: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    image_url: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    final_url: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    title: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    content_type: str | None = Field(default=None, max_length=100)
    retrieved_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class Rejection(SQLModel, table=True):
    """A file or URL that did not enter the store, and why."""

    __tablename__ = "rejections"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int | None = Field(default=None, foreign_key="command_runs.id", index=True)
    source_id: int = Field(foreign_key="sources.id", index=True)
    locator: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    reason: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
