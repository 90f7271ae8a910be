"""Why each catalogue image is not in an export: exactly one reason per image, counted.

`curate export` prints every reason with its count (and in --json), so an external set that loses
most of its images says so on the terminal. The consensus reasons also go into the dataset card;
the catalogue-wide ones (duplicates, low resolution, not yet labelled) change whenever images are
ingested, so they stay out of the card and the fingerprint (a re-export would otherwise differ).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from sqlmodel import Session, select

from curate.label.diagnoses import FINAL, NOT_ASSESSABLE
from db.models import DedupeMember, Image
from db.models.label import Consensus

# left out by the export's plan (`plan._copies_left_out`) despite an exportable consensus
CONFLICTING_COPIES = "conflicting_copies"
IDENTIFIABLE_COPY = "identifiable_copy"

# reason -> what it means for a reader, in the order shown
REASONS: dict[str, str] = {
    NOT_ASSESSABLE: "clinicians chose 'not assessable'",
    "identifiable_features": "flagged: identifiable features (face, tattoo, birthmark)",
    "low_quality": "flagged: image quality too low (rule: curate label pull --low-quality)",
    "discarded": "no consensus among three clinicians",
    IDENTIFIABLE_COPY: "a copy of a photo flagged identifiable on another copy (dedupe cluster)",
    CONFLICTING_COPIES: "copies of one photo labelled with different diagnoses (dedupe cluster)",
    "pending": "labelling not finished (awaiting raters or a review)",
    "duplicate": "near-duplicate of its cluster's representative (labelled once)",
    "low_resolution": "smaller than dedupe's --min-side, never sent to labelling",
    "not_labelled": "not yet sent to labelling (curate label push)",
}


def consensus_reason(c: Consensus) -> str | None:
    """None when the consensus is exportable (a final, assessable diagnosis)."""
    if c.status in FINAL:
        return NOT_ASSESSABLE if c.diagnosis in (None, NOT_ASSESSABLE) else None
    if c.status == "excluded":
        return c.exclusion or "excluded"
    return c.status


def ordered(counts: Counter) -> dict[str, int]:
    """Known reasons in REASONS order, then any other (e.g. an older exclusion code), alphabetically."""
    known = [r for r in REASONS if counts.get(r)]
    return {r: counts[r] for r in known + sorted(set(counts) - set(REASONS)) if counts[r]}


def consensus_exclusions(consensus: list[Consensus], left_out: Mapping[int, str]) -> dict[str, int]:
    """Labelled images that are not exported, by reason (deterministic from the consensus: for the card);
    `left_out`: images the plan left out despite an exportable consensus, with their reason."""
    return ordered(Counter(r for c in consensus if (r := left_out.get(c.image_id) or consensus_reason(c))))


def catalogue_exclusions(s: Session, exported: set[int], left_out: Mapping[int, str]) -> dict[str, int]:
    """Every catalogue image not in `exported`, by reason: the plan's (`left_out`), the consensus reasons, then
    dedupe's, then unlabelled."""
    consensus = {c.image_id: c for c in s.exec(select(Consensus)).all()}
    members = {m.image_id: m for m in s.exec(select(DedupeMember)).all()}
    counts: Counter = Counter()
    for image_id in s.exec(select(Image.id)).all():
        if image_id in exported:
            continue
        c, m = consensus.get(image_id), members.get(image_id)
        if c is not None:
            counts[left_out.get(image_id) or consensus_reason(c) or "unspecified"] += 1
        elif m is not None and not m.representative:
            counts["duplicate"] += 1
        elif m is not None and m.low_res:
            counts["low_resolution"] += 1
        else:
            counts["not_labelled"] += 1
    return ordered(counts)
