"""The HTML review sheet: what the steward must look at, first.

Order: (1) pairs "to review" (not merged: near a threshold, the stages
disagree, or verified with one member but not every member of a cluster),
then the pictures kept apart because they share a site's stamp, each such
group once (`curate.dedupe.pairs.stamps`: dozens of pairs, one look), then those
kept apart because they share one object, three or more joined (a ruler, a site's
banner: `_shared_object`);
(2) clusters whose members arrived with different prior labels (intake
provenance); (3) the other clusters, largest first. Every pair and member
carries the exact `curate dedupe merge A B` / `curate dedupe split A B`
command. Self-contained (thumbnails are small base64 JPEGs), written to
`ws.tmp` and renamed into `ws.reports`. Shows ids, sizes, source *names* and
prior labels, never a file path or locator (clinic paths can carry patient
names). All text is HTML-escaped. Which images are already in labelling is the
caller's to say (`in_labelling`: the CLI reads it from the label stage), so this
module never imports the stage above it.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Collection
from pathlib import Path

from scipy.cluster.hierarchy import DisjointSet
from sqlmodel import select

from curate.dedupe.cluster import COLLAGE, NOT_EDGES, Edge, stamped, unmerged
from curate.dedupe.verify import ONE_OBJECT
from curate.files import write_atomic
from curate.imaging import thumbnail
from db.models import DedupeMember, DedupeOverride, DedupePair, Image, Provenance, Source

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
.pair{display:flex;gap:.8rem;align-items:flex-start;border-top:1px solid #ccc;padding-top:.6rem}
.mixed{color:#a33;font-weight:600} code{background:#f3f3f3;padding:0 3px;display:inline-block}
.why{font-size:.8rem;max-width:28rem}
"""


def _collect(ws, in_labelling: Collection[int]) -> dict:
    """Everything the sheet shows, read in one session."""
    with ws.session() as s:
        members = s.exec(select(DedupeMember)).all()
        key_of = {m.image_id: m.cluster_key for m in members}
        pairs = s.exec(select(DedupePair)).all()
        overrides = s.exec(select(DedupeOverride).order_by(DedupeOverride.id)).all()
        decided = {(o.image_a, o.image_b) for o in overrides}
        roots = {m.image_id: m.cluster_key for m in members}
        edges = [Edge(p.image_a, p.image_b, p.kind, p.similarity) for p in pairs if p.kind not in NOT_EDGES]
        by_pair = {(p.image_a, p.image_b): p for p in pairs}
        review = [by_pair[(e.a, e.b)] for e in unmerged(edges, roots, decided)]
        review += [
            p
            for p in pairs
            if p.kind == "review"
            and key_of.get(p.image_a) != key_of.get(p.image_b)
            and (p.image_a, p.image_b) not in decided
        ]
        by_key: dict[str, list[DedupeMember]] = defaultdict(list)
        for m in members:
            by_key[m.cluster_key].append(m)
        multi = {k: v for k, v in by_key.items() if len(v) > 1}
        ids = {m.image_id for v in multi.values() for m in v} | {i for p in review for i in (p.image_a, p.image_b)}
        images = {i.id: i for i in s.exec(select(Image).where(Image.id.in_(ids))).all()} if ids else {}
        sources: dict[int, set[str]] = defaultdict(set)
        labels: dict[int, set[str]] = defaultdict(set)
        for image_id, src, label in s.exec(
            select(Provenance.image_id, Source.name, Provenance.prior_label)
            .join(Source, Source.id == Provenance.source_id)
            .where(Provenance.image_id.in_(ids))
        ).all():
            sources[image_id].add(src)
            if label:
                labels[image_id].add(label)
        labelled = set(in_labelling) & ids
        low = sum(m.low_res for m in members)
    return dict(
        multi=multi,
        review=review,
        images=images,
        sources=sources,
        labels=labels,
        labelled=labelled,
        by_pair=by_pair,
        overrides=overrides,
        low=low,
    )


def _figure(ws, d: dict, image_id: int, extra: str = "", cls: str = "") -> str:
    img = d["images"][image_id]
    try:
        src = f"data:image/jpeg;base64,{thumbnail(ws.store.read(img.sha256))}"
    except Exception:
        src = ""
    label = ", ".join(sorted(d["labels"][image_id])) or "none"
    where = ", ".join(sorted(d["sources"][image_id]))
    return (
        f"<figure class='{cls}'><img alt='image {image_id}' src='{src}'><figcaption>{extra}"
        f"image {image_id} · {img.width}×{img.height} {html.escape(img.format)}<br>"
        f"prior label: {html.escape(label)}<br>sources: {html.escape(where)}"
        f"{'<br>in labelling' if image_id in d['labelled'] else ''}</figcaption></figure>"
    )


def _mixed(d: dict, group) -> bool:
    return len({lab for m in group for lab in d["labels"][m.image_id]}) > 1


def write_review(ws, name: str = "dedupe-review.html", in_labelling: Collection[int] = ()) -> Path:
    """Write the sheet; returns its path under `ws.reports`. `in_labelling`: ids of images that
    already have a labelling task (marked on the sheet)."""
    d = _collect(ws, in_labelling)
    multi, review = d["multi"], d["review"]

    def link(a: int, b: int) -> str:
        p = d["by_pair"].get((min(a, b), max(a, b)))
        if p is None:
            return "via cluster"
        extra = f", hamming {p.hamming}" if p.hamming is not None else ""
        why = f"; {p.reason}" if p.reason else ""
        return f"{p.kind}, similarity {p.similarity:.3f}{extra}{why}"

    stamp = [p for p in review if stamped(p.kind, p.reason)]
    review = [p for p in review if not stamped(p.kind, p.reason)]
    shared = _shared_object(review)
    grouped = {(p.image_a, p.image_b) for p in shared}
    review = [p for p in review if (p.image_a, p.image_b) not in grouped]
    mixed = sorted((k for k in multi if _mixed(d, multi[k])), key=lambda k: (-len(multi[k]), k))
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Dedupe "
        f"review</title><style>{CSS}</style></head><body>"
    ]
    out.append("<h1>Dedupe review</h1>")
    out.append(
        f"<p>{len(review)} pairs to review (not merged); {len(stamp)} pairs kept apart as sharing a stamp; "
        f"{len(shared)} pairs kept apart as sharing one object; "
        f"{len(mixed)} clusters with mixed prior labels; "
        f"{len(multi)} clusters of two or more images; {sum(len(v) - 1 for v in multi.values())} duplicates; "
        f"{d['low']} images below the minimum side. The representative (green) is chosen by: already in labelling "
        "(one with a final consensus first), then not low-resolution, most pixels, source priority "
        "(clinic &gt; public &gt; web), earliest. Each decision is one command; every later run keeps it.</p>"
    )
    if review:
        out.append("<h2 id='to-review'>To review — not merged until you decide</h2>")
    for p in sorted(review, key=lambda p: (-p.similarity, p.image_a, p.image_b)):
        a, b = p.image_a, p.image_b
        why = (
            p.reason
            if p.kind == "review"
            else f"verified as the same photo ({p.reason or p.kind}) but not against every member of the other's "
            "cluster"
        )
        hint = (  # a collage and a photo it holds (`verify.paneled`): "same photo" or not does not say it
            "a collage and a photo in it: keep one of them (merge), or both (split) and let the raters label the "
            "collage as a whole (not assessable when its photos differ)<br>"
            if (p.reason or "").startswith(COLLAGE)
            else ""
        )
        out.append(
            f"<div class='pair'>{_figure(ws, d, a)}{_figure(ws, d, b)}<div class='why'>"
            f"{html.escape(why)}<br>hash correlation {p.similarity:.3f}<br>{hint}"
            f"same photo: <code>{html.escape(f'curate dedupe merge {a} {b}')}</code><br>"
            f"different photos: <code>{html.escape(f'curate dedupe split {a} {b}')}</code></div></div>"
        )
    out += _kept_apart(ws, d, stamp, "stamps", STAMP_GROUPS)
    out += _kept_apart(ws, d, shared, "objects", OBJECT_GROUPS)
    rest = sorted(
        (k for k in multi if k not in mixed), key=lambda k: (-len(multi[k]), int(k[3:]) if k[3:].isdigit() else 0)
    )
    for key in mixed + rest:
        group = sorted(multi[key], key=lambda m: (not m.representative, m.image_id))
        rep = group[0].image_id
        flag = " <span class='mixed'>mixed prior labels</span>" if key in mixed else ""
        out.append(
            f"<h2 id='{html.escape(key)}'>Cluster {html.escape(key)} — {len(group)} images{flag}</h2><div "
            "class='cluster'>"
        )
        for m in group:
            cls = " ".join(c for c, on in (("rep", m.representative), ("low", m.low_res)) if on)
            tag = (
                "<span class='tag'>representative</span><br>"
                if m.representative
                else ("<span class='tag'>low-res</span><br>" if m.low_res else "")
            )
            if not m.representative:
                cmd = f"curate dedupe split {m.image_id} {rep}"
                tag += (
                    f"{html.escape(link(rep, m.image_id))}<br>not the same photo: <code>{html.escape(cmd)}</code><br>"
                )
            out.append(_figure(ws, d, m.image_id, tag, cls))
        out.append("</div>")
    if d["overrides"]:
        out.append("<h2>Steward decisions</h2><table><tr><th>images</th><th>decision</th><th>note</th></tr>")
        for o in d["overrides"]:
            out.append(
                f"<tr><td>{o.image_a} – "
                f"{o.image_b}</td><td>{html.escape(o.action)}</td><td>{html.escape(o.note or '')}</td></tr>"
            )
        out.append("</table>")
    out.append("</body></html>\n")
    return write_atomic(ws.reports / name, "\n".join(out), tmp_dir=ws.tmp)


STAMP_GROUPS = (
    "Kept apart — pictures that share only a stamp",
    "Each group's pictures match each other on marks in the same place (a stock site's or an atlas's watermark) "
    "while their pixels differ, so none was merged.",
)
OBJECT_GROUPS = (
    "Kept apart — pictures that share only one object",
    "Each group's pictures match each other on one object alone (a clinic's ruler or label, a site's banner "
    "along one side) while the rest of them differs, so none was merged.",
)
OBJECT_GROUP = 3  # one-object pairs joining this many pictures or more are shown as a group (`_shared_object`)


def _shared_object(review: list) -> list:
    """The "review" pairs on one object only (`verify.one_object`, `verify.banded`) that join `OBJECT_GROUP` or
    more pictures: one site's banner over 60 different photos made 127 such pairs on `bench/dedupe.py
    --templates`, one look as a group; a pair of two pictures alone stays among the pairs to review."""
    pairs = [p for p in review if p.kind == "review" and (p.reason or "").startswith(ONE_OBJECT)]
    groups = _joined(pairs)
    return [p for p in pairs if len(groups.subset(p.image_a)) >= OBJECT_GROUP]


def _joined(pairs: list) -> DisjointSet:
    """The pictures of `pairs`, joined by them."""
    groups = DisjointSet()
    for p in pairs:
        groups.add(p.image_a)
        groups.add(p.image_b)
        groups.merge(p.image_a, p.image_b)
    return groups


def _kept_apart(ws, d: dict, pairs: list, anchor: str, words: tuple[str, str]) -> list[str]:
    """Pictures kept apart for sharing a stamp or one object, one block per group of them (joined by such
    pairs), each picture once: a site's previews give dozens of pairs that one look settles."""
    if not pairs:
        return []
    groups = _joined(pairs)
    title, why = words
    out = [
        f"<h2 id='{anchor}'>{html.escape(title)}</h2><p class='why'>{html.escape(why)} Two of them that are one "
        "photo after all: <code>curate dedupe merge A B</code>.</p>"
    ]
    for members in sorted((sorted(g) for g in groups.subsets()), key=lambda g: (-len(g), g[0])):
        n = sum(1 for p in pairs if p.image_a in members and p.image_b in members)
        out.append(f"<p>{len(members)} pictures, {n} pair{'s' * (n != 1)}</p><div class='cluster'>")
        out += [_figure(ws, d, i) for i in members]
        out.append("</div>")
    return out
