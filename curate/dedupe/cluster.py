"""Clusters from matched pairs and the steward's decisions: pure functions on plain data.

Clusters never chain. Pixel-identical pairs, then the steward's *merge*
decisions, are joined first and always hold (a "unit"); a merge a split
blocks (a split with a pixel twin of one of them) is not joined. Verified pairs (hash +
geometry, CNN) are then joined strongest first, but two groups become one only
when EVERY unit of one is checked against every unit of the other and none
contradicts it (complete linkage with a stated tolerance): each cross pair is
either verified "same", or was judged "review" (geometric evidence of shared
content just short of the "same" rule: two different crops of one photo, a
picture with too little texture), or "untested" (a picture with too few
keypoints for any evidence either way: a mostly black fundus tile against its
cropped copy; a blurred copy of a member against what that member's features
match, `curate.dedupe.pairs`), never "different" or unchecked. The unit
counts as one: a member verified against any image of a unit counts for the
whole unit. So A~B and B~C never put A with C unless A and C were compared
and found at least partly the same, or their comparison was no evidence; the blocked pair goes to the steward as
"to review". Two groups of several units each need at least two verified
cross pairs: with every other pair across them only tolerated, one link is
all that joins them (two different tiles of one fundus photo, each with a
caption, a perspective and a thumbnail-sized copy: one caption against the
other's small copy correlated 0.969, and eight pictures of two photos became
one cluster). A single picture still joins a group on one link. A *split*
says two images are not duplicates: no cluster may contain both. Joined
greedily, one member can keep out more copies than it is: it is then swapped
for them when they are "same" with every other member (`_swapped`). The result
does not depend on input order.

Order matters only where complete linkage must choose: a thumbnail-sized copy
(content box under `SMALL` px, often heavily compressed) has too few pixels for
its local features to confirm every member, so its edges are joined last. Joined
first, it kept three good copies of one photo (a caption, a sticker, a
perspective) out of their original's cluster, which made two clusters and two
photos to label; joined last, it is the one left out when a member contradicts it.

The representative rule: an image the steward kept (`curate dedupe keep`) represents whatever cluster holds
it. Else an image that has already entered labelling (it has a
`LabelTask`) stays its cluster's representative, so a sharper copy arriving later
never takes the place of a photo the raters have seen; among several such, one
with a final consensus (agreed or adjudicated) first. Then, and for clusters with
no labelled member, the plain rule: not low-resolution; not a grey copy when a member has colour, nor one with
a drawing's colours on it (a ring and an arrow, a sticker) when a member has fewer, nor one whose colours moved away
from two members that agree on theirs (a cast, an app's filter; `curate.dedupe.fidelity`: pixels and arrival
order cannot tell a journal's grey print or a teaching figure from its photo); not a framed or padded copy, nor
one turned on a larger canvas, while an unframed member has a quarter of its pixels or more (`_unframed`: a site
fitting a photo into its frame enlarges it); not a crop of a member that shows all of it and has a quarter of its
pixels or more (`_whole_scenes`: a site serving a crop enlarged shows more pixels of less); most pixels inside
the content box (a framed or padded copy is not sharper for its frame; within `SAME_PIXELS` of the most, the
same; a box cut narrower than a worse source's copy of the same shape counts as wide as that copy's:
`_as_framed_as_their_shape`), of those not a file compressed again (far fewer bytes per pixel than another of its
format) nor saved at a poor quality beside a better one of its source (`curate.dedupe.fidelity.poorly_saved`: a JPEG
at 10 beside the PNG), then one without a frame, source priority (clinic > public > web), earliest, lowest id.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from scipy.cluster.hierarchy import DisjointSet

from curate.dedupe import undecided
from curate.dedupe.fidelity import (
    GREY,
    agreed,
    bytes_per_pixel,
    drawn_over,
    grey_beside_colour,
    poorly_saved,
    recoloured,
    recompressed,
)
from curate.dedupe.whole import SAME_SHAPE  # one shape: one framing of a photo (`_as_framed_as_their_shape`)

# pixel twins first: they are one member before anything else is joined. Merges first, a merge of one twin with a
# picture the steward had split from the other twin joined them, and the split then kept the twins apart (`split 1 3`,
# `merge 2 3` of 2, 1's twin: clusters {1} and {2, 3}, and status counted the twins' pair undecided for good)
KIND_RANK = {"pixel": 0, "merge": 1, "hash": 2, "cnn": 3, "review": 4, "untested": 5, "marks": 6}
EXACT = ("merge", "pixel")
UNTESTED = "untested"  # a pair its pictures' lack of texture or pixels left undecided (`curate.dedupe.pairs`)
# a pair local features lay in place on `verify.REVIEW_INLIERS` or more matches while its pixels are unlike, found
# for a stamp's triangle (`curate.dedupe.pairs.lone_stamps`): kept as evidence, and it blocks a join as any
# "different" does
MARKS = "marks"
KEEP = "keep"  # a steward's decision (`curate.dedupe.overrides.keep`): this image represents its cluster
NOT_EDGES = ("review", UNTESTED, MARKS)  # stored pairs that never join ("review" and "untested" never block either)
# the reason of a "review" pair put there by `curate.dedupe.pairs.stamps` begins with this (the sheet groups them)
STAMPED = "the same marks in the same place on 3 or more pictures whose pixels differ (a site's stamp?): "
# and by `curate.dedupe.verify.paneled` with this (the sheet says what to do with a collage)
COLLAGE = "near the threshold: one picture is a collage holding the other"


def stamped(kind: str, reason: str | None) -> bool:
    """Whether a stored pair is one `curate.dedupe.pairs.stamps` put to review (the sheet shows them apart)."""
    return kind == "review" and (reason or "").startswith(STAMPED)


SMALL = 128  # px: a content box whose longer side is under this is thumbnail-sized (the paper's low-res cut)
CROPPED = 0.93  # a "same" that shows at most this share of the other's content box, while
WHOLE = 0.98  # the other shows at least this share of its own: a crop of the other (`crops`)


@dataclass(frozen=True)
class Edge:
    a: int
    b: int
    kind: str  # merge | pixel | hash | cnn (review and untested pairs are never edges)
    similarity: float = 1.0


@dataclass(frozen=True)
class Candidate:
    """What the representative rule looks at."""

    image_id: int
    width: int
    height: int
    priority: int  # best (lowest) source priority among its arrivals: clinic 0 < public 1 < web 2
    created_at: datetime
    low_res: bool = False
    content: float = 1.0  # share of the picture inside its content box: a frame or padding is no resolution
    colour: float | None = None  # colour the brightness does not explain (`curate.dedupe.fidelity`); None: unknown
    drawn: float | None = None  # share of a drawing's pure colours (`curate.dedupe.fidelity`); None: unknown
    size_bytes: int | None = None  # of the stored original (`curate.dedupe.fidelity.recompressed`)
    format: str | None = None
    framed: bool = False  # its box is cut on two opposite sides (a frame, a page, padding) or it is turned on a canvas
    tint: tuple[float, float] | None = None  # mean chroma (`curate.dedupe.fidelity.tint`); None: unknown
    quality: int | None = None  # the file's saved quality (`curate.dedupe.fidelity.quality`); None: unknown


def clusters(
    image_ids: list[int],
    edges: list[Edge],
    splits: set[tuple[int, int]],
    tolerated: Collection[tuple[int, int]] = (),
    last: Collection[int] = (),
) -> dict[int, int]:
    """image id -> root id (the smallest id in its cluster); the rule is the module docstring's.
    `tolerated`: "review" and "untested" pairs, which never join but do not block a join either.
    `last`: pictures whose edges are joined after all others (`SMALL`)."""
    ds = DisjointSet(image_ids)
    blocked: dict[int, set[int]] = {}
    for a, b in splits:
        blocked.setdefault(a, set()).add(b)
        blocked.setdefault(b, set()).add(a)

    def join(a: int, b: int) -> bool:
        small, big = sorted((ds.subset(a), ds.subset(b)), key=len)
        if any(blocked.get(x, set()) & big for x in small):
            return False  # the steward said some pair across these two is not a duplicate
        ds.merge(a, b)
        return True

    late = set(last)
    ordered = sorted(
        (e for e in edges if e.a in ds and e.b in ds and e.a != e.b),
        key=lambda e: (
            e.kind not in EXACT and (e.a in late or e.b in late),
            KIND_RANK.get(e.kind, 9),
            -e.similarity,
            min(e.a, e.b),
            max(e.a, e.b),
        ),
    )
    for e in ordered:
        if e.kind in EXACT and not ds.connected(e.a, e.b):
            join(e.a, e.b)
    unit = {i: ds[i] for i in image_ids}
    same = {(min(unit[e.a], unit[e.b]), max(unit[e.a], unit[e.b])) for e in ordered if e.kind not in EXACT}
    verified = same | {(min(unit[a], unit[b]), max(unit[a], unit[b])) for a, b in tolerated if a in unit and b in unit}
    units_of = {r: {r} for r in set(unit.values())}  # cluster root -> the exact-copy units inside it

    def bridged(ra: int, rb: int) -> bool:
        """Whether one verified pair is all that joins two groups of several units each."""
        ua, ub = units_of[ra], units_of[rb]
        if len(ua) < 2 or len(ub) < 2:
            return False
        return sum((min(u, v), max(u, v)) in same for u in ua for v in ub) < 2

    for e in ordered:
        if e.kind in EXACT:
            continue
        ra, rb = ds[e.a], ds[e.b]
        if ra == rb or bridged(ra, rb):
            continue
        if all((min(u, v), max(u, v)) in verified for u in units_of[ra] for v in units_of[rb]) and join(ra, rb):
            units_of[ds[ra]] = units_of.pop(ra) | units_of.pop(rb)
    images_of: dict[int, set[int]] = {}
    for i, u in unit.items():
        images_of.setdefault(u, set()).add(i)
    groups = _swapped(list(units_of.values()), same, verified, images_of, blocked)
    return {i: min(ids) for g in groups for ids in [set().union(*(images_of[u] for u in g))] for i in ids}


def _swapped(
    groups: list[set[int]],
    same: set[tuple[int, int]],
    verified: set[tuple[int, int]],
    images_of: dict[int, set[int]],
    blocked: dict[int, set[int]],
) -> list[set[int]]:
    """Complete linkage joined greedily, strongest pair first, so one member that came in early can keep out
    more that agree with everyone else: a zoomed copy joined its photo, and four turned and sheared copies,
    each "same" as every member but the zoomed one, stayed a group of their own (`bench/dedupe.py
    --augmented`). A member that alone keeps out other groups with more pictures than it has is swapped for
    them when they are "same" with every other member, two at least (`fits`): it leaves (its pairs go to
    review) and they join. Not when one member would be all that is left: a screenshot of a tile of the
    astronaut photo, shrunk, was "same" as the photo and its copy, and took the tile's place beside its own
    screenshot (`tests/test_dedupe_pages.py`). Groups of units (exact copies)."""

    def ok(u: int, v: int, pairs: set[tuple[int, int]]) -> bool:
        return (min(u, v), max(u, v)) in pairs

    def images(group: set[int]) -> set[int]:
        return set().union(*(images_of[u] for u in group))

    def connected(group: set[int]) -> bool:
        seen, todo = set(), [min(group)]
        while todo:
            u = todo.pop()
            if u not in seen:
                seen.add(u)
                todo += [v for v in group if v not in seen and ok(u, v, same)]
        return seen == group

    def fits(h: frozenset[int], group: set[int]) -> bool:
        """Whether `h` may take the place of the member swapped out: every pair across "same", two at
        least, none split by the steward. Stricter than a join (nothing tolerated): a stock site's stamp
        made one of two different photos "same" and the other "review" with a third photo, which would
        otherwise have swapped that photo's own copy out (`bench/dedupe.py --stamped`)."""
        if len(h) * len(group) < 2 or any(blocked.get(i, set()) & images(group) for i in images(h)):
            return False
        return all(ok(x, u, same) for x in h for u in group)

    def first(g) -> int:
        """The order groups are looked at in: by their smallest image, not unit (a unit's id is whichever
        of its images the disjoint set kept, which depends on the order images came in)."""
        return min(images(g))

    near: dict[int, set[int]] = {}
    for u, v in same:
        near.setdefault(u, set()).add(v)
        near.setdefault(v, set()).add(u)
    of = {u: frozenset(g) for g in groups for u in g}
    todo = sorted({of[u] for u in of}, key=first, reverse=True)
    swaps = 0
    while todo and swaps <= len(of):  # each swap grows a group; the bound is a safety net, never reached
        group = todo.pop()
        if len(group) < 3 or of[min(group)] != group:
            continue  # too small to keep two members when one leaves, or since swapped into another
        others = {of[v] for u in group for v in near.get(u, ())} - {group}
        kept_out: dict[int, list[frozenset[int]]] = {}
        for h in sorted(others, key=lambda h: (-len(images(h)), first(h))):  # the most pictures first
            missing = {u for u in group if any(not ok(x, u, verified) for x in h)}
            if len(missing) == 1:
                kept_out.setdefault(missing.pop(), []).append(h)
        for z in sorted(kept_out, key=lambda z: (-sum(len(images(h)) for h in kept_out[z]), first({z}))):
            new = set(group - {z})
            for h in kept_out[z]:
                if fits(h, new):
                    new |= h
            if len(images(new)) <= len(images(set(group))) or not connected(new):
                continue
            new = frozenset(new)
            of.update(dict.fromkeys(new, new))
            of[z] = frozenset({z})
            todo.append(new)  # looked at again: what joined may keep others out
            swaps += 1
            break
    return list({of[u] for u in of})


def unmerged(edges: list[Edge], roots: dict[int, int], splits: set[tuple[int, int]]) -> list[Edge]:
    """Pairs found alike, or merged, that the clustering did not join (complete linkage, a split), not split by the
    steward: the edges `curate.dedupe.undecided` names (the one rule)."""
    left = set(undecided([(e.a, e.b, e.kind) for e in edges], roots, splits))
    return [e for e in edges if (e.a, e.b) in left]


def crops(shown: list[tuple[int, int, float | None, float | None]]) -> dict[int, set[int]]:
    """image id -> the ids it is a crop of, from "same" pairs (a, b, share of b's box a shows, of a's box b shows;
    `curate.dedupe.verify.shows`): one that shows at most `CROPPED` of the other, which shows `WHOLE` of it."""
    parts: dict[int, set[int]] = {}
    for a, b, a_shows, b_shows in shown:
        if a_shows is None or b_shows is None:
            continue
        if a_shows <= CROPPED and b_shows >= WHOLE:
            parts.setdefault(a, set()).add(b)
        elif b_shows <= CROPPED and a_shows >= WHOLE:
            parts.setdefault(b, set()).add(a)
    return parts


def representative(
    members: list[Candidate],
    labelled: Collection[int] = (),
    final: Collection[int] = (),
    kept: Mapping[int, object] | None = None,
    parts: Mapping[int, Collection[int]] | None = None,
) -> Candidate:
    """The documented rule (module docstring). `kept`: ids the steward kept (`curate dedupe keep`), each with
    when: the last kept member represents, whatever else the rule would say, unless it has since fallen under the
    minimum side (a later `--min-side`) and another member has not: a low-resolution representative is never
    labelled, and its whole cluster was silently dropped from labelling. `labelled`: ids already in
    labelling (have a task); `final`: ids with an agreed or adjudicated consensus; `parts`: which members each is a
    crop of (`crops`). Labelled first, so labels
    already paid for stay the cluster's; then usable (not low-resolution), untouched (`_untouched`), most
    pixels, best source priority (clinic > public > web), earliest, lowest id; pixels are counted inside the
    content box (module docstring)."""

    chosen = [c for c in members if kept and c.image_id in kept]
    usable = [c for c in chosen if not c.low_res]
    if usable or (chosen and all(c.low_res for c in members)):  # a keep below a later --min-side: the rule's turn
        return max(usable or chosen, key=lambda c: (kept[c.image_id], c.image_id))

    def stage(c: Candidate) -> int:
        return 0 if c.image_id in final else 1 if c.image_id in labelled else 2

    first = min((stage(c), c.low_res) for c in members)
    pool = _unframed(_untouched(_as_framed_as_their_shape([c for c in members if (stage(c), c.low_res) == first])))
    pool = _whole_scenes(pool, parts or {})
    most = max(_content_pixels(c) for c in pool)
    near = [c for c in pool if _content_pixels(c) >= SAME_PIXELS * most]  # a JPEG's ringing widens a box a little
    near = _not_poorly_saved(_not_recompressed(near))
    return min(near, key=lambda c: (c.content < UNFRAMED, c.priority, c.created_at, c.image_id))


def _as_framed_as_their_shape(pool: list[Candidate]) -> list[Candidate]:
    """`pool` with each member given the largest content share of the unframed members of its shape (aspect ratio
    within `SAME_SHAPE`, either way up) from a worse source (`priority`). Copies of one shape are one framing of the
    photo, so a difference in their boxes is the box search's, and the source rule decides, not it: a clinic photo's
    plain sky was cut as a band (12.5 % of it; above and below, a plain background, it counts as framed) while its
    blocky quality-25 web copy's was not, and with fewer pixels in its box the clinic's original lost to that copy.
    Among copies from as good a source the boxes still count: on `bench/dedupe.py --retouched`, evened there too,
    three more filtered or annotated copies that arrived first represented (their vignette or ring had been cut as
    a band, the photo's not)."""

    def shape(c: Candidate) -> float:
        return max(c.width, c.height) / max(min(c.width, c.height), 1)

    def evened(c: Candidate) -> Candidate:
        worse = [o.content for o in pool if not o.framed and o.priority > c.priority and _alike(shape(o), shape(c))]
        return replace(c, content=max(worse)) if worse and max(worse) > c.content else c

    return [evened(c) for c in pool]


def _alike(a: float, b: float) -> bool:
    return abs(a / b - 1) <= SAME_SHAPE


def _untouched(pool: list[Candidate]) -> list[Candidate]:
    """`pool` less the members with a drawing's colours (a ring, an arrow, a sticker) beyond the least a member with
    as many pixels or more has, then less its grey copies when a member has colour, then less those whose colours
    were changed (`curate.dedupe.fidelity.recoloured`); never empty. As many pixels or more: shrinking a vivid
    photo blends its pure colours away (a flower's petals, 0.28 % of the photo, 0.05 % of its copy at 108 px), and
    against that copy the photo itself looked drawn on. In that order: a sticker's colours on a grey photo would
    otherwise have made the photo "a grey copy". Grey members left (as many as coloured ones) agree on no colour:
    two grey prints of a colour photo would otherwise have made the photo "recoloured"."""

    def least(c: Candidate) -> float:
        return min(
            (o.drawn for o in pool if o.drawn is not None and _content_pixels(o) >= SAME_PIXELS * _content_pixels(c)),
            default=0.0,
        )

    pool = [c for c in pool if not drawn_over(c.drawn, least(c))] or pool
    colours = [c.colour for c in pool]
    pool = [c for c in pool if not grey_beside_colour(c.colour, colours)] or pool
    agreeing = agreed([c.tint for c in pool if c.colour is None or c.colour >= GREY])  # grey copies agree on none
    return [c for c in pool if not recoloured(c.tint, agreeing)] or pool


def _unframed(pool: list[Candidate]) -> list[Candidate]:
    """`pool` less its framed or padded members (`_framed`) when an unframed member has at least 1/`FRAMED_GAIN`
    of the most pixels inside a box; never empty. A site that fits every photo into one frame enlarges a small
    photo to fill it, so its framed copy has more pixels in the box and won on them, and export wrote the frame
    into the training set: on `bench/dedupe.py` (v6) such copies represented 26 of the 45 clusters whose photo did
    not (a frame fitted: 17; framed and enlarged 1.4 times: 6; framed: 2; padded: 1). Within 1/4 of the pixels (half
    the side) the photo loses nothing a classifier sees at its 224 px input; a framed copy with more than that (a
    journal's high-resolution figure beside a thumbnail) still represents."""
    plain = [c for c in pool if not _framed(c)]
    if not plain or len(plain) == len(pool):
        return pool
    most = max(_content_pixels(c) for c in pool)
    return plain if max(_content_pixels(c) for c in plain) * FRAMED_GAIN >= most else pool


def _whole_scenes(pool: list[Candidate], parts: Mapping[int, Collection[int]]) -> list[Candidate]:
    """`pool` less each member that is a crop of another member of it (`crops`) with at least 1/`FRAMED_GAIN` of its
    pixels inside a box; never empty. A site that serves a photo enlarged and cropped has more pixels of less of
    it: on `bench/dedupe.py --retouched --photos` (skin photos) such a copy, twice the photo's side less 4-12 % of
    each, represented 40 of the 120 clusters, and what its crop cut away was never labelled or exported."""
    ids = {c.image_id: c for c in pool}
    out = [
        c
        for c in pool
        if not any(
            o in ids and _content_pixels(ids[o]) * FRAMED_GAIN >= _content_pixels(c) for o in parts.get(c.image_id, ())
        )
    ]
    return out or pool


def _framed(c: Candidate) -> bool:
    """Whether a member is a framed or padded copy for `_unframed`: its content box under `UNFRAMED` of the
    picture and cut on two opposite sides, or a picture turned on a larger canvas (its share of the canvas
    scales `content`: `curate.dedupe.decode.Decoded.turned`). A frame, a page around the photo or padding to
    another aspect ratio is cut on both (all 265 such copies of the benchmark's four corpora whose box was
    cut); a photo's own plain edge, a dark background or a flat strip of a tile, mostly on one side or two that
    meet (14 of the 20 photos of 1,159 whose box was cut): counted as framed, a photo lost to its own tighter
    crop (a 159 px crop of a 180 px tile, held-out corpus). A photo on a plain background all round is cut on
    both (6 of those 20) and can still lose to a tight crop of it (1 of the held-out corpus's 61 clusters);
    `curate dedupe keep` puts it back."""
    return c.content < UNFRAMED and c.framed


def _not_recompressed(pool: list[Candidate]) -> list[Candidate]:
    """`pool` (members with as many pixels) less the files compressed again (`curate.dedupe.fidelity.recompressed`:
    under a fraction of the bytes per pixel of the most of their format and source priority); never empty. Only
    files that are their picture (`UNFRAMED`) are compared: a web page's screenshot holding the photo is a bigger
    file for its lettering, and must not make the photo look compressed. Nor across priorities: a clinic's photo
    saved at quality 70 is still the source of the web's copy at 95 (the source rule decides)."""
    whole = [c for c in pool if c.content >= UNFRAMED]
    per_pixel = {c.image_id: bytes_per_pixel(c.size_bytes, c.width * c.height) for c in whole}
    most: dict[tuple[str | None, int], float] = {}
    for c in whole:
        if per_pixel[c.image_id] is not None:
            key = (c.format, c.priority)
            most[key] = max(most.get(key, 0.0), per_pixel[c.image_id])
    return [
        c for c in pool if not recompressed(per_pixel.get(c.image_id), most.get((c.format, c.priority), 0.0))
    ] or pool


def _not_poorly_saved(pool: list[Candidate]) -> list[Candidate]:
    """`pool` (members with as many pixels) less the JPEGs saved at a poor quality beside a better-saved member
    of their source priority (`curate.dedupe.fidelity.poorly_saved`); never empty. As `_not_recompressed`: within
    one priority (a clinic's photo saved poorly is still the source of the web's copy saved better), and only
    against files that are their picture (a PNG screenshot of the photo with a caption is lossless, and not the
    photo)."""
    best: dict[int, int] = {}
    for c in pool:
        if c.quality is not None and c.content >= UNFRAMED:
            best[c.priority] = max(best.get(c.priority, 0), c.quality)
    return [c for c in pool if not poorly_saved(c.quality, best.get(c.priority, 0))] or pool


SAME_PIXELS = 0.9  # content boxes within this share of the largest count as the same resolution
UNFRAMED = 0.95  # a content box this much of its picture: no frame or padding to speak of
FRAMED_GAIN = 4.0  # a framed member needs over this many times the pixels in its box to represent over an unframed one


def _content_pixels(c: Candidate) -> float:
    return c.width * c.height * c.content


def cluster_key(root_id: int) -> str:
    """Stable key: the smallest image id in the cluster, as before dedupe ever ran (`img<id>`)."""
    return f"img{root_id}"
