"""`curate dedupe`: hash what is new, search everything, cluster, record.

Order of work, so that a killed run is harmless:
1. hash images without codes, committing each batch (a re-run continues);
2. search stored codes (vectorised; only pairs touching new images when the
   settings are unchanged), verify candidates geometrically, add
   pixel-identical pairs (`curate.dedupe.pairs`); local features for the second
   proposal are kept per image (`curate.dedupe.answers`, committed as computed),
   and a tentative group without a new image is not verified again;
3. in ONE transaction, replace pairs and cluster membership. Overrides are
   never written by a run, so the steward's decisions always survive.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, update
from sqlmodel import Session, select

from curate.dedupe import compared_ids, undecided
from curate.dedupe.answers import binding_fault, blob
from curate.dedupe.cluster import (
    KEEP,
    NOT_EDGES,
    SMALL,
    UNTESTED,
    Candidate,
    Edge,
    cluster_key,
    clusters,
    crops,
    representative,
)
from curate.dedupe.decode import THUMB, box_side, decode, panels_text, parse_box, read_box
from curate.dedupe.hashing import METHODS, NEIGHBOURS, WINDOWS, RegionPHash, to_hex
from curate.dedupe.pairs import UNREAD, Pair, find_pairs
from curate.dedupe.search import backend_named
from curate.errors import ConfigError
from curate.intake.catalogue import standing_rejections
from curate.label.diagnoses import FINAL
from curate.parallel import run_parallel, stage_of
from db.models import (
    DedupeCode,
    DedupeMember,
    DedupeOverride,
    DedupePair,
    Image,
    Provenance,
    Source,
)
from db.models.label import Consensus, LabelTask

log = logging.getLogger("curate.dedupe")

# v2: codes of the content box (frames cut); v3: captions cut too; v4: a rotation's fill in-painted;
# v5: a tall picture's box searched finer (a phone screenshot's lettering); v6: the whole picture's thumbnail kept
# beside a cut box's (`curate.dedupe.whole`); v7: a collage's panels kept (`curate.dedupe.decode.box_panels`);
# v8: a round field of view's fill in-painted in the thumbnail (`decode.field_stop`: an avatar's white corners),
# lettering on a band closed past JPEG's ringing (`content._closing`: a news site's banner); v10: a coloured
# frame whose seam is left uncut no longer passes for the photo's background (`content.SEAM`); v11: a picture turned
# on a larger canvas turned back (`decode.turned_back`); v12: colour taken away or drawn on measured for the
# representative rule (`curate.dedupe.fidelity`); v13: the share of its canvas a turned picture covers (the rest is
# fill: `cluster._unframed`) and the mean chroma (a cast, a filter: `fidelity.recoloured`) kept; v14: a phone
# screen's status bar and row of icons cut with its margins (`content._screen_marks`); v15: a photo inside a chat's
# screenshot or on a page, flat surroundings drawn around it, cut to (`curate.dedupe.inset`); v16: a JPEG's quality
# read off its quantization tables (`curate.dedupe.fidelity.quality`)
ALGO = f"region-phash-v16/{THUMB}/{len(WINDOWS)}"
RULES = 16  # the verification rules' version (`DedupeOptions.settings`)
CODE_BYTES, THUMB_BYTES = 8 * len(WINDOWS), THUMB * THUMB


@dataclass(frozen=True)
class DedupeOptions:
    min_side: int = 128  # images with a shorter side are kept out of labelling (the paper's low-res filter)
    radius: int = 14  # Hamming radius of the phash method's search (bits of 64)
    neighbours: int = NEIGHBOURS  # region-phash: pictures each picture proposes for verification
    similarity: float = 0.60  # DCT correlation a hash candidate needs to be verified geometrically
    method: str = "region-phash"  # phash | region-phash
    backend: str = "auto"  # auto | brute-force | multi-index
    cnn: bool = False  # add the CNN-embedding stage (needs torch)
    cnn_similarity: float = 0.95
    workers: int = 0  # 0: one per core
    batch: int = 256

    def validate(self) -> None:
        if not isinstance(self.min_side, int) or not 1 <= self.min_side <= 10_000:
            raise ConfigError(f"--min-side must be a whole number of pixels from 1 to 10000, not {self.min_side!r}")
        if not isinstance(self.radius, int) or not 0 <= self.radius <= 32:
            raise ConfigError(f"--radius must be a whole number of bits from 0 to 32, not {self.radius!r}")
        if isinstance(self.neighbours, bool) or not isinstance(self.neighbours, int) or not 1 <= self.neighbours <= 50:
            raise ConfigError(f"--neighbours must be a whole number from 1 to 50, not {self.neighbours!r}")
        if not 0.5 <= self.similarity <= 1.0:
            raise ConfigError(f"--similarity must be between 0.5 and 1.0, not {self.similarity!r}")
        if not 0.5 <= self.cnn_similarity <= 1.0:
            raise ConfigError(f"--cnn-similarity must be between 0.5 and 1.0, not {self.cnn_similarity!r}")
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of: {', '.join(METHODS)}")
        backend_named(self.backend)
        if self.workers < 0 or self.batch < 1:
            raise ConfigError("--workers must be 0 or more and the batch size 1 or more")

    @property
    def settings(self) -> str:
        search = f"k{self.neighbours}" if self.method == "region-phash" else f"r{self.radius}"
        # a change here: every pair is searched and verified again. The rules' version, not their names: the
        # whole string is stored in `dedupe_codes.searched_with` (120 characters). 12: sift-evened, local,
        # stamps, twins, objects, stops, light, near, marks, lit, ordered, and a thumbnail-sized file at 32 px;
        # 13: two parts of one photo inside a group (`pairs._parts_of_one`); 14: two copies of one smooth close-up
        # looked at evened inside their group; 15: the pixels away from one object (`verify.unlike_away`); 16: what
        # each picture of a "same" shows of the other (`verify.shows`, for `cluster.crops`)
        return f"{ALGO}|{self.method}|{search}|s{self.similarity:g}|rules{RULES}"


@dataclass
class DedupeReport:
    run_id: int | None = None
    images: int = 0
    hashed: int = 0  # decoded and hashed this run
    reused: int = 0  # codes already in the catalogue
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (image id, reason)
    rejected_at_intake: dict[str, int] = field(default_factory=dict)  # reason -> files (never catalogued)
    byte_duplicates: int = 0  # arrivals of a file already stored (same SHA-256, merged at intake)
    searched: str = "all"  # all | incremental
    pairs: Counter = field(default_factory=Counter)  # kind -> pairs
    recomputed: list[str] = field(default_factory=list)  # one line per stale or corrupt cached code
    whole_picture: list[tuple[int, str]] = field(default_factory=list)  # (image id, why no content box was cut)
    to_review: int = 0  # pairs not merged, for the steward
    sift_pairs: int = 0  # pairs the thumbnails left undecided, verified with local features
    full_sift_pairs: int = 0  # of those, pairs the coarse look left undecided (SIFT at full size)
    evened_pairs: int = 0  # "review" pairs and "different" ones inside a tentative group looked at again, evened
    recut_pairs: int = 0  # "a detail of the other" pairs looked at again with the detail's content box cut again
    local_candidates: int = 0  # candidate pairs only shared local features proposed (`curate.dedupe.local`)
    whole_candidates: int = 0  # candidate pairs only whole pictures of one shape proposed (`curate.dedupe.whole`)
    panel_candidates: int = 0  # candidate pairs only a collage's panels proposed (`curate.dedupe.collage`)
    collages: int = 0  # pictures of several photos side by side (`curate.dedupe.decode.panels`)
    decoded: int = 0  # pictures decoded for verification (`curate.dedupe.decode.Decodes`)
    decodes_reused: int = 0  # looks at a picture served by an earlier decode
    features_taken: int = 0  # pictures' SIFT features taken, at either size (again when let go: `pairs.Verifier`)
    features_read: int = 0  # and read back from the cache of earlier runs instead (`curate.dedupe.stored`)
    local_cached: int = 0  # pictures whose local features for that proposal the catalogue kept (`dedupe.answers`)
    local_computed: int = 0  # pictures whose local features for it were computed this run
    clusters: int = 0  # clusters with two or more images
    duplicates: int = 0  # images that are not their cluster's representative
    low_res: int = 0
    overrides: int = 0
    labelable: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    groups: list[dict] = field(default_factory=list)
    unread: list[int] = field(default_factory=list)  # originals unread or still away: searched again once back

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "images": self.images,
            "hashed": self.hashed,
            "reused_codes": self.reused,
            "skipped": [{"image_id": i, "reason": r} for i, r in self.skipped],
            "rejected_at_intake": self.rejected_at_intake,
            "byte_duplicates": self.byte_duplicates,
            "searched": self.searched,
            "recomputed": self.recomputed,
            "whole_picture": [{"image_id": i, "reason": r} for i, r in self.whole_picture],
            "to_review": self.to_review,
            "sift_pairs": self.sift_pairs,
            "full_sift_pairs": self.full_sift_pairs,
            "evened_pairs": self.evened_pairs,
            "recut_pairs": self.recut_pairs,
            "local_candidates": self.local_candidates,
            "whole_candidates": self.whole_candidates,
            "panel_candidates": self.panel_candidates,
            "collages": self.collages,
            "decoded": self.decoded,
            "decodes_reused": self.decodes_reused,
            "features_taken": self.features_taken,
            "features_read": self.features_read,
            "local_cached": self.local_cached,
            "local_computed": self.local_computed,
            "pairs": dict(self.pairs),
            "clusters": self.clusters,
            "duplicates": self.duplicates,
            "low_res": self.low_res,
            "overrides": self.overrides,
            "labelable": self.labelable,
            "notes": self.notes,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "groups": self.groups,
        }


# --- hashing (workers) -------------------------------------------------------------

_ENCODER = RegionPHash()
_ADDRESS = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")  # "<_io.BytesIO object at 0x7f…>": no use to a reader


def _hash_file(path: str) -> tuple:
    """("ok", …codes) of one stored original, or ("error", kind, detail) for `_skip_reason`; the detail is free
    of the decoder's memory addresses. The bytes are checked against their name (SHA-256) first: a copy damaged
    on disk or restored from the wrong backup often still decodes, and its codes, stored against the catalogue's
    checksum, made it another photo's duplicate for good (one SHA-256 is about a tenth of a phone JPEG's decode)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return ("error", "unreadable", exc.strerror or type(exc).__name__)
    if hashlib.sha256(data).hexdigest() != Path(path).parent.name + Path(path).name:
        return ("error", "damaged", "")  # a damaged copy that still decodes would hash as a different photo
    try:
        d = decode(data)
    except Exception as exc:  # a decoder fault skips the image, never stops the run
        return ("error", "undecodable", f"{type(exc).__name__}: {_ADDRESS.sub('', str(exc)).strip()}".rstrip(": "))
    codes = _ENCODER.encode(d.thumb)  # every window, whatever method searches them later
    whole = None if d.whole is None else d.whole.tobytes()
    found = panels_text(d.panels)
    fidelity = (d.colour, d.drawn, d.turned, *d.tint, d.quality)
    return (
        "ok",
        d.pixel_sha256,
        d.thumb.tobytes(),
        d.masked,
        codes.astype("<u8").tobytes(),
        d.box,
        whole,
        found,
        fidelity,
    )


_CACHED = (
    "algo",
    "image_sha256",
    "codes",
    "thumb",
    "masked",
    "box",
    "note",
    "flat",
    "whole",
    "panels",
    "colour",
    "drawn",
    "turned",
    "tint_cr",
    "tint_cb",
    "quality",
)


def _box_fault(text) -> str | None:
    """Why a stored content box is unusable (`decode.read_box`), or None."""
    try:
        read_box(text)
    except ValueError as exc:
        return str(exc)
    return None


def cache_fault(row: dict, sha256: str) -> str | None:
    """Why a stored `dedupe_codes` row (raw column values, `_CACHED`) cannot be reused for the image whose
    original has checksum `sha256`, or None. Read raw, so a hand-edited value of the wrong type is a reason
    here rather than a TypeError deep in the search."""
    if why := binding_fault(row["image_sha256"], sha256):
        return why
    codes, thumb, whole = blob(row["codes"]), blob(row["thumb"]), blob(row["whole"])
    if not isinstance(codes, bytes) or len(codes) != CODE_BYTES or not isinstance(thumb, bytes):
        return f"corrupt ({len(codes or b'')} code bytes, {len(thumb or b'')} thumbnail bytes)"
    if len(thumb) != THUMB_BYTES:
        return f"corrupt ({len(codes)} code bytes, {len(thumb)} thumbnail bytes)"
    masked = row["masked"]
    if isinstance(masked, bool) or not isinstance(masked, int | float) or not 0 <= masked <= 1:
        return f"corrupt (in-painted share {str(masked)[:20]!r})"
    if row["box"] is not None and (why := _box_fault(row["box"])):
        return f"corrupt (content box {why})"
    if row["panels"] is not None and (
        not isinstance(row["panels"], str) or any(_box_fault(part) for part in row["panels"].split(";"))
    ):
        return "corrupt (collage panels unreadable)"
    if whole is not None and (not isinstance(whole, bytes) or len(whole) != THUMB_BYTES):
        return "corrupt (whole picture's thumbnail)"
    if row["flat"] not in (0, 1) or not (row["note"] is None or isinstance(row["note"], str)):
        return "corrupt (flags)"
    if not all(_share(row[k], limit) for k, limit in (("colour", 256.0), ("drawn", 1.0))):
        return "corrupt (colour measures)"
    if not _share(row["turned"], 1.0) or row["turned"] <= 0:
        return f"corrupt (share of a turned picture {str(row['turned'])[:20]!r})"
    if not all(_number(row[k]) and abs(row[k]) <= 128 for k in ("tint_cr", "tint_cb")):
        return "corrupt (tint)"
    if row["quality"] is not None and not (isinstance(row["quality"], int) and 1 <= row["quality"] <= 100):
        return f"corrupt (compression quality {str(row['quality'])[:20]!r})"
    return None


def _share(value, limit: float) -> bool:
    """Whether a stored measure is a number from 0 to `limit` (`curate.dedupe.fidelity`)."""
    return _number(value) and 0 <= value <= limit


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cached_codes(ws) -> dict[int, dict]:
    """image -> its `dedupe_codes` row as raw column values (no type conversion: `cache_fault` checks them)."""
    columns = ", ".join(("image_id", *_CACHED))
    with ws.engine.connect() as c:
        rows = c.exec_driver_sql(f"SELECT {columns} FROM dedupe_codes").all()
    return {i: dict(zip(_CACHED, rest, strict=True)) for i, *rest in rows}


def hash_missing(
    ws, options: DedupeOptions, report: DedupeReport, on_progress: Callable[[int, int], None] | None = None
) -> None:
    """Hash every image without current codes; one transaction per batch. A stored row is reused only when
    it is of this algorithm, computed from this image's bytes, and whole (`cache_fault`); every other one
    is recomputed, with one line saying why."""
    have = _cached_codes(ws)
    with ws.session() as s:
        rows = s.exec(select(Image.id, Image.sha256).order_by(Image.id)).all()
    stale, ok = 0, set()
    for i, sha in rows:
        if i not in have:
            continue
        if have[i]["algo"] != ALGO:
            stale += 1
        elif why := cache_fault(have[i], sha):
            report.recomputed.append(f"image {i}: cached hash codes are {why}; recomputed")
        else:
            ok.add(i)
    if stale:
        report.recomputed.insert(0, f"{stale} cached hash codes from an older algorithm version; recomputed")
    todo = [(i, sha) for i, sha in rows if i not in ok]
    report.reused = len(rows) - len(todo)
    image_of = {str(ws.store.path_for(sha)): i for i, sha in todo}
    path_of = {i: path for path, i in image_of.items()}

    def flush(done: list[tuple[str, tuple]]) -> None:
        pending = [(image_of[path], res) for path, res in done]
        with ws.session() as s:
            batch = [i for i, _ in pending]
            codes_rows = {c.image_id: c for c in s.exec(select(DedupeCode).where(DedupeCode.image_id.in_(batch))).all()}
            images = {i.id: i for i in s.exec(select(Image).where(Image.id.in_(batch))).all()}
            for image_id, res in pending:
                if res[0] != "ok":
                    reason = _skip_reason(ws.root, image_id, path_of[image_id], *res[1:])
                    report.skipped.append((image_id, reason))
                    if len(report.skipped) <= SKIPS_SAID:  # before: a line each, 585 on a folder's shared catalogue
                        log.warning("dedupe skipped %s", reason)  # the reason names the image
                    continue
                _, digest, thumb, masked, codes, box, whole, found, (colour, drawn, turned, cr, cb, quality) = res
                row = codes_rows.get(image_id) or DedupeCode(image_id=image_id, algo=ALGO, codes=b"", thumb=b"")
                row.algo, row.codes, row.thumb, row.masked, row.searched_with = ALGO, codes, thumb, masked, None
                if row.image_sha256 != images[image_id].sha256:  # computed from other bytes: its embedding too
                    row.embedding = None  # (before: kept, and two different photos were "the same" by CNN)
                row.image_sha256 = images[image_id].sha256
                row.whole, row.panels, row.colour, row.drawn, row.turned = whole, found, colour, drawn, turned
                row.tint_cr, row.tint_cb, row.quality = cr, cb, quality
                row.box, row.note, row.flat = box.as_text(), box.note, box.flat
                if box.note:
                    report.whole_picture.append((image_id, box.note))
                s.add(row)
                img = images[image_id]
                img.pixel_sha256 = digest
                img.phash = to_hex(np.frombuffer(codes, "<u8")[0])
                report.hashed += 1

    run_parallel(
        _hash_file,
        list(image_of),
        flush,
        batch=options.batch,
        workers=options.workers,
        serial_below=33,
        chunksize=8,
        on_progress=on_progress,
    )


SKIPS_SAID = 20  # skipped images named one by one on the terminal; the rest counted (`--json` lists them all)


def _skip_reason(root: Path, image_id: int, path: str, kind: str, detail: str) -> str:
    """The one line a skipped image gets: which image, its original's path in the workspace, what is wrong, and
    the fix (`curate ingest` writes a missing or damaged original again; an intact one it cannot help)."""
    where = Path(path)
    rel = where.relative_to(root).as_posix() if where.is_relative_to(root) else str(where)
    fix = ": re-run the `curate ingest` (or `curate scrape`) that brought it to restore it"
    if kind == "unreadable":
        return f"image {image_id}: its stored original {rel} is unreadable ({detail}){fix}"
    if kind == "damaged":
        return f"image {image_id}: its stored original {rel} is damaged (its bytes no longer match their SHA-256){fix}"
    return f"image {image_id}: cannot decode its stored original {rel} ({detail}), though its bytes are intact"


# --- record ----------------------------------------------------------------------------


def store_pairs(s: Session, pairs: list[Pair], run_id: int | None = None) -> None:
    """The run's pairs in place of the last run's: one executemany of plain rows, not an ORM object a pair
    (160,000 pairs: 1.1 s against 13.5; bench/README.md, "A steward's decision on a big catalogue")."""
    s.exec(delete(DedupePair))
    if pairs:
        s.execute(
            DedupePair.__table__.insert(),
            [
                {
                    "image_a": p.a,
                    "image_b": p.b,
                    "kind": p.kind,
                    "hamming": p.hamming,
                    "similarity": p.similarity,
                    "inliers": p.inliers,
                    "reason": p.reason,
                    "in_place": p.in_place,
                    "a_shows": p.a_shows,
                    "b_shows": p.b_shows,
                    "run_id": run_id,
                }
                for p in pairs
            ],
        )


# --- clustering ------------------------------------------------------------------------


def recluster(
    s: Session,
    run_id: int | None = None,
    min_side: int | None = None,
    hashed_only: bool = False,
    compared_only: bool = False,
) -> dict:
    """Rebuild `dedupe_members` from stored pairs and overrides (no hashing, no search).

    `min_side=None` keeps each image's previous low-resolution flag. Images already in
    labelling stay their cluster's representative (see `curate.dedupe.cluster`). `hashed_only`
    (a dedupe run, in its last transaction: every image with codes has just been compared) leaves out images
    without codes, never making an uncompared one a representative. `compared_only` (a steward's decision) leaves
    out, besides, every image no run has compared (`curate.dedupe.compared_ids`): one hashed by a run stopped before
    it compared stays out of every cluster until the next run (before: a decision clustered it, as if compared).
    """
    query = select(Image.id, Image.width, Image.height, Image.created_at, Image.size_bytes, Image.format).order_by(
        Image.id
    )
    if hashed_only or compared_only:  # an image ingested while a run hashed stays its own cluster until the next run
        query = query.join(DedupeCode, DedupeCode.image_id == Image.id).where(DedupeCode.algo == ALGO)
    if compared_only:
        query = query.where(Image.id.in_(compared_ids()))
    images = s.exec(query).all()
    prio = dict(
        s.exec(
            select(Provenance.image_id, func.min(Source.priority))
            .join(Source, Source.id == Provenance.source_id)
            .group_by(Provenance.image_id)
        ).all()
    )
    prev_low = dict(s.exec(select(DedupeMember.image_id, DedupeMember.low_res)).all())
    measures = (
        DedupeCode.colour,
        DedupeCode.drawn,
        DedupeCode.turned,
        DedupeCode.tint_cr,
        DedupeCode.tint_cb,
        DedupeCode.quality,
    )
    query = select(DedupeCode.image_id, DedupeCode.box, *measures).where(DedupeCode.algo == ALGO)
    stored = {row.image_id: row for row in s.exec(query).all()}
    box = {i: parse_box(row.box) for i, row in stored.items()}
    cands = {}
    for row in images:
        i, w, h = row[:3]
        low = (min(w, h) < min_side) if min_side else bool(prev_low.get(i, False))
        cands[i] = _candidate(row, prio.get(i, 9), low, box.get(i, (0.0, 0.0, 1.0, 1.0)), stored.get(i))
    pairs = select(DedupePair.image_a, DedupePair.image_b, DedupePair.kind, DedupePair.similarity)
    edges = [Edge(*row) for row in s.exec(pairs.where(DedupePair.kind.not_in(NOT_EDGES))).all()]
    splits, kept = set(), {}
    decisions = select(DedupeOverride.image_a, DedupeOverride.image_b, DedupeOverride.action, DedupeOverride.created_at)
    for a, b, action, at in s.exec(decisions).all():
        if action == KEEP:
            kept[a] = at
            continue
        if action == "merge":
            edges.append(Edge(a, b, "merge", 1.0))
        else:
            splits.add((a, b))
    labelled = set(s.exec(select(LabelTask.image_id).distinct()).all())
    final = set(s.exec(select(Consensus.image_id).where(Consensus.status.in_(FINAL))).all())
    review = s.exec(select(DedupePair.image_a, DedupePair.image_b).where(DedupePair.kind == "review")).all()
    untested = s.exec(select(DedupePair.image_a, DedupePair.image_b).where(DedupePair.kind == UNTESTED)).all()
    small = {i for i, b in box.items() if i in cands and box_side(cands[i].width, cands[i].height, b) < SMALL}
    tolerated = [(a, b) for a, b in [*review, *untested] if (a, b) not in splits]
    roots = clusters(list(cands), edges, splits, tolerated, last=small)
    found = [*((e.a, e.b, e.kind) for e in edges), *((a, b, "review") for a, b in review)]
    to_review = len(undecided(found, roots, splits))  # the rule `curate status` and the review sheet count by
    groups: dict[int, list[Candidate]] = defaultdict(list)
    for i, r in roots.items():
        groups[r].append(cands[i])
    shown = DedupePair.image_a, DedupePair.image_b, DedupePair.a_shows, DedupePair.b_shows
    parts = crops(s.exec(select(*shown).where(DedupePair.kind == "hash", DedupePair.a_shows.is_not(None))).all())
    reps = {root: representative(members, labelled, final, kept, parts).image_id for root, members in groups.items()}
    set_aside = sorted(i for i in kept if i in roots and i != reps[roots[i]] and cands[i].low_res)
    rows = [
        {
            "image_id": c.image_id,
            "cluster_key": cluster_key(root),
            "representative": c.image_id == reps[root],
            "low_res": c.low_res,
            "run_id": run_id,
        }
        for root, members in groups.items()
        for c in members
    ]
    s.exec(delete(DedupeMember))  # ORM-enabled: member objects this session holds are deleted with their rows
    if rows:  # one executemany, not an ORM object a row: half a steward's decision at 100,000 images (bench/README.md)
        s.execute(DedupeMember.__table__.insert(), rows)
    multi = {r: m for r, m in groups.items() if len(m) > 1}
    return {
        "clusters": len(multi),
        "duplicates": sum(len(m) - 1 for m in multi.values()),
        "low_res": sum(c.low_res for c in cands.values()),
        "labelable": sum(1 for r, m in groups.items() if not cands[reps[r]].low_res),
        "to_review": to_review,
        "overrides": s.exec(select(func.count()).select_from(DedupeOverride)).one(),
        "kept_low_res": set_aside,  # kept images now under the minimum side: the rule chose instead
        "groups": [
            {
                "cluster": cluster_key(r),
                "size": len(m),
                "representative": reps[r],
                "members": sorted(c.image_id for c in m),
            }
            for r, m in sorted(multi.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        ],
    }


def _candidate(image, priority: int, low_res: bool, box: tuple[float, float, float, float], code) -> Candidate:
    """What the representative rule reads of one image (`image`: id, width, height, created, bytes, format) and
    its stored codes row (`code`: None before it is hashed). A picture turned on a canvas counts only the share it
    covers, the rest being fill, and is framed as a box cut on two opposite sides is (`cluster._framed`)."""
    i, w, h, created, size, fmt = image
    x0, y0, x1, y1 = box
    turned = 1.0 if code is None or code.turned is None else code.turned
    return Candidate(
        i,
        w,
        h,
        priority,
        created,
        low_res,
        max(0.0, (x1 - x0) * (y1 - y0)) * turned,
        None if code is None else code.colour,
        None if code is None else code.drawn,
        size,
        fmt,
        (x0 > 0 and x1 < 1) or (y0 > 0 and y1 < 1) or turned < 1.0,
        None if code is None or code.tint_cr is None or code.tint_cb is None else (code.tint_cr, code.tint_cb),
        None if code is None else code.quality,
    )


def run_dedupe(
    ws,
    options: DedupeOptions = DedupeOptions(),
    run_id: int | None = None,
    on_progress: Callable[[str, int, int | None], None] | None = None,
) -> DedupeReport:
    """Dedupe the whole catalogue (incrementally: only new images are hashed). `on_progress(stage, done,
    total)` hears each stage: "hash" (pictures), then "local features" (pictures) and "verify" (pairs),
    whose totals grow as the run finds more to do."""
    options.validate()
    report = DedupeReport(run_id=run_id)
    t0 = time.perf_counter()
    hash_missing(ws, options, report, stage_of(on_progress, "hash"))
    t1 = time.perf_counter()
    pairs = find_pairs(ws, options, ALGO, report, on_progress)
    t2 = time.perf_counter()
    with ws.session() as s:  # one transaction: pairs, membership, search marks
        store_pairs(s, pairs, run_id)
        report.pairs.update(p.kind for p in pairs)
        s.exec(update(DedupeCode).where(DedupeCode.algo == ALGO).values(searched_with=options.settings))
        if report.unread:  # their pairs were judged without their pixels: judged again once they are back
            marked = UNREAD + options.settings
            s.exec(update(DedupeCode).where(DedupeCode.image_id.in_(report.unread)).values(searched_with=marked))
        s.flush()
        summary = recluster(s, run_id, options.min_side, hashed_only=True)
        report.images = s.exec(select(func.count()).select_from(Image)).one()
        arrivals = s.exec(select(func.count()).select_from(Provenance)).one()
        report.byte_duplicates = arrivals - report.images
        report.rejected_at_intake = dict(Counter(reason for _, reason in standing_rejections(s)))
    for k in ("clusters", "duplicates", "low_res", "labelable", "overrides", "groups", "to_review"):
        setattr(report, k, summary[k])
    if aside := summary["kept_low_res"]:
        report.notes.append(
            f"kept image{'s' * (len(aside) > 1)} {', '.join(map(str, aside))} {'are' if len(aside) > 1 else 'is'} "
            f"below --min-side {options.min_side} now and would never be labelled: each cluster is represented by "
            "the rule's choice instead (`curate dedupe keep` another, or a lower --min-side keeps the keep)"
        )
    verifying = report.seconds.get("verify", 0.0)  # find_pairs measured it
    report.seconds = {
        "hash": t1 - t0,
        "search": t2 - t1 - verifying,
        "verify": verifying,
        "verify_cpu": report.seconds.get("verify_cpu", 0.0),
        "record": time.perf_counter() - t2,
        "total": time.perf_counter() - t0,
    }
    log.info("dedupe images=%d hashed=%d clusters=%d", report.images, report.hashed, report.clusters)
    return report
