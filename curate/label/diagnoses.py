"""The diagnosis vocabulary shared by label_config.xml, consensus and export.

The binary target is derived from the diagnosis here and nowhere else.
"""
from __future__ import annotations

# slug -> the choice value shown in Label Studio (label_config.xml must match)
DIAGNOSES: dict[str, str] = {
    "mpox": "Mpox",
    "genital_herpes": "Genital herpes",
    "genital_warts": "Genital warts",
    "primary_syphilis": "Primary syphilis",
    "secondary_syphilis": "Secondary syphilis",
    "molluscum_contagiosum": "Molluscum contagiosum",
    "dermatosis": "Dermatosis",
    "healthy_skin": "Healthy skin",
    "other": "Other / not assessable",
}
BY_CHOICE: dict[str, str] = {v: k for k, v in DIAGNOSES.items()}
NOT_ASSESSABLE = "other"
BINARY_CLASSES = ("mpox", "non_mpox")

# Consensus outcomes (db.models.label.Consensus.status); FINAL ones carry a diagnosis and are exportable.
STATUSES = ("pending", "agreed", "adjudicated", "discarded", "excluded")
FINAL = ("agreed", "adjudicated")

# Exclusion flags: slug -> choice value in the "flags" control of label_config.xml.
IDENTIFIABLE = "identifiable_features"
LOW_QUALITY = "low_quality"
FLAGS: dict[str, str] = {
    IDENTIFIABLE: "Identifiable features (face, tattoo, birthmark)",
    LOW_QUALITY: "Image quality too low",
}
FLAG_BY_CHOICE: dict[str, str] = {v: k for k, v in FLAGS.items()}

# Control names in label_config.xml.
DIAGNOSIS_CONTROL = "diagnosis"
FLAGS_CONTROL = "flags"
BOX_CONTROL = "lesion"
COMMENT_CONTROL = "comment"
IMAGE_OBJECT = "image"


def binary_label(diagnosis: str | None) -> str | None:
    """mpox vs non_mpox; None for 'other / not assessable' (it belongs to neither class)."""
    if diagnosis is None or diagnosis == NOT_ASSESSABLE:
        return None
    if diagnosis not in DIAGNOSES:
        raise ValueError(f"unknown diagnosis {diagnosis!r}")
    return "mpox" if diagnosis == "mpox" else "non_mpox"

# Adjudication (curate/label/adjudication.py): the reviewer's "neither" and the raters' read-only boxes.
NEITHER = "neither"  # recorded as the review's diagnosis; consensus discards the image
NEITHER_CHOICE = "Neither (discard this image)"
RATER_BOXES_CONTROL = "rater_boxes"
