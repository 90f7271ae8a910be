"""Tables of the label stage.

`Consensus` is the contract the export stage reads: one row per image that has
been through labeling. Beside it, the Label Studio bookkeeping: a round has one
project per rater (so raters label blind), a task maps an image into a project,
and every fetched annotation state is kept as a revision with its raw JSON.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from db.models.intake import _ts, utcnow


class Consensus(SQLModel, table=True):
    """The outcome of labeling one image.

    status: pending | agreed | adjudicated | discarded | excluded.
    diagnosis: a code of the workspace's diagnosis list (curate.label.diagnoses: a declared slug,
        "other_diagnosis" or "not_assessable"), set only when agreed or adjudicated.
    boxes: JSON list of [x0, y0, x1, y1] lesion boxes in pixels of the EXIF-oriented original.
    exclusion: why an excluded image is out (e.g. "identifiable_features", "low_quality").
    """

    __tablename__ = "consensus"
    image_id: int = Field(foreign_key="images.id", primary_key=True)
    status: str = Field(max_length=20, index=True)
    diagnosis: str | None = Field(default=None, max_length=50)
    method: str = Field(default="", max_length=50)
    n_raters: int = 0
    agreement: float | None = None
    boxes: str = Field(default="[]", sa_column=sa.Column(sa.Text, nullable=False))
    exclusion: str | None = Field(default=None, max_length=200)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class LabelRules(SQLModel, table=True):
    """The consensus rules in force, one row per change (newest wins; none yet: the paper's).

    Recorded in the catalogue beside the consensus they produce, so every later recomputation
    (a pull, a push, an adjudication) applies the same rules until `curate label pull` changes them.
    """

    __tablename__ = "label_rules"
    id: int | None = Field(default=None, primary_key=True)
    third_opinion: str = Field(max_length=20)  # discard | reviewer
    low_quality: str = Field(max_length=20)  # any | both | never
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class LabelRound(SQLModel, table=True):
    """A labeling round: kind 'rating' (two blind raters), 'review' (one adjudicator) or 'audit'
    (one clinician re-reads images a model flagged as likely label errors; curate/label/audit_push.py)."""

    __tablename__ = "label_rounds"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=10)  # rating | review | audit
    name: str = Field(max_length=200)
    raters: str = Field(sa_column=sa.Column(sa.Text, nullable=False))  # JSON list of emails, in order
    server_url: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class LabelProject(SQLModel, table=True):
    """One clinician's Label Studio project inside a round, on a server no other clinician of the round
    can log in to."""

    __tablename__ = "label_projects"
    __table_args__ = (sa.UniqueConstraint("round_id", "rater", name="uq_label_project_rater"),)
    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(foreign_key="label_rounds.id", index=True)
    rater: str = Field(max_length=254)
    ls_project_id: int
    ls_storage_id: int | None = None
    # The server the project lives on (each clinician has their own); NULL only on rows from before 0007.
    server_url: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class LabelTask(SQLModel, table=True):
    """Which image is which Label Studio task in which project."""

    __tablename__ = "label_tasks"
    __table_args__ = (
        sa.UniqueConstraint("project_id", "image_id", name="uq_label_task_image"),
        sa.UniqueConstraint("project_id", "ls_task_id", name="uq_label_task_ls"),
    )
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="label_projects.id", index=True)
    image_id: int = Field(foreign_key="images.id", index=True)
    ls_task_id: int
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class LabelAnnotation(SQLModel, table=True):
    """One revision of one Label Studio annotation, parsed, with the raw JSON beside it.

    An edit in Label Studio adds a revision; a deletion marks the latest one withdrawn.
    boxes: JSON [[x0, y0, x1, y1], ...] in pixels of the EXIF-oriented original.
    """

    __tablename__ = "label_annotations"
    __table_args__ = (sa.UniqueConstraint("task_id", "ls_annotation_id", "revision", name="uq_label_annotation_rev"),)
    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="label_tasks.id", index=True)
    ls_annotation_id: int = Field(index=True)
    revision: int = 1
    rater: str = Field(max_length=254)
    diagnosis: str | None = Field(default=None, max_length=50)
    boxes: str = Field(default="[]", sa_column=sa.Column(sa.Text, nullable=False))
    flags: str = Field(default="[]", sa_column=sa.Column(sa.Text, nullable=False))
    comment: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    cancelled: bool = False
    withdrawn: bool = False
    ls_created_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    ls_updated_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    content_sha256: str = Field(max_length=64)
    raw: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    fetched_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    withdrawn_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # a review's: the raters' diagnoses (slugs, in round order) its task showed, JSON; None before 0017 / ratings;
    # an audit's: the raters' two diagnoses and the consensus its task showed (None on tasks pushed before)
    shown: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))


class ConsensusHistory(SQLModel, table=True):
    """One change of an image's consensus made by an audit round (curate/label/audit_apply.py), kept forever:
    what it was, what it became, who decided, when and why."""

    __tablename__ = "consensus_history"
    id: int | None = Field(default=None, primary_key=True)
    image_id: int = Field(foreign_key="images.id", index=True)
    previous_status: str = Field(max_length=20)
    previous_diagnosis: str | None = Field(default=None, max_length=50)
    new_status: str = Field(max_length=20)
    new_diagnosis: str | None = Field(default=None, max_length=50)
    changed_by: str = Field(max_length=254)  # the audit reviewer's email
    reason: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    round_id: int | None = Field(default=None, foreign_key="label_rounds.id")
    annotation_id: int | None = Field(default=None, foreign_key="label_annotations.id")  # the revision that decided
    changed_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


__all__ = ["Consensus", "ConsensusHistory", "LabelRules", "LabelRound", "LabelProject", "LabelTask", "LabelAnnotation"]
