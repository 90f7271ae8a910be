"""Catalogue writes shared by folder ingest and web scraping."""

from __future__ import annotations

from sqlmodel import Session, func, select

from curate.errors import ConfigError
from curate.intake.decode import ImageInfo
from curate.output import first_control
from db.models import Image, Provenance, Rejection, Source

SOURCE_KINDS = {"clinic": 0, "public": 1, "web": 2}
_FORMULA = ("=", "+", "-", "@")  # what a spreadsheet runs as a formula at the start of a cell


def check_name(value: str, where: str = "--source") -> str:
    """`value` stripped, or a ConfigError naming `where`. Source names and licences are printed on terminals
    and written to manifest.csv and the dataset card: a control character (ESC, newline) rewrites the screen
    or splits a row, and a leading = + - @ runs as a formula when a spreadsheet opens the manifest."""
    value = value.strip()
    if not value or len(value) > 200:
        raise ConfigError(f"{where} must be a non-empty name of at most 200 characters")
    bad = first_control(value)  # the characters every table shows escaped (`curate.output.printable`)
    if bad is not None:
        raise ConfigError(f"{where} must not contain control characters (found U+{ord(bad):04X})")
    if value.startswith(_FORMULA):
        raise ConfigError(
            f"{where} must not begin with {value[0]!r}: a spreadsheet opening manifest.csv would run it as a formula"
        )
    return value


def get_or_create_source(session: Session, name: str, kind: str | None = None, licence: str | None = None) -> Source:
    """The named source; created on first use. A kind that contradicts the stored one is an error."""
    name = check_name(name)
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
    elif licence is not None and src.licence is None:  # --licence forgotten on the first run
        src.licence = licence
        session.add(src)
    return src


def drop_if_empty(session: Session, source_id: int) -> bool:
    """Remove a source nothing refers to (an ingest that found no images), so `curate status` and the
    dataset card do not list a source that holds nothing. True when it was removed."""
    for table in (Provenance, Rejection):
        if session.exec(select(func.count()).where(table.source_id == source_id)).one():
            return False
    source = session.get(Source, source_id)
    if source is not None:
        session.delete(source)
    return source is not None


def record_arrival(
    session: Session,
    *,
    sha256: str,
    size_bytes: int,
    info: ImageInfo | None,
    source_id: int,
    locator: str,
    differs: list[str] | None = None,
    conflicts: list[tuple[str, str]] | None = None,
    **provenance,
) -> str:
    """Add the image (if new) and its provenance (if new).

    Returns "added" (a new image), "provenance" (known image, new arrival) or
    "known" (this very arrival is already recorded). Call only once the bytes
    are in the store, so no row ever points at a missing file. A known arrival
    takes the case id, prior label and licence it lacks from the ones given, so re-running ingest with a
    corrected --case-id-pattern, or with --label-from-folders or --licence forgotten the first time, fills in
    what the first run missed; a field recorded already is kept, and its name appended to `differs` when the
    one given is another. A new arrival of a known image whose prior label differs from one recorded for it appends
    the two labels to `conflicts`: one photo, two diagnoses (before, nothing said so, and `curate status` counted
    the photo under both).
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
            select(Provenance).where(
                Provenance.image_id == image.id, Provenance.source_id == source_id, Provenance.locator == locator
            )
        ).first()
        if existing is not None:
            _fill_in(session, existing, provenance, differs)
            return "known"
    label = provenance.get("prior_label")
    if outcome == "provenance" and label and conflicts is not None:
        others = session.exec(
            select(Provenance.prior_label).where(Provenance.image_id == image.id, Provenance.prior_label.is_not(None))
        ).all()
        conflicts.extend(tuple(sorted((other, label))) for other in sorted(set(others) - {label}))
    session.add(Provenance(image_id=image.id, source_id=source_id, locator=locator, **provenance))
    return outcome


def standing_rejections(session: Session) -> list[tuple[str, str]]:
    """(source name, reason) of each file or URL rejected at intake and not catalogued since, by its latest
    rejection: one entry a file. `curate status` counts them per source and `curate dedupe` per reason (before,
    dedupe counted every rejection ever recorded, a picture fetched whole since and an old run's reason too)."""
    catalogued = set(session.exec(select(Provenance.source_id, Provenance.locator)).all())
    latest: dict[tuple[int, str], str] = {}
    for source_id, locator, reason in session.exec(
        select(Rejection.source_id, Rejection.locator, Rejection.reason).order_by(Rejection.id)
    ).all():
        latest[(source_id, locator)] = reason
    names = dict(session.exec(select(Source.id, Source.name)).all())
    return [(names[key[0]], reason) for key, reason in latest.items() if key not in catalogued]


def conflicting_labels(session: Session) -> int:
    """Images recorded with two or more prior labels (the same bytes under two diagnoses' folders)."""
    two = (
        select(Provenance.image_id)
        .where(Provenance.prior_label.is_not(None))
        .group_by(Provenance.image_id)
        .having(func.count(func.distinct(Provenance.prior_label)) > 1)
    )
    return session.exec(select(func.count()).select_from(two.subquery())).one()


FILLED_IN = ("case_id", "prior_label", "licence")  # what a re-run may add to an arrival recorded without it


def _fill_in(session: Session, existing: Provenance, given: dict, differs: list[str] | None) -> None:
    """Before: only a case id was filled in; a re-run with --label-from-folders said "already known" per
    diagnosis and stored no label, so mixed-label clusters were never flagged."""
    changed = False
    for name in FILLED_IN:
        new, old = given.get(name), getattr(existing, name)
        if new is None or new == old:
            continue
        if old is None:
            setattr(existing, name, new)
            changed = True
        elif differs is not None:
            differs.append(name)
    if changed:
        session.add(existing)


def known_shas(session: Session) -> frozenset[str]:
    return frozenset(session.exec(select(Image.sha256)).all())
