"""`curate status`: where every image stands, from the catalogue alone."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, select

from curate.dedupe import cluster_map
from curate.intake.incoming import INCOMING
from curate.label.rounds import rated_image_ids, unrated_image_ids
from curate.privacy import exposure
from db.models import CommandRun, Consensus, Image, Provenance, Rejection, Source
from db.models.export import DatasetVersionRecord


def catalogue_status(session: Session) -> dict:
    images = session.exec(select(func.count()).select_from(Image)).one()
    by_source = []
    for name, kind, n_img, n_arr in session.exec(
        select(Source.name, Source.kind, func.count(func.distinct(Provenance.image_id)), func.count(Provenance.id))
        .join(Provenance, Provenance.source_id == Source.id, isouter=True)
        .group_by(Source.id, Source.name, Source.kind)
        .order_by(Source.name)
    ).all():
        rejected = session.exec(
            select(func.count(func.distinct(Rejection.locator)))
            .select_from(Rejection)
            .join(Source)
            .where(Source.name == name)
        ).one()
        by_source.append({"source": name, "kind": kind, "images": n_img, "arrivals": n_arr, "rejected_files": rejected})

    by_label: dict[str, int] = {}
    for label, n in session.exec(
        select(Provenance.prior_label, func.count(func.distinct(Provenance.image_id))).group_by(Provenance.prior_label)
    ).all():
        by_label[label or "(none)"] = n

    consensus = dict(session.exec(select(Consensus.status, func.count()).group_by(Consensus.status)).all())
    clusters = cluster_map(session)
    stages = {
        "ingested": images,
        "dedupe_clusters": len(set(clusters.values())),
        "to_label": len(unrated_image_ids(session)),  # what `curate label push` would still send
        "in_label_rounds": len(rated_image_ids(session)),
        **{f"label_{k}": v for k, v in sorted(consensus.items())},
        "flagged_gps": session.exec(select(func.count()).select_from(Image).where(Image.has_gps)).one(),
        "flagged_camera_serial": session.exec(
            select(func.count()).select_from(Image).where(Image.has_camera_serial)
        ).one(),
    }
    stages["dataset_versions"] = session.exec(select(func.count()).select_from(DatasetVersionRecord)).one()
    unfinished = session.exec(select(func.count()).select_from(CommandRun).where(CommandRun.status == "running")).one()
    return {
        "images": images,
        "by_source": by_source,
        "by_prior_label": by_label,
        "stages": stages,
        "unfinished_runs": unfinished,
    }


def exposed_entries(ws) -> list[dict]:
    """What in the workspace other local users may read, by top-level entry (a source under incoming/ apart),
    each with how many files and folders in it are open: never a deeper path, which can name a patient."""
    found = exposure(ws.private_paths(), base=ws.root, deeper=(INCOMING,))
    return [{"path": path, **counts} for path, counts in found.items()]
