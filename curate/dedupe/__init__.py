"""Dedupe: exact and near-duplicate clusters over the catalogue.

The two functions below are the contract later stages use (label push reads
`labelable_image_ids`, export reads `cluster_map`); the dedupe work keeps
their signatures. Before dedupe has run, every image is its own cluster.
"""
from __future__ import annotations

from sqlmodel import Session, select

from db.models import Image


def cluster_map(session: Session) -> dict[int, str]:
    """image id -> cluster key; images in one cluster must stay in one split."""
    return {i: f"img{i}" for i in session.exec(select(Image.id)).all()}


def labelable_image_ids(session: Session) -> list[int]:
    """Images to label: one representative per cluster, not excluded, in id order."""
    return sorted(session.exec(select(Image.id)).all())
