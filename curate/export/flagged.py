"""Sealed versions that hold an image clinicians flagged as identifiable after it was exported.

A version is immutable: a flag (face, tattoo, birthmark) pulled after `curate export` takes the image out of
every later version, but its copy stays in the folders, archives and whatever was shared from them. Nothing
rewrites those here (a version's checksum is its identity); `curate label pull` and `curate status` name them,
so the steward can withdraw the copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, select

from curate.dataset import DatasetError, DatasetVersion
from curate.label.diagnoses import IDENTIFIABLE
from db.models.export import DatasetVersionRecord
from db.models.label import Consensus


@dataclass(frozen=True)
class FlaggedCopies:
    version: str  # NAME@VERSION
    images: list[int]  # image ids in it now flagged identifiable
    folder: str  # the version's folder, relative to the workspace
    archive: str | None  # its archive, relative to the workspace, when one was written and is still there

    def as_dict(self) -> dict:
        return {"version": self.version, "images": self.images, "folder": self.folder, "archive": self.archive}


def flagged_in_versions(session: Session, root: Path) -> list[FlaggedCopies]:
    """Each version whose folder is still in the workspace and holds images whose consensus is now "excluded:
    identifiable features" (its manifest read; a version that no longer opens is left to `curate versions`)."""
    flagged = set(
        session.exec(
            select(Consensus.image_id).where(Consensus.status == "excluded", Consensus.exclusion == IDENTIFIABLE)
        ).all()
    )
    if not flagged:
        return []
    out = []
    for record in session.exec(
        select(DatasetVersionRecord).order_by(DatasetVersionRecord.name, DatasetVersionRecord.id)
    ).all():
        try:
            rows = DatasetVersion.open(root / record.path).rows
        except DatasetError:
            continue
        held = sorted(i for row in rows if (i := int(row["image_id"])) in flagged)
        if held:
            archive = record.archive if record.archive and (root / record.archive).exists() else None
            out.append(FlaggedCopies(f"{record.name}@{record.version}", held, record.path, archive))
    return out


def flagged_note(found: list[FlaggedCopies], shown: int = 5) -> str:
    """One line for the terminal: which versions, which images, what to do."""
    images = sorted({i for f in found for i in f.images})
    where = ", ".join(f.version + (f" (and {f.archive})" if f.archive else "") for f in found[:shown])
    more = f" and {len(found) - shown} more" if len(found) > shown else ""
    return (
        f"{len(images)} image(s) flagged 'identifiable features' after export (ids {', '.join(map(str, images[:10]))}"
        f"{' …' if len(images) > 10 else ''}) are still in {where}{more}: delete those versions' folders and "
        "archives, and every copy shared from them; the next export leaves the images out"
    )
