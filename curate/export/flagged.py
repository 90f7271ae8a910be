"""Sealed versions that hold an image clinicians flagged as identifiable after it was exported.

A version is immutable: a flag (face, tattoo, birthmark) pulled after `curate export` takes the image out of
every later version, but its copy stays in the folders, archives and whatever was shared from them. Nothing
rewrites those here (a version's checksum is its identity); `curate label pull` and `curate status` name them,
so the steward can withdraw the copies.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, select

from curate.export.leakage_report import report_names, version_pages
from curate.label.recompute import identifiable_photos
from curate.numbers import whole_number
from db.models.export import DatasetVersionRecord


@dataclass(frozen=True)
class FlaggedCopies:
    version: str  # NAME@VERSION
    images: list[int]  # image ids in it now flagged identifiable
    folder: str | None  # the version's folder, relative to the workspace, while it is still there
    archive: str | None  # its archive, relative to the workspace, when one was written and is still there
    made: tuple[str, ...] = ()  # its train runs and leakage pages here: its pixels (`runs_by_version`)

    def as_dict(self) -> dict:
        return {
            "version": self.version,
            "images": self.images,
            "folder": self.folder,
            "archive": self.archive,
            "made": list(self.made),
        }


def runs_by_version(root: Path) -> dict[tuple[str, str], list[str]]:
    """The `train run` folders in the workspace's runs/, relative to it, by the (NAME@VERSION, checksum) of the
    version each was trained on: the checksum tells this workspace's version from another's of that name. Read once
    for all versions; a run written elsewhere (`train run`'s default is runs/ in the current folder) is not found.
    With the version's leakage pages in reports/ (written before the flag, its thumbnails), they are what the
    workspace made from a version with its photos' pixels. Before, the warning named the version alone, and a
    steward who did what it said kept a face in runs/…/gradcam/."""
    runs: dict[tuple[str, str], list[str]] = {}
    for meta in sorted([*(root / "runs").glob("*/run.json"), *(root / "runs").glob("*/*/run.json")]):
        try:
            dataset = json.loads(meta.read_text(encoding="utf-8")).get("dataset")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(dataset, dict):
            key = (str(dataset.get("ref")), str(dataset.get("checksum")))
            runs.setdefault(key, []).append(str(meta.parent.relative_to(root)))
    return runs


def flagged_in_versions(session: Session, root: Path) -> list[FlaggedCopies]:
    """Each version whose folder or archive is still in the workspace and holds images whose consensus is now
    "excluded: identifiable features", or their copies (a dedupe cluster). Only the manifests' image ids are
    read (the folder's, else the archive's); one that cannot be read is passed over (`curate versions` names a
    damaged version)."""
    flagged = identifiable_photos(session)  # the flag is on the photo: every copy dedupe joined to it counts
    if not flagged:
        return []
    out, runs, names = [], runs_by_version(root), report_names(root / "reports")  # each read once for all versions
    for record in session.exec(
        select(DatasetVersionRecord).order_by(DatasetVersionRecord.name, DatasetVersionRecord.id)
    ).all():
        archive = record.archive if record.archive and (root / record.archive).is_file() else None
        folder = record.path if (root / record.path / "manifest.csv").is_file() else None
        held = sorted(_image_ids(root, folder, archive) & flagged)
        if held:
            ref = f"{record.name}@{record.version}"
            pages = [str(p.relative_to(root)) for p in version_pages(root / "reports", ref, names) if p.is_file()]
            made = (*runs.get((ref, record.checksum), ()), *pages)
            out.append(FlaggedCopies(ref, held, folder, archive, made))
    return out


def _image_ids(root: Path, folder: str | None, archive: str | None) -> set[int]:
    """The image ids a version's manifest lists: its folder's, else its archive's (a steward who deleted the
    folder may still hold the archive); empty when neither reads."""
    try:
        if folder is not None:
            text = (root / folder / "manifest.csv").read_text(encoding="utf-8")
        elif archive is not None:
            with tarfile.open(root / archive) as tar:  # read up to the manifest, not every member's header
                member = next((m for m in tar if m.name.count("/") == 1 and m.name.endswith("/manifest.csv")), None)
                handle = tar.extractfile(member) if member is not None else None
                text = handle.read().decode("utf-8") if handle is not None else ""
        else:
            return set()
        ids = (row.get("image_id") or "" for row in csv.DictReader(io.StringIO(text)))
        return {k for v in ids if (k := whole_number(v)) is not None}
    except (OSError, tarfile.TarError, UnicodeDecodeError, csv.Error):
        return set()


def flagged_note(found: list[FlaggedCopies], shown: int = 5) -> str:
    """One line for the terminal: which versions, which images, what to do."""
    images = sorted({i for f in found for i in f.images})
    where = ", ".join(
        f.version
        + (f" (and {f.archive})" if f.archive and f.folder else f" (its archive {f.archive})" if f.archive else "")
        for f in found[:shown]
    )
    more = f" and {len(found) - shown} more" if len(found) > shown else ""
    return (
        f"{len(images)} image(s) flagged 'identifiable features' after export (ids {', '.join(map(str, images[:10]))}"
        f"{' …' if len(images) > 10 else ''}) are still in {where}{more}: delete those versions' folders and "
        f"archives{_made_note(found)}, and every copy shared from them; the next export leaves the images out"
    )


def _made_note(found: list[FlaggedCopies], shown: int = 3) -> str:
    """The note's clause naming the train runs and pages the workspace made from those versions; empty if none."""
    made = [m for f in found for m in f.made]
    more = f" and {len(made) - shown} more" if len(made) > shown else ""
    return f", what was made from them here ({', '.join(made[:shown])}{more})" if made else ""
