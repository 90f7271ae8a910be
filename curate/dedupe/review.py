"""The HTML review sheet: what the steward must look at, first.

Order: (1) pairs "to review" (not merged: near a threshold, the stages
disagree, or verified with one member but not every member of a cluster),
grouped by the two clusters each would join, one decision a group
(`_review_groups`), then the pictures kept apart because they share a site's
stamp, each such group once (`curate.dedupe.pairs.stamps`: dozens of pairs, one look), then those
kept apart because they share one object, three or more joined (a ruler, a site's
banner: `_shared_object`);
(2) clusters whose members arrived with different prior labels (intake
provenance); (3) the other clusters, largest first. Every group of pairs
to review carries the exact `curate dedupe merge A B …` / `curate dedupe split
A B…` commands, every pair in the JSON its own, every member its split.
Self-contained (thumbnails are small base64 JPEGs), written to
`ws.tmp` and renamed into `ws.reports`. Shows ids, sizes, source *names* and
prior labels, never a file path or locator (clinic paths can carry patient
names). All text is HTML-escaped. Which images are already in labelling is the
caller's to say (`in_labelling`: the CLI reads it from the label stage), so this
module never imports the stage above it. The sheet is rendered from `review_items`' plain data, which
`curate dedupe review --json` prints: the same lists, in the same order, with the same commands. A browser
opens the sheet, so it shows the first groups of pairs to review, whole, until `SHEET_PAIRS` pairs, and
`SHEET_CLUSTERS` groups and clusters of each kind, and says how many more the JSON lists.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Collection
from pathlib import Path
from types import SimpleNamespace

from scipy.cluster.hierarchy import DisjointSet
from sqlmodel import select

from curate.dedupe import undecided
from curate.dedupe.cluster import COLLAGE, KEEP, cluster_key, stamped
from curate.dedupe.fidelity import LOSSLESS_FILES
from curate.dedupe.overrides import when
from curate.dedupe.verify import ONE_OBJECT
from curate.files import write_atomic
from curate.imaging import thumbnail
from curate.numbers import whole_number
from db.models import DedupeCode, DedupeMember, DedupeOverride, DedupePair, Image, Provenance, Source

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
.pair{display:flex;flex-wrap:wrap;gap:.4rem .8rem;align-items:flex-start;border-top:1px solid #ccc;padding-top:.6rem}
.pair .head{flex-basis:100%;margin:0;font-size:.85rem}
.sides{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center} .vs{font-size:.8rem;color:#666}
.mixed{color:#a33;font-weight:600} code{background:#f3f3f3;padding:0 3px;display:inline-block}
.why{font-size:.8rem;max-width:28rem}
"""


def _collect(ws, in_labelling: Collection[int]) -> dict:
    """Everything the sheet shows, read in one session; members, pairs and images as plain rows (attributes
    by column name), not ORM objects: at 100,000 images these were 300,000 objects and 5 of the sheet's 11 s."""
    with ws.session() as s:
        member = (DedupeMember.image_id, DedupeMember.cluster_key, DedupeMember.representative, DedupeMember.low_res)
        members = s.exec(select(*member)).all()
        key_of = {m.image_id: m.cluster_key for m in members}
        pair = (DedupePair.image_a, DedupePair.image_b, DedupePair.kind, DedupePair.similarity, DedupePair.hamming)
        pairs = s.exec(select(*pair, DedupePair.reason)).all()
        overrides = s.exec(select(DedupeOverride).order_by(DedupeOverride.id)).all()
        splits = {(o.image_a, o.image_b) for o in overrides if o.action == "split"}
        kept = {o.image_a for o in overrides if o.action == KEEP}
        by_pair = {(p.image_a, p.image_b): p for p in pairs}
        merged = {(o.image_a, o.image_b): _held_apart(o, by_pair) for o in overrides if o.action == "merge"}
        found = [*((p.image_a, p.image_b, p.kind) for p in pairs), *((a, b, "merge") for a, b in merged)]
        # the pairs `curate status` counts undecided, by the same rule (before: status counted a merge that a split
        # held apart, and a pixel twin's pair, that the sheet never showed)
        review = [merged.get(ab) or by_pair[ab] for ab in undecided(found, key_of, splits)]
        by_key: dict[str, list] = defaultdict(list)
        for m in members:
            by_key[m.cluster_key].append(m)
        multi = {k: v for k, v in by_key.items() if len(v) > 1}
        ids = {m.image_id for v in multi.values() for m in v} | {i for p in review for i in (p.image_a, p.image_b)}
        image = (Image.id, Image.sha256, Image.width, Image.height, Image.format)
        images = {i.id: i for i in s.exec(select(*image).where(Image.id.in_(ids))).all()} if ids else {}
        saved = select(DedupeCode.image_id, DedupeCode.quality).where(DedupeCode.image_id.in_(ids))
        quality = {i: q for i, q in s.exec(saved).all() if q is not None} if ids else {}
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
        workspace=ws.w_option(),  # on every command (`_command`)
        multi=multi,
        review=review,
        key_of=key_of,
        members_of=by_key,
        images=images,
        quality=quality,
        sources=sources,
        labels=labels,
        labelled=labelled,
        by_pair=by_pair,
        overrides=overrides,
        kept=kept,
        low=low,
    )


HELD_APART = (
    "you merged them, but a split of yours keeps one's cluster from the other's (a picture exactly like one of them, "
    "or merged with one, split from the other): the merge of both clusters takes that split over; a split of these "
    "two takes the merge back (`curate dedupe decisions`)"
)


def _held_apart(merge, by_pair: dict) -> SimpleNamespace:
    """A merge the clustering could not honour, as the sheet shows a pair to review (`curate.dedupe.undecided`): by
    the steward's word one photo, so it is decided again, one way or the other."""
    found = by_pair.get((merge.image_a, merge.image_b))
    return SimpleNamespace(
        image_a=merge.image_a,
        image_b=merge.image_b,
        kind="merge",
        similarity=found.similarity if found is not None else 1.0,
        hamming=found.hamming if found is not None else None,
        reason=HELD_APART,
    )


def _info(d: dict, image_id: int) -> dict:
    """What the sheet says of one picture: id, size, format and the quality it was saved at (a JPEG's, read off
    its tables: `curate.dedupe.fidelity.quality`; None unknown), prior labels, sources, in labelling; never a
    file name, path or locator."""
    img = d["images"][image_id]
    return {
        "image": image_id,
        "width": img.width,
        "height": img.height,
        "format": img.format,
        "quality": d["quality"].get(image_id),
        "prior_labels": sorted(d["labels"][image_id]),
        "sources": sorted(d["sources"][image_id]),
        "in_labelling": image_id in d["labelled"],
    }


def _mixed(d: dict, group) -> bool:
    return len({lab for m in group for lab in d["labels"][m.image_id]}) > 1


def _pair_to_review(d: dict, p) -> dict:
    a, b = p.image_a, p.image_b
    why = (
        p.reason
        if p.kind in ("review", "merge")
        else f"verified as the same photo ({p.reason or p.kind}) but not against every member of the other's cluster"
    )
    hint = (  # a collage and a photo it holds (`verify.paneled`): "same photo" or not does not say it
        "a collage and a photo in it: keep one of them (merge), or both (split) and let the raters label the "
        "collage as a whole (not assessable when its photos differ)"
        if (p.reason or "").startswith(COLLAGE)
        else None
    )
    return {
        "image_a": a,
        "image_b": b,
        "kind": p.kind,
        "similarity": round(p.similarity, 3),
        "reason": why,
        "hint": hint,
        "merge": _command(d, "merge", a, b),
        "split": _command(d, "split", a, b),
        "images": [_info(d, a), _info(d, b)],
    }


def _review_groups(d: dict, pairs: list[dict]) -> list[dict]:
    """The pairs to review (`_pair_to_review`, most alike first) grouped by the two clusters each would join: one
    decision a group, since its merge (`_merge_both`) makes the two clusters one and its splits decide every pair;
    a sheet of pairs left the steward to find that out: on `bench/dedupe.py` (v6) 113 pairs to review were 57
    groups, on the retouched skin photos 194 were 106 (bench/README.md). Groups whose prior labels mix first (is
    the mpox photo a herpes photo's copy?), counting every picture of both clusters, as the merge joins them all,
    then the most alike. Each pair gets its group's place."""
    key_of = d["key_of"]

    def cluster_of(i: int) -> str:  # an image no run has clustered yet is its own (`cluster_map`)
        return key_of.get(i) or cluster_key(i)

    by: dict[tuple[str, str], list[dict]] = {}
    for p in pairs:
        by.setdefault(tuple(sorted(map(cluster_of, (p["image_a"], p["image_b"])), key=_key_order)), []).append(p)
    groups = []
    for keys, ps in by.items():
        sides: tuple[set[int], set[int]] = (set(), set())
        partners: dict[int, set[int]] = defaultdict(set)
        for p in ps:
            a, b = p["image_a"], p["image_b"]
            if cluster_of(a) != keys[0]:
                a, b = b, a
            sides[0].add(a)
            sides[1].add(b)
            partners[a].add(b)
            partners[b].add(a)
        # "different photos": each picture of the side with fewer, split from its partners (one command each)
        few = min((0, 1), key=lambda k: (len(sides[k]), min(sides[k])))
        named = sides[0] | sides[1]
        everyone = named | {m.image_id for k in keys for m in d["members_of"].get(k, ())}  # what the merge joins
        groups.append(
            {
                "clusters": list(keys),
                "sizes": [len(d["members_of"].get(k, ())) or 1 for k in keys],
                "similarity": ps[0]["similarity"],
                "mixed_prior_labels": len({lab for i in everyone for lab in d["labels"][i]}) > 1,
                "images": [[_info(d, i) for i in sorted(side)] for side in sides],
                "also": sorted(everyone - named),  # in the two clusters, named by no pair here: merged too
                "pairs": [
                    {k: p[k] for k in ("image_a", "image_b", "kind", "similarity", "reason", "hint")} for p in ps
                ],
                "merge": _merge_both(d, everyone, ps[0]),
                "split": [_command(d, "split", i, *sorted(partners[i])) for i in sorted(sides[few])],
            }
        )
    groups.sort(key=lambda g: (not g["mixed_prior_labels"], -g["similarity"], [_key_order(k) for k in g["clusters"]]))
    place = {(p["image_a"], p["image_b"]): n for n, g in enumerate(groups) for p in g["pairs"]}
    for p in pairs:
        p["group"] = place[(p["image_a"], p["image_b"])]
    return groups


def _merge_both(d: dict, everyone: set[int], strongest: dict) -> str:
    """The command that makes the two clusters one: every picture of both in one merge, the most alike pair's
    first. A merge of one pair alone makes those two a unit and lets the rest of each cluster join only where it
    matches every member of the other (`curate.dedupe.cluster`): on v6 9 of 15 such groups kept pairs to review
    after it, and one photo moved to the other cluster without its copies."""
    a, b = strongest["image_a"], strongest["image_b"]
    return _command(d, "merge", a, b, *sorted(everyone - {a, b}))


def _command(d: dict, verb: str, *ids: int) -> str:
    """`curate dedupe VERB IDS…`, naming the workspace when the sheet was made from outside it: pasted in
    another folder, a bare decision went into the catalogue of whatever workspace that was."""
    return " ".join(["curate dedupe", verb, *map(str, ids), *d["workspace"]])


def _key_order(key: str) -> tuple[int, str]:
    """Cluster keys (`img<id>`) in the order of their ids, not their text (img9 before img10)."""
    return (whole_number(key[3:]) or 0, key)


def _groups(d: dict, pairs: list) -> list[dict]:
    """Pictures kept apart for sharing a stamp or one object, one entry per group joined by such pairs."""
    if not pairs:
        return []
    joined = _joined(pairs)
    return [
        {
            "pairs": sum(1 for p in pairs if p.image_a in members and p.image_b in members),
            "images": [_info(d, i) for i in members],
        }
        for members in sorted((sorted(g) for g in joined.subsets()), key=lambda g: (-len(g), g[0]))
    ]


def _cluster(d: dict, key: str, group: list, mixed: bool) -> dict:
    group = sorted(group, key=lambda m: (not m.representative, m.image_id))
    rep = group[0].image_id

    def link(a: int, b: int) -> str:
        p = d["by_pair"].get((min(a, b), max(a, b)))
        if p is None:
            return "via cluster"
        extra = f", hamming {p.hamming}" if p.hamming is not None else ""
        why = f"; {p.reason}" if p.reason else ""
        return f"{p.kind}, similarity {p.similarity:.3f}{extra}{why}"

    members = []
    for m in group:
        entry = _info(d, m.image_id) | {"representative": m.representative, "low_res": m.low_res}
        if m.representative:
            entry["kept"] = m.image_id in d["kept"]  # by the steward (`curate dedupe keep`), not by the rule
        else:
            entry |= {
                "link": link(rep, m.image_id),
                # from every other member: split from the representative alone, it stayed alike to the other
                # copies, and its pairs with them came back as a new group to decide
                "split": _command(d, "split", m.image_id),
                "keep": None if m.low_res else _command(d, "keep", m.image_id),  # never labelled: not offered
            }
        members.append(entry)
    return {"cluster": key, "size": len(group), "mixed_prior_labels": mixed, "members": members}


def review_items(ws, in_labelling: Collection[int] = ()) -> dict:
    """Everything the sheet lists, in its order, as plain data: the HTML is rendered from this, and
    `curate dedupe review --json` prints it, so the two never disagree."""
    return _items(_collect(ws, in_labelling))


def _items(d: dict) -> dict:
    multi, review = d["multi"], d["review"]
    stamp = [p for p in review if stamped(p.kind, p.reason)]
    review = [p for p in review if not stamped(p.kind, p.reason)]
    shared = _shared_object(review)
    grouped = {(p.image_a, p.image_b) for p in shared}
    review = [p for p in review if (p.image_a, p.image_b) not in grouped]
    mixed = sorted((k for k in multi if _mixed(d, multi[k])), key=lambda k: (-len(multi[k]), k))
    rest = sorted((k for k in multi if k not in mixed), key=lambda k: (-len(multi[k]), _key_order(k)))
    pairs = [_pair_to_review(d, p) for p in sorted(review, key=lambda p: (-p.similarity, p.image_a, p.image_b))]
    groups = _review_groups(d, pairs)
    pairs.sort(key=lambda p: p["group"])  # in the sheet's order (stable: the most alike first within a group)
    return {
        "counts": {
            "to_review": len(review),
            "to_decide": len(groups),
            "stamp_pairs": len(stamp),
            "object_pairs": len(shared),
            "mixed_clusters": len(mixed),
            "clusters": len(multi),
            "duplicates": sum(len(v) - 1 for v in multi.values()),
            "low_res": d["low"],
        },
        "to_review": pairs,
        "review_groups": groups,
        "stamp_groups": _groups(d, stamp),
        "object_groups": _groups(d, shared),
        "mixed_clusters": [_cluster(d, k, multi[k], True) for k in mixed],
        "clusters": [_cluster(d, k, multi[k], False) for k in rest],
        "decisions": [
            {"image_a": o.image_a, "image_b": o.image_b, "action": o.action, "note": o.note, "at": when(o.created_at)}
            for o in d["overrides"]
        ],
    }


UNREADABLE = "its original is missing or damaged in the store (`curate status`; ingest its folder again)"


def _figure(ws, d: dict, info: dict, extra: str = "", cls: str = "") -> str:
    image_id = info["image"]
    seen = d.setdefault("thumbs", {})  # a picture on the sheet twice (a pair to review, a cluster) decoded once
    if image_id not in seen:
        try:
            # checked: an original replaced by another photo's bytes showed that photo under this image's id
            original = ws.store.read(d["images"][image_id].sha256, check=True)
            seen[image_id] = f"data:image/jpeg;base64,{thumbnail(original)}"
        except Exception:  # its original missing or damaged in the store: said on the picture and the terminal
            seen[image_id] = ""
            d.setdefault("unreadable", set()).add(image_id)
    src = seen[image_id]
    label = ", ".join(info["prior_labels"]) or "none"
    where = ", ".join(info["sources"])
    return (
        f"<figure class='{cls}'>"
        + (f"<img alt='image {image_id}' src='{src}'>" if src else f"<p class='gone'>{UNREADABLE}</p>")
        + f"<figcaption>{extra}"
        f"image {image_id} · {info['width']}×{info['height']} {html.escape(info['format'])}"
        f"{_saved_at(info)}<br>"
        f"prior label: {html.escape(label)}<br>sources: {html.escape(where)}"
        f"{'<br>in labelling' if info['in_labelling'] else ''}</figcaption></figure>"
    )


def _saved_at(info: dict) -> str:
    """A lossy file's quality beside its format (a copy at 10 beside its photo at 90 is the steward's pick to make
    with `curate dedupe keep`); nothing for a lossless file or an unknown quality."""
    q = info.get("quality")
    return f" at quality {q}" if q is not None and info["format"] not in LOSSLESS_FILES else ""


SHEET = "dedupe-review.html"  # the review sheet's name under reports/


def write_review(ws, name: str = SHEET, in_labelling: Collection[int] = ()) -> Path:
    """Write the sheet; returns its path under `ws.reports`. `in_labelling`: ids of images that
    already have a labelling task (marked on the sheet)."""
    return write_sheet(ws, name, in_labelling)[0]


def write_sheet(ws, name: str = SHEET, in_labelling: Collection[int] = ()) -> tuple[Path, dict]:
    """Write the sheet under `ws.reports`; returns its path and the data it shows."""
    page, items = sheet(ws, in_labelling)
    return write_atomic(ws.reports / name, page, tmp_dir=ws.tmp), items


def sheet(ws, in_labelling: Collection[int] = ()) -> tuple[str, dict]:
    """The sheet's HTML from `review_items`' data, read once, and that data."""
    d = _collect(ws, in_labelling)
    items = _items(d)
    n = items["counts"]
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Dedupe "
        f"review</title><style>{CSS}</style></head><body>"
    ]
    out.append("<h1>Dedupe review</h1>")
    out.append(
        f"<p>{n['to_review']} pairs to review (not merged) in {n['to_decide']} groups, one decision each (the pairs "
        f"between two clusters); {n['stamp_pairs']} pairs kept apart as sharing a stamp; "
        f"{n['object_pairs']} pairs kept apart as sharing one object; "
        f"{n['mixed_clusters']} clusters with mixed prior labels; "
        f"{n['clusters']} clusters of two or more images; {n['duplicates']} duplicates; "
        f"{n['low_res']} images below the minimum side. The representative (green) is chosen by: kept by you "
        "(<code>curate dedupe keep</code>), already in labelling (one with a final consensus first), not "
        "low-resolution, not a grey copy beside colour, nothing drawn on (a ring, an arrow, a sticker), colours not "
        "changed (a cast, a filter: two other copies agree on theirs), not framed, "
        "padded or turned on a canvas beside an unframed copy with a quarter of its pixels, most pixels inside the "
        "content box, not a file compressed again nor saved at a poor JPEG quality, no frame, source priority "
        "(clinic &gt; public &gt; web), "
        "earliest. Each decision is one command; every later run keeps it.</p>"
    )
    if items["to_review"]:
        out.append("<h2 id='to-review'>To review — not merged until you decide</h2>")
        out.append(
            "<p class='why'>One decision for each two clusters: the pairs between them are listed together; the "
            "merge names every picture of both clusters and makes them one, the splits decide every pair.</p>"
        )
    shown = shown_groups(items)
    for g in items["review_groups"][:shown]:
        out += _review_group_html(ws, d, g)
    out += _more(
        len(items["to_review"]) - sum(len(g["pairs"]) for g in items["review_groups"][:shown]),
        "pair to review",
        "pairs to review",
        "mixed prior labels first, the least alike last",
        decided=True,
    )
    out += _kept_apart(ws, d, items["stamp_groups"], "stamps", STAMP_GROUPS)
    out += _kept_apart(ws, d, items["object_groups"], "objects", OBJECT_GROUPS)
    for kind, one, many in (
        ("mixed_clusters", "cluster with mixed prior labels", "clusters with mixed prior labels"),
        ("clusters", "other cluster", "other clusters"),
    ):
        for c in items[kind][:SHEET_CLUSTERS]:
            out += _cluster_html(ws, d, c)
        out += _more(len(items[kind]) - SHEET_CLUSTERS, one, many, "the smallest last")
    if items["decisions"]:
        out.append("<h2>Steward decisions</h2><table><tr><th>images</th><th>decision</th><th>note</th></tr>")
        for o in items["decisions"]:
            a, b = o["image_a"], o["image_b"]
            out.append(
                f"<tr><td>{a if a == b else f'{a} – {b}'}</td><td>{html.escape(o['action'])}</td>"
                f"<td>{html.escape(o['note'] or '')}</td></tr>"
            )
        out.append("</table>")
    out.append("</body></html>\n")
    items["unreadable"] = sorted(d.get("unreadable", ()))  # only what the sheet shows: its pictures were read
    return "\n".join(out), items


def _review_group_html(ws, d: dict, g: dict) -> list[str]:
    """One decision: the pictures of each cluster the group's pairs name, side by side, what each pair's looks
    said, and the commands (one merge; a split for each picture of the side with fewer)."""
    n = len(g["pairs"])
    flag = " <span class='mixed'>mixed prior labels</span>" if g["mixed_prior_labels"] else ""
    many = f" — {n} pairs between them, one decision" if n > 1 else ""
    one, other = (
        f"{html.escape(k)} ({size} picture{'s' * (size != 1)})"
        for k, size in zip(g["clusters"], g["sizes"], strict=True)
    )
    out = [f"<div class='pair'><p class='head'>clusters {one} and {other}{many}{flag}</p>"]
    left, right = ("".join(_figure(ws, d, info) for info in side) for side in g["images"])
    said = []
    for p in g["pairs"]:
        hint = f"<br>{html.escape(p['hint'])}" if p["hint"] else ""
        names = f"{p['image_a']} and {p['image_b']}: " if n > 1 else ""
        alike = "" if p["kind"] == "merge" else f"<br>hash correlation {p['similarity']:.3f}"  # merged: your word
        said.append(f"{names}{html.escape(p['reason'] or '')}{alike}{hint}")
    joins = f" (the {sum(g['sizes'])} pictures of both clusters, one cluster)"
    if g["also"]:  # with their prior labels: they count toward "mixed prior labels"
        also = (f"{i} ({html.escape(', '.join(sorted(d['labels'][i])) or 'no prior label')})" for i in g["also"])
        said.append(f"also in these clusters, merged with them: {', '.join(also)}")
    splits = " ".join(f"<code>{html.escape(c)}</code>" for c in g["split"])
    out.append(
        f"<div class='sides'>{left}<span class='vs'>and</span>{right}</div><div class='why'>{'<br>'.join(said)}<br>"
        f"same photo{joins}: <code>{html.escape(g['merge'])}</code><br>different photos: {splits}</div></div>"
    )
    return out


def shown_groups(items: dict) -> int:
    """How many of `review_items`' groups of pairs to review the sheet shows: whole groups, until `SHEET_PAIRS`
    pairs are shown."""
    shown = pairs = 0
    for g in items["review_groups"]:
        if pairs >= SHEET_PAIRS:
            break
        shown, pairs = shown + 1, pairs + len(g["pairs"])
    return shown


def _cluster_html(ws, d: dict, c: dict) -> list[str]:
    """One cluster: its heading, then each member with its tag and, but for the representative, its split."""
    key, flag = c["cluster"], " <span class='mixed'>mixed prior labels</span>" if c["mixed_prior_labels"] else ""
    out = [f"<h2 id='{html.escape(key)}'>Cluster {html.escape(key)} — {c['size']} images{flag}</h2>"]
    out.append("<div class='cluster'>")
    for m in c["members"]:
        cls = " ".join(k for k, on in (("rep", m["representative"]), ("low", m["low_res"])) if on)
        tag = (
            f"<span class='tag'>representative{' (kept)' if m['kept'] else ''}</span><br>"
            if m["representative"]
            else ("<span class='tag'>low-res</span><br>" if m["low_res"] else "")
        )
        if not m["representative"]:
            tag += f"{html.escape(m['link'])}<br>not the same photo: <code>{html.escape(m['split'])}</code><br>"
            if m["keep"]:
                tag += f"label this one instead: <code>{html.escape(m['keep'])}</code><br>"
        out.append(_figure(ws, d, m, tag, cls))
    return [*out, "</div>"]


# A sheet is opened in a browser: at 100,000 pictures every pair and cluster would be about 90,000 thumbnails and
# 650 MB. It shows the first of each list in the order above and `--json` lists them all; a decision takes its
# pair off the pairs to review, so the next sheet shows the next ones (bench/README.md, "The review sheet").
SHEET_PAIRS = 500  # pairs to review shown, in whole groups (`shown_groups`: the last may take it past)
SHEET_CLUSTERS = 300  # clusters shown, of those with mixed prior labels and of the others each; groups kept apart too


def sheet_note(items: dict) -> str | None:
    """The terminal's line beside the sheet's path: how many pairs there are to review, in how many groups (one
    decision each), and what the sheet leaves out (`left_out`); None when there is nothing to say."""
    n = items["counts"]
    pairs, groups = n["to_review"], n["to_decide"]
    said = [f"{pairs:,} pair{'s' * (pairs != 1)} to review in {groups:,} group{'s' * (groups != 1)}, one decision each"]
    said = said if pairs else []
    if gone := items.get("unreadable"):  # before: a blank picture, and nothing said
        said.append(f"{len(gone)} picture{'s' * (len(gone) != 1)} on it cannot be shown: {UNREADABLE}")
    return "; ".join(said + [x for x in [left_out(items)] if x]) or None


def left_out(items: dict) -> str | None:
    """What the sheet leaves out of `review_items`' lists, in one line for the terminal; None when it shows all."""
    pairs = sum(len(g["pairs"]) for g in items["review_groups"][: shown_groups(items)])
    said = [
        f"{cap:,} of {len(items[key]):,} {what}"
        for key, cap, what in (
            ("to_review", pairs, "pairs to review"),
            ("stamp_groups", SHEET_CLUSTERS, "groups sharing a stamp"),
            ("object_groups", SHEET_CLUSTERS, "groups sharing one object"),
            ("mixed_clusters", SHEET_CLUSTERS, "clusters with mixed prior labels"),
            ("clusters", SHEET_CLUSTERS, "other clusters"),
        )
        if len(items[key]) > cap
    ]
    return (
        f"the sheet shows the first {', '.join(said)}: `curate dedupe review --json` lists every one" if said else None
    )


def _more(left: int, one: str, many: str, order: str, decided: bool = False) -> list[str]:
    """The line saying how many of a list the sheet leaves out (`one`, `many`: what they are; `order`: which
    are left out), and where they are."""
    if left <= 0:
        return []
    then = "; each decision takes its pair off, so <code>curate dedupe review</code> run again shows the next"
    then = then if decided else ""
    return [
        f"<p class='why'>{left} more {html.escape(one if left == 1 else many)}, {order}, not shown here{then}: "
        "<code>curate dedupe review --json</code> lists every one.</p>"
    ]


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


def _kept_apart(ws, d: dict, groups: list[dict], anchor: str, words: tuple[str, str]) -> list[str]:
    """Pictures kept apart for sharing a stamp or one object, one block per group of them (joined by such
    pairs), each picture once: a site's previews give dozens of pairs that one look settles."""
    if not groups:
        return []
    title, why = words
    out = [
        f"<h2 id='{anchor}'>{html.escape(title)}</h2><p class='why'>{html.escape(why)} Two of them that are one "
        "photo after all: <code>curate dedupe merge A B</code>.</p>"
    ]
    for g in groups[:SHEET_CLUSTERS]:
        n = g["pairs"]
        out.append(f"<p>{len(g['images'])} pictures, {n} pair{'s' * (n != 1)}</p><div class='cluster'>")
        out += [_figure(ws, d, info) for info in g["images"]]
        out.append("</div>")
    return out + _more(len(groups) - SHEET_CLUSTERS, "group", "groups", "the smallest last")
