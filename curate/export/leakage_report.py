"""The leakage audit's HTML page: each suspect pair's two thumbnails side by side, with split, fold and evidence.

Self-contained (thumbnails are small re-encoded JPEGs in base64), every text HTML-escaped, written through
`ws.tmp` into `ws.reports` with private permissions (0600: the photos are clinical).
"""

from __future__ import annotations

import hashlib
import html
import os
from collections.abc import Collection
from pathlib import Path

from curate.dataset import DatasetVersion
from curate.export.leakage import LeakageAudit
from curate.export.writer import recorded_checksum
from curate.files import write_atomic
from curate.imaging import thumbnail
from curate.label.recompute import identifiable_photos
from curate.numbers import whole_number

THUMB_PX = 200
HIDDEN = "<p>not shown: flagged &lsquo;identifiable features&rsquo;</p>"  # the file is listed by name, no thumbnail
CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
h1{font-size:1.4rem} .pair{display:flex;gap:1rem;align-items:flex-start;border-top:1px solid #ccc;padding:.6rem 0}
figure{margin:0;font-size:.8rem;width:210px} figure img{display:block;max-width:200px;max-height:200px}
.why{font-size:.85rem;align-self:center}
"""

SECTIONS = {  # pairs left out of the suspects (`LeakageAudit`'s kinds): title, why, each pair's label
    "stamped": (
        "pairs that share only a stamp",
        "Each pair's keypoints agree in place but its pixels do not, and three or more images are so alike "
        "with each other: a site's watermark on different photos.",
        "stamp",
    ),
    "one_object": (
        "pairs that match on one object only",
        "Each pair's keypoints agree on one object, and what both images show away from it, where it has "
        "texture, differs: a clinic's ruler or colour card beside different lesions.",
        "object",
    ),
}


def _thumb(path: Path) -> str:
    try:
        return "data:image/jpeg;base64," + thumbnail(path.read_bytes(), THUMB_PX)
    except OSError:  # unreadable or not an image (PIL's UnidentifiedImageError is an OSError)
        return ""


def _pair(root: Path, p, anchor: str, label: str, hidden: Collection[str] = ()) -> str:
    """One pair; both thumbnails left out when either file is in `hidden`: the audit found them one photo."""
    e = html.escape
    hide = p.a.file in hidden or p.b.file in hidden
    figs = "".join(
        (
            f"<figure>{HIDDEN}<figcaption>{e(x.part)}<br>{e(x.file)}</figcaption></figure>"
            if hide
            else f"<figure><img alt='{e(x.file)}' src='{_thumb(root / x.file)}'><figcaption>{e(x.part)}<br>"
            f"{e(x.file)}</figcaption></figure>"
        )
        for x in (p.a, p.b)
    )
    why = "the same file, byte for byte" if p.identical else f"{p.inliers} matching keypoints, covering {p.cover:.0%}"
    why += ", mirror image" if p.mirrored else ""
    why += ", one is a panel of the other (a collage)" if p.panel else ""
    return f"<div class='pair' id='{anchor}'>{figs}<div class='why'>{e(label)}: {e(why)}</div></div>"


def render(root: Path, ref: str, audit: LeakageAudit, hidden: Collection[str] = ()) -> str:
    """The page; the files in `hidden` (`identifiable_files`), and the other of each pair they are in, are listed by
    name, without thumbnails."""
    e = html.escape
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Leakage audit {e(ref)}</title>"
        f"<style>{CSS}</style></head><body><h1>Leakage audit of {e(ref)}</h1>",
        f"<p>{e(audit.summary())}.</p><p>Method: {e(audit.method)}.</p>",
    ]
    if audit.suspects > len(audit.pairs):
        out.append(f"<p>The {len(audit.pairs)} strongest of {audit.suspects} pairs are shown.</p>")
    for n, p in enumerate(audit.pairs, 1):
        out.append(_pair(root, p, f"pair{n}", f"#{n}", hidden))
    for kind, (title, why, label) in SECTIONS.items():
        listed, total = getattr(audit, f"{kind}_pairs"), getattr(audit, kind)
        if not listed:
            continue
        out.append(
            f"<h2 id='{kind}'>Left out: {e(title)}</h2><p>{e(why)} Two that are one photo after all are a leak.</p>"
        )
        if total > len(listed):
            out.append(f"<p>The {len(listed)} strongest of {total} pairs are shown.</p>")
        for n, p in enumerate(listed, 1):
            out.append(_pair(root, p, f"{kind}{n}", f"{label} {n}", hidden))
    out.append("</body></html>\n")
    return "\n".join(out)


def page_stem(ref: str) -> str:
    """The name (without .html) of a version's own page in reports/, `leakage-<name>-<version>`."""
    return "leakage-" + ref.replace("@", "-").replace("/", "_")


def report_path(ws, root: Path, ref: str, threshold: int | None = None) -> Path:
    """reports/leakage-<name>-<version>.html. A folder other than the workspace's own version of that name (a
    copy, another workspace's) gets the first digits of its path's SHA-256 after the version: its page must not
    replace the one of the version this workspace exported. An audit at another `threshold` than the calibrated
    one gets `-threshold-N` too: its page replaced the calibrated audit's, whose pairs the dataset card and
    `audit.json` list, with other pairs."""
    stem = page_stem(ref)
    if Path(root).resolve() != DatasetVersion.resolve(ref, ws.root).resolve():
        stem += "-" + hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:8]
    if threshold is not None:
        stem += f"{THRESHOLD_PAGE}{threshold}"
    return ws.reports / (stem + ".html")


THRESHOLD_PAGE = "-threshold-"  # between a page's stem and the threshold it was audited at (`report_path`)


def report_names(reports: Path) -> list[str]:
    """The names in the workspace's `reports` folder, sorted; empty when it cannot be read."""
    try:
        return sorted(p.name for p in reports.iterdir())
    except OSError:
        return []


def version_pages(reports: Path, ref: str, names: list[str] | None = None) -> list[Path]:
    """The pages of the workspace's own version `ref` in `reports`: the calibrated audit's and each other
    threshold's (`report_path`). `names`: `report_names(reports)`, read once by a caller looking at many versions."""
    stem = page_stem(ref)
    names = report_names(reports) if names is None else names
    own = [reports / n for n in names if n == f"{stem}.html"]
    others = {n: n[len(stem + THRESHOLD_PAGE) : -len(".html")] for n in names if n.startswith(stem + THRESHOLD_PAGE)}
    numbered = sorted((k, n) for n, t in others.items() if (k := whole_number(t)) is not None and n.endswith(".html"))
    return own + [reports / n for _, n in numbered]  # by threshold: 5 before 10


def identifiable_files(ws, root: Path) -> set[str]:
    """The version's files (whole and lesion crop) of photos flagged "identifiable features" since it was exported,
    or on a copy in their dedupe cluster (`curate.label.recompute.identifiable_photos`, as every page has them).
    Before, the page showed such a photo (a face) beside its copy, although `curate status` warned of it."""
    with ws.session() as s:
        flagged = identifiable_photos(s)
    version = DatasetVersion.open(root)
    if not flagged or recorded_checksum(ws, version.name, version.version) != version.checksum:
        return set()  # another workspace's version (or an edited copy): its image ids are not this catalogue's
    ids = {str(i) for i in flagged}
    return {r[k] for r in version.rows if r.get("image_id") in ids for k in ("file", "roi_file") if r.get(k)}


def write_report(ws, root: Path, ref: str, audit: LeakageAudit, dest: Path | None = None) -> Path:
    """The page at `dest` (default: `report_path`), mode 0600; returns its path."""
    page = render(root, ref, audit, identifiable_files(ws, root))
    dest = write_atomic(dest or report_path(ws, root, ref), page, tmp_dir=ws.tmp)
    os.chmod(dest, 0o600)
    return dest
