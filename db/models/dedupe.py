"""Tables of the dedupe stage.

`dedupe_codes`     per image: the hash codes and the grey thumbnail they came from, so a
                   later run hashes only new images (`Image.pixel_sha256`/`phash` too).
`dedupe_local`     per image: its strongest SIFT descriptors (`curate.dedupe.answers`), so a
                   later run computes local features only for new images.
`dedupe_pairs`     pairs the last run found: matched (pixel-identical, verified hash, CNN) and
                   "review" (not merged: near a threshold or the stages disagree), and
                   "untested" (inside a group, too little texture to decide; neither joins nor blocks).
`dedupe_members`   the clustering: cluster key, representative, low-resolution flag.
`dedupe_overrides` the steward's decisions (merge / split a pair); never touched by a run.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from db.models.intake import _ts, utcnow


class DedupeCode(SQLModel, table=True):
    __tablename__ = "dedupe_codes"
    image_id: int = Field(foreign_key="images.id", primary_key=True)
    algo: str = Field(max_length=40)  # codes are recomputed when the algorithm version changes
    image_sha256: str | None = Field(default=None, max_length=64)  # of the original they came from (else recomputed)
    codes: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))  # little-endian uint64 per window
    thumb: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))  # THUMB x THUMB uint8 grey
    masked: float = 0.0  # fraction of the thumbnail in-painted (black bar, rotation corners)
    embedding: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary, nullable=True))  # CNN, float16
    searched_with: str | None = Field(default=None, max_length=120)  # settings of the last search covering it
    box: str | None = Field(default=None, max_length=40)  # content box "x0,y0,x1,y1" (fractions), frames cut away
    note: str | None = Field(default=None, max_length=200)  # why the whole picture was used, if it was
    flat: bool = False  # single colour: kept out of the near-duplicate search
    whole: bytes | None = Field(
        default=None, sa_column=sa.Column(sa.LargeBinary, nullable=True)
    )  # THUMB x THUMB uint8 grey of the whole picture, when the box was cut (`curate.dedupe.whole`)
    panels: str | None = Field(
        default=None, sa_column=sa.Column(sa.Text, nullable=True)
    )  # a collage's panels "x0,y0,x1,y1;..." (fractions; `curate.dedupe.decode.box_panels`)
    colour: float | None = None  # colour the brightness does not explain (`curate.dedupe.fidelity`): 0 when grey
    drawn: float | None = None  # share of a drawing's pure colours (`curate.dedupe.fidelity`): a ring, a sticker
    turned: float | None = None  # share of its canvas a picture turned on one covers (`curate.dedupe.decode`); else 1
    tint_cr: float | None = None  # mean chroma inside the box (`curate.dedupe.fidelity.tint`): a cast, a filter
    tint_cb: float | None = None
    quality: int | None = None  # a JPEG's quality read off its tables, 100 lossless (`curate.dedupe.fidelity.quality`)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class DedupeLocal(SQLModel, table=True):
    __tablename__ = "dedupe_local"
    image_id: int = Field(foreign_key="images.id", primary_key=True)
    version: str = Field(max_length=120)  # recomputed when the features' algorithm or settings change
    image_sha256: str | None = Field(default=None, max_length=64)  # of the original they came from (else recomputed)
    count: int = 0  # descriptors stored (at most `curate.dedupe.local.TOP`)
    descriptors: bytes = Field(
        sa_column=sa.Column(sa.LargeBinary, nullable=False)
    )  # count x 128 uint8, strongest first
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class DedupePair(SQLModel, table=True):
    __tablename__ = "dedupe_pairs"
    id: int | None = Field(default=None, primary_key=True)
    image_a: int = Field(foreign_key="images.id", index=True)  # image_a < image_b
    image_b: int = Field(foreign_key="images.id", index=True)
    kind: str = Field(max_length=10)  # pixel | hash | cnn | review (not merged, shown first) | untested | marks
    hamming: int | None = None
    similarity: float = 1.0
    inliers: int | None = None  # keypoints agreeing on one transform (geometric verification)
    reason: str | None = Field(default=None, max_length=200)  # the verification's evidence, in words
    in_place: float | None = None  # a "same" laid in place: its pixels' correlation (curate.dedupe.pairs.stamps)
    a_shows: float | None = None  # a "same": the share of b's content box a shows (curate.dedupe.verify.shows)
    b_shows: float | None = None  # and of a's box b shows; a crop shows under all of its photo
    run_id: int | None = Field(default=None, foreign_key="command_runs.id")


class DedupeMember(SQLModel, table=True):
    __tablename__ = "dedupe_members"
    image_id: int = Field(foreign_key="images.id", primary_key=True)
    cluster_key: str = Field(sa_column=sa.Column(sa.String(40), nullable=False, index=True))
    representative: bool = False
    low_res: bool = False
    run_id: int | None = Field(default=None, foreign_key="command_runs.id")


class DedupeOverride(SQLModel, table=True):
    __tablename__ = "dedupe_overrides"
    __table_args__ = (sa.UniqueConstraint("image_a", "image_b", name="uq_dedupe_override_pair"),)
    id: int | None = Field(default=None, primary_key=True)
    image_a: int = Field(foreign_key="images.id", index=True)  # image_a < image_b
    image_b: int = Field(foreign_key="images.id", index=True)
    action: str = Field(max_length=10)  # merge (same picture) | split (not duplicates) | keep (image_a = image_b)
    note: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


__all__ = ["DedupeCode", "DedupeLocal", "DedupePair", "DedupeMember", "DedupeOverride"]
