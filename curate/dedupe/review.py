"""The HTML review sheet: every cluster of two or more images, side by side.

Self-contained (thumbnails are small base64 JPEGs), written to `ws.tmp` and
renamed into `ws.reports`. It shows image ids, sizes, source *names*, the
match kind and similarity to the representative, and the steward's decisions;
never a file path or locator (clinic paths can carry patient names).
"""
from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

from sqlmodel import select

from curate.imaging import thumbnail
from curate.files import write_atomic
from db.models import DedupeMember, DedupeOverride, DedupePair, Image, Provenance, Source
from db.models.label import LabelTask


CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
h1{font-size:1.4rem} h2{font-size:1.05rem;margin:1.4rem 0 .4rem}
.cluster{display:flex;flex-wrap:wrap;gap:.8rem;border-top:1px solid #ccc;padding-top:.6rem}
figure{margin:0;width:172px;font-size:.78rem;border:2px solid transparent;padding:4px}
figure.rep{border-color:#2a7a2a;background:#f0f8f0}
figure.low{opacity:.6}
figure img{display:block;max-width:160px;max-height:160px}
.tag{display:inline-block;background:#2a7a2a;color:#fff;border-radius:3px;padding:0 4px;font-size:.7rem}
.low .tag{background:#999}
table{border-collapse:collapse;font-size:.85rem} td,th{border:1px solid #ccc;padding:2px 6px}
"""


def write_review(ws, name: str = "dedupe-review.html") -> Path:
    """Write the sheet; returns its path under `ws.reports`."""
    with ws.session() as s:
        members = s.exec(select(DedupeMember)).all()
        by_key: dict[str, list[DedupeMember]] = defaultdict(list)
        for m in members:
            by_key[m.cluster_key].append(m)
        multi = {k: v for k, v in by_key.items() if len(v) > 1}
        ids = {m.image_id for v in multi.values() for m in v}
        images = {i.id: i for i in s.exec(select(Image).where(Image.id.in_(ids))).all()} if ids else {}
        sources: dict[int, set[str]] = defaultdict(set)
        for image_id, src in s.exec(
            select(Provenance.image_id, Source.name).join(Source, Source.id == Provenance.source_id).where(Provenance.image_id.in_(ids))
        ).all():
            sources[image_id].add(src)
        pairs = {(p.image_a, p.image_b): p for p in s.exec(select(DedupePair)).all()}
        overrides = s.exec(select(DedupeOverride).order_by(DedupeOverride.id)).all()
        low = sum(m.low_res for m in members)
        labelled = set(s.exec(select(LabelTask.image_id).where(LabelTask.image_id.in_(ids)).distinct()).all()) if ids else set()
        shas = {i: img.sha256 for i, img in images.items()}

    def link(a: int, b: int) -> str:
        p = pairs.get((min(a, b), max(a, b)))
        if p is None:
            return "via cluster"
        extra = f", hamming {p.hamming}" if p.hamming is not None else ""
        return f"{p.kind}, similarity {p.similarity:.3f}{extra}"

    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>Dedupe review</title><style>{CSS}</style></head><body>"]
    out.append("<h1>Dedupe review</h1>")
    out.append(
        f"<p>{len(multi)} clusters of two or more images; {sum(len(v) - 1 for v in multi.values())} duplicates; "
        f"{low} images below the minimum side. The representative (green) is chosen by: already in labelling "
        "(one with a final consensus first), then not low-resolution, most pixels, source priority "
        "(clinic &gt; public &gt; web), earliest.</p>"
    )
    for key in sorted(multi, key=lambda k: (-len(multi[k]), int(k[3:]) if k[3:].isdigit() else 0)):
        group = sorted(multi[key], key=lambda m: (not m.representative, m.image_id))
        rep = group[0].image_id
        out.append(f"<h2 id='{html.escape(key)}'>Cluster {html.escape(key)} — {len(group)} images</h2><div class='cluster'>")
        for m in group:
            img = images[m.image_id]
            try:
                src = f"data:image/jpeg;base64,{thumbnail(ws.store.read(shas[m.image_id]))}"
            except Exception:
                src = ""
            cls = " ".join(c for c, on in (("rep", m.representative), ("low", m.low_res)) if on)
            tag = "<span class='tag'>representative</span><br>" if m.representative else ("<span class='tag'>low-res</span><br>" if m.low_res else "")
            dist = "" if m.representative else f"<br>{html.escape(link(rep, m.image_id))}"
            if m.image_id in labelled:
                dist += "<br>in labelling"
            out.append(
                f"<figure class='{cls}'><img alt='image {m.image_id}' src='{src}'><figcaption>{tag}"
                f"image {m.image_id} · {img.width}×{img.height} {html.escape(img.format)}<br>"
                f"sources: {html.escape(', '.join(sorted(sources[m.image_id])))}{dist}</figcaption></figure>"
            )
        out.append("</div>")
    if overrides:
        out.append("<h2>Steward decisions</h2><table><tr><th>images</th><th>decision</th><th>note</th></tr>")
        for o in overrides:
            out.append(f"<tr><td>{o.image_a} – {o.image_b}</td><td>{html.escape(o.action)}</td><td>{html.escape(o.note or '')}</td></tr>")
        out.append("</table>")
    out.append("</body></html>\n")
    return write_atomic(ws.reports / name, "\n".join(out), tmp_dir=ws.tmp)
