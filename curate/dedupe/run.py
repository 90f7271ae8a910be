"""`curate dedupe`: hash what is new, search everything, cluster, record.

Order of work, so that a killed run is harmless:
1. hash images without codes, committing each batch (a re-run continues);
2. search stored codes (vectorised; only pairs touching new images when the
   settings are unchanged), verify candidates, add pixel-identical pairs;
3. in ONE transaction, replace pairs and cluster membership. Overrides are
   never written by a run, so the steward's decisions always survive.
"""
from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from sqlalchemy import delete, func, update
from sqlmodel import Session, select

from curate.dedupe.cluster import KIND_RANK, Candidate, Edge, cluster_key, clusters, representative
from curate.label.diagnoses import FINAL
from curate.dedupe.decode import THUMB, decode
from curate.dedupe.hashing import METHODS, RegionPHash, WINDOWS, to_hex
from curate.dedupe.search import backend_named
from curate.errors import ConfigError
from curate.parallel import run_parallel
from db.models import (
    DedupeCode,
    DedupeMember,
    DedupeOverride,
    DedupePair,
    Image,
    Provenance,
    Rejection,
    Source,
)
from db.models.label import Consensus, LabelTask


log = logging.getLogger("curate.dedupe")

ALGO = f"region-phash-v1/{THUMB}/{len(WINDOWS)}"


@dataclass(frozen=True)
class DedupeOptions:
    min_side: int = 128  # images with a shorter side are kept out of labelling (the paper's low-res filter)
    radius: int = 14  # Hamming radius of the hash search (bits of 64)
    similarity: float = 0.90  # verified DCT correlation a hash candidate needs
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
        return f"{ALGO}|{self.method}|r{self.radius}|s{self.similarity:g}"


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
    clusters: int = 0  # clusters with two or more images
    duplicates: int = 0  # images that are not their cluster's representative
    low_res: int = 0
    overrides: int = 0
    labelable: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    groups: list[dict] = field(default_factory=list)

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


def _hash_file(path: str) -> tuple:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return ("error", f"stored original unreadable ({exc.strerror or type(exc).__name__})")
    try:
        d = decode(data)
    except Exception as exc:  # a decoder fault skips the image, never stops the run
        return ("error", f"cannot decode ({type(exc).__name__}: {exc})")
    codes = _ENCODER.encode(d.thumb)  # every window, whatever method searches them later
    return ("ok", d.pixel_sha256, d.thumb.tobytes(), d.masked, codes.astype("<u8").tobytes())


def hash_missing(ws, options: DedupeOptions, report: DedupeReport, on_progress: Callable[[int, int], None] | None = None) -> None:
    """Hash every image without current codes; one transaction per batch."""
    with ws.session() as s:
        have = dict(s.exec(select(DedupeCode.image_id, DedupeCode.algo)).all())
        rows = s.exec(select(Image.id, Image.sha256).order_by(Image.id)).all()
    todo = [(i, sha) for i, sha in rows if have.get(i) != ALGO]
    report.reused = len(rows) - len(todo)
    image_of = {str(ws.store.path_for(sha)): i for i, sha in todo}

    def flush(done: list[tuple[str, tuple]]) -> None:
        pending = [(image_of[path], res) for path, res in done]
        with ws.session() as s:
            batch = [i for i, _ in pending]
            codes_rows = {c.image_id: c for c in s.exec(select(DedupeCode).where(DedupeCode.image_id.in_(batch))).all()}
            images = {i.id: i for i in s.exec(select(Image).where(Image.id.in_(batch))).all()}
            for image_id, res in pending:
                if res[0] != "ok":
                    report.skipped.append((image_id, res[1]))
                    log.warning("dedupe skipped image %d: %s", image_id, res[1])
                    continue
                _, digest, thumb, masked, codes = res
                row = codes_rows.get(image_id) or DedupeCode(image_id=image_id, algo=ALGO, codes=b"", thumb=b"")
                row.algo, row.codes, row.thumb, row.masked, row.searched_with = ALGO, codes, thumb, masked, None
                s.add(row)
                img = images[image_id]
                img.pixel_sha256 = digest
                img.phash = to_hex(np.frombuffer(codes, "<u8")[0])
                report.hashed += 1

    run_parallel(_hash_file, list(image_of), flush, batch=options.batch, workers=options.workers, serial_below=33,
                 chunksize=8, on_progress=on_progress)


# --- search --------------------------------------------------------------------------


def _load_codes(s: Session):
    rows = s.exec(
        select(DedupeCode.image_id, DedupeCode.codes, DedupeCode.thumb, DedupeCode.searched_with)
        .where(DedupeCode.algo == ALGO)
        .order_by(DedupeCode.image_id)
    ).all()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    codes = np.stack([np.frombuffer(r[1], "<u8") for r in rows]).astype(np.uint64) if rows else np.empty((0, len(WINDOWS)), np.uint64)
    thumbs = [np.frombuffer(r[2], np.uint8).reshape(THUMB, THUMB) for r in rows]
    searched = [r[3] for r in rows]
    return ids, codes, thumbs, searched


def find_pairs(ws, options: DedupeOptions, report: DedupeReport) -> tuple[list[Edge], dict[tuple[int, int], int]]:
    """Every matched pair (pixel-identical, verified hash matches, optionally CNN) and the
    Hamming distance of each hash pair."""
    if options.method == "phash":
        method = METHODS["phash"](radius=options.radius, backend=options.backend)
    else:
        method = RegionPHash(radius=options.radius, similarity=options.similarity, backend=options.backend)
    with ws.session() as s:
        ids, codes, thumbs, searched = _load_codes(s)
        digests = s.exec(select(Image.id, Image.pixel_sha256).where(Image.pixel_sha256.is_not(None))).all()
        old_pairs = s.exec(select(DedupePair).where(DedupePair.kind.in_(("hash", "cnn")))).all()
        old_pairs = [(p.image_a, p.image_b, p.kind, p.hamming, p.similarity) for p in old_pairs]
    new = np.array([w != options.settings for w in searched], dtype=bool)
    edges: list[Edge] = []
    hamming: dict[tuple[int, int], int] = {}
    # Exact: same decoded pixels (same SHA-256 bytes were already merged at intake).
    by_digest: dict[str, list[int]] = defaultdict(list)
    for i, dg in digests:
        by_digest[dg].append(i)
    for group in by_digest.values():
        group.sort()
        for other in group[1:]:
            edges.append(Edge(group[0], other, "pixel", 1.0))
    # Near: hash search + verification; incremental when nothing but new images changed.
    incremental = 0 < new.sum() < len(new) or (len(new) and not new.any())
    report.searched = "incremental" if incremental else "all"
    if incremental:
        known = set(ids[~new].tolist())
        for a, b, kind, h, sim in old_pairs:
            if a in known and b in known:
                edges.append(Edge(a, b, kind, sim))
                hamming[(a, b)] = h
        matches = method.find_duplicates(codes, thumbs, new=new) if new.any() else []
    else:
        edges.extend(Edge(a, b, k, sim) for a, b, k, h, sim in old_pairs if k == "cnn")
        matches = method.find_duplicates(codes, thumbs)
    for m in matches:
        a, b = int(ids[m.a]), int(ids[m.b])
        edges.append(Edge(min(a, b), max(a, b), "hash", m.similarity))
        hamming[(min(a, b), max(a, b))] = m.hamming
    if options.cnn:
        from curate.dedupe.cnn import cnn_pairs

        cnn_edges, note = cnn_pairs(ws, options.cnn_similarity, {(e.a, e.b) for e in edges})
        if note:
            report.notes.append(note)
        edges = [e for e in edges if e.kind != "cnn"] + cnn_edges
    # One edge per pair, strongest kind first.
    best: dict[tuple[int, int], Edge] = {}
    for e in sorted(edges, key=lambda e: (KIND_RANK[e.kind], -e.similarity)):
        best.setdefault((e.a, e.b), e)
    return list(best.values()), hamming


# --- clustering ------------------------------------------------------------------------


def recluster(s: Session, run_id: int | None = None, min_side: int | None = None, hashed_only: bool = False) -> dict:
    """Rebuild `dedupe_members` from stored pairs and overrides (no hashing, no search).

    `min_side=None` keeps each image's previous low-resolution flag. Images already in
    labelling stay their cluster's representative (see `curate.dedupe.cluster`). `hashed_only`
    (a dedupe run) leaves out images without codes, never making an uncompared one a representative.
    """
    query = select(Image.id, Image.width, Image.height, Image.created_at).order_by(Image.id)
    if hashed_only:  # a dedupe run: an image ingested while it hashed stays its own cluster until the next run
        query = query.join(DedupeCode, DedupeCode.image_id == Image.id).where(DedupeCode.algo == ALGO)
    images = s.exec(query).all()
    prio = dict(
        s.exec(
            select(Provenance.image_id, func.min(Source.priority))
            .join(Source, Source.id == Provenance.source_id)
            .group_by(Provenance.image_id)
        ).all()
    )
    prev_low = dict(s.exec(select(DedupeMember.image_id, DedupeMember.low_res)).all())
    cands = {
        i: Candidate(i, w, h, prio.get(i, 9), created, (min(w, h) < min_side) if min_side else bool(prev_low.get(i, False)))
        for i, w, h, created in images
    }
    edges = [Edge(p.image_a, p.image_b, p.kind, p.similarity) for p in s.exec(select(DedupePair)).all()]
    splits = set()
    for o in s.exec(select(DedupeOverride)).all():
        if o.action == "merge":
            edges.append(Edge(o.image_a, o.image_b, "merge", 1.0))
        else:
            splits.add((o.image_a, o.image_b))
    labelled = set(s.exec(select(LabelTask.image_id).distinct()).all())
    final = set(s.exec(select(Consensus.image_id).where(Consensus.status.in_(FINAL))).all())
    roots = clusters(list(cands), edges, splits)
    groups: dict[int, list[Candidate]] = defaultdict(list)
    for i, r in roots.items():
        groups[r].append(cands[i])
    s.exec(delete(DedupeMember))
    reps = {}
    for root, members in groups.items():
        rep = representative(members, labelled, final)
        reps[root] = rep.image_id
        for c in members:
            s.add(DedupeMember(image_id=c.image_id, cluster_key=cluster_key(root), representative=c.image_id == rep.image_id, low_res=c.low_res, run_id=run_id))
    s.flush()
    multi = {r: m for r, m in groups.items() if len(m) > 1}
    return {
        "clusters": len(multi),
        "duplicates": sum(len(m) - 1 for m in multi.values()),
        "low_res": sum(c.low_res for c in cands.values()),
        "labelable": sum(1 for r, m in groups.items() if not cands[reps[r]].low_res),
        "overrides": s.exec(select(func.count()).select_from(DedupeOverride)).one(),
        "groups": [
            {"cluster": cluster_key(r), "size": len(m), "representative": reps[r], "members": sorted(c.image_id for c in m)}
            for r, m in sorted(multi.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        ],
    }


def run_dedupe(
    ws,
    options: DedupeOptions = DedupeOptions(),
    run_id: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> DedupeReport:
    """Dedupe the whole catalogue (incrementally: only new images are hashed)."""
    options.validate()
    report = DedupeReport(run_id=run_id)
    t0 = time.perf_counter()
    hash_missing(ws, options, report, on_progress)
    t1 = time.perf_counter()
    edges, hamming = find_pairs(ws, options, report)
    t2 = time.perf_counter()
    with ws.session() as s:  # one transaction: pairs, membership, search marks
        s.exec(delete(DedupePair))
        for e in edges:
            s.add(DedupePair(image_a=e.a, image_b=e.b, kind=e.kind, hamming=hamming.get((e.a, e.b)), similarity=e.similarity, run_id=run_id))
            report.pairs[e.kind] += 1
        s.exec(update(DedupeCode).where(DedupeCode.algo == ALGO).values(searched_with=options.settings))
        s.flush()
        summary = recluster(s, run_id, options.min_side, hashed_only=True)
        report.images = s.exec(select(func.count()).select_from(Image)).one()
        arrivals = s.exec(select(func.count()).select_from(Provenance)).one()
        report.byte_duplicates = arrivals - report.images
        report.rejected_at_intake = dict(s.exec(select(Rejection.reason, func.count()).group_by(Rejection.reason)).all())
    for k in ("clusters", "duplicates", "low_res", "labelable", "overrides", "groups"):
        setattr(report, k, summary[k])
    report.seconds = {"hash": t1 - t0, "search": t2 - t1, "record": time.perf_counter() - t2, "total": time.perf_counter() - t0}
    log.info("dedupe images=%d hashed=%d clusters=%d", report.images, report.hashed, report.clusters)
    return report
