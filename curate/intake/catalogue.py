"""Catalogue writes shared by folder ingest and web scraping."""

from __future__ import annotations

from sqlmodel import Session, select

from curate.errors import ConfigError
from curate.intake.decode import ImageInfo
from db.models import Image, Provenance, Source

SOURCE_KINDS = {"clinic": 0, "public": 1, "web": 2}


def get_or_create_source(session: Session, name: str, kind: str | None = None, licence: str | None = None) -> Source:
    """The named source; created on first use. A kind that contradicts the stored one is an error."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ConfigError("--source must be a non-empty name of at most 200 characters")
    if kind is not None and kind not in SOURCE_KINDS:
        raise ConfigError(f"--kind must be one of {', '.join(SOURCE_KINDS)}, not {kind!r}")
    src = session.exec(select(Source).where(Source.name == name)).first()
    if src is None:
        kind = kind or "clinic"
        src = Source(name=name, kind=kind, priority=SOURCE_KINDS[kind], licence=licence)
        session.add(src)
        session.flush()
    elif kind is not None and kind != src.kind:
        raise ConfigError(f"source {name!r} is already registered as {src.kind!r}, not {kind!r}")
    return src


def record_arrival(
    session: Session,
    *,
    sha256: str,
    size_bytes: int,
    info: ImageInfo | None,
    source_id: int,
    locator: str,
    **provenance,
) -> str:
    """Add the image (if new) and its provenance (if new).

    Returns "added" (a new image), "provenance" (known image, new arrival) or
    "known" (this very arrival is already recorded). Call only once the bytes
    are in the store, so no row ever points at a missing file.
    """
    image = session.exec(select(Image).where(Image.sha256 == sha256)).first()
    outcome = "provenance"
    if image is None:
        if info is None:
            raise ValueError("a new image needs its ImageInfo")
        image = Image(
            sha256=sha256,
            size_bytes=size_bytes,
            format=info.format,
            width=info.width,
            height=info.height,
            mode=info.mode,
            frames=info.frames,
            exif_orientation=info.exif_orientation,
            has_exif=info.has_exif,
            has_gps=info.has_gps,
            has_camera_serial=info.has_camera_serial,
        )
        session.add(image)
        session.flush()
        outcome = "added"
    else:
        existing = session.exec(
            select(Provenance.id).where(
                Provenance.image_id == image.id, Provenance.source_id == source_id, Provenance.locator == locator
            )
        ).first()
        if existing is not None:
            return "known"
    session.add(Provenance(image_id=image.id, source_id=source_id, locator=locator, **provenance))
    return outcome


def known_shas(session: Session) -> frozenset[str]:
    return frozenset(session.exec(select(Image.sha256)).all())
