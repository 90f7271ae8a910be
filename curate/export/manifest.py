"""manifest.csv and SHA256SUMS, byte-for-byte deterministic."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from curate.dataset import MANIFEST_COLUMNS, sha256_file


def format_agreement(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def manifest_row(row, sha: str, roi_sha: str) -> dict[str, str]:
    """`row` is a plan Row; the checksums are of the exported bytes."""
    return {
        "file": row.file,
        "roi_file": row.roi_file,
        "sha256": sha,
        "roi_sha256": roi_sha if row.region else "",
        "image_id": str(row.image_id),
        "label": row.label,
        "diagnosis": row.diagnosis,
        "split": row.split,
        "fold": "" if row.fold is None else str(row.fold),
        "source": row.source,
        "licence": row.licence,
        "consensus_method": row.method,
        "n_raters": str(row.n_raters),
        "agreement": format_agreement(row.agreement),
        "roi_box": " ".join(str(v) for v in row.region) if row.region else "",
        "cluster": row.cluster,
        "has_case_id": "yes" if row.has_case_id else "no",
    }


def manifest_csv(rows: list[dict[str, str]]) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def read_manifest(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def sha256sums(root: Path, known: dict[str, str] | None = None) -> bytes:
    """sha256sum-format lines for every file under `root` except SHA256SUMS, sorted by path.

    `known` maps relative paths to digests already computed (the image workers return them).
    """
    known = known or {}
    lines = []
    for p in sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix()):
        rel = p.relative_to(root).as_posix()
        if rel == "SHA256SUMS":
            continue
        lines.append(f"{known.get(rel) or sha256_file(p)}  {rel}\n")
    return "".join(lines).encode("utf-8")
