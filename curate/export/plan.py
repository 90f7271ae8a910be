"""Read the catalogue once and decide everything an export will write, before any file exists.

`make_plan` validates the request (version, name, sources, classes, folds), reads the
consensus, provenance and dedupe clusters, runs the pure splitter and returns an `ExportPlan`:
the manifest rows minus the exported bytes' checksums, the dataset.json settings, the card's
label statistics, and a fingerprint of all of it. With a parent version (given, or the highest
earlier version of the same name) the parent's manifest.csv pins every image it held to its
parent split and fold (`curate.export.splits`, rule 5) unless `reshuffle` is set. The same
catalogue state, options and parent give the same plan and fingerprint, which is what makes a
re-export byte-identical and lets a second export of the same name@version be recognised (same
fingerprint) or refused (different).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from curate.dataset import RESIZE_POLICIES, SPLITS, DatasetError, DatasetVersion
from curate.dedupe import cluster_map, uncompared_image_ids, undecided_pairs
from curate.errors import ConfigError, ExportError
from curate.export.card import UNKNOWN_LICENCE
from curate.export.exclusions import (
    CONFLICTING_COPIES,
    IDENTIFIABLE_COPY,
    catalogue_exclusions,
    consensus_exclusions,
    consensus_reason,
)
from curate.export.images import ImageSpec, roi_region, union_box
from curate.export.splits import Item, SplitPlan, plan_splits
from curate.label.agreement import rater_agreement
from curate.label.diagnoses import SETTINGS_TABLE, STATUSES, DiagnosisList
from curate.label.recompute import collect, identifiable_photos
from curate.label.rules import describe, recorded_rules
from db.models import DatasetVersionRecord, Image, Provenance, Source, most_chars
from db.models.label import Consensus

FORMAT_VERSION = 3  # bump when the bytes written for the same plan change (2: declared diagnoses, exclusion table; 3:
# colours from an embedded ICC profile converted to sRGB, a TIFF tagged with an orientation turned once)
# \Z, not $: "$" matches before a final newline too, and `--name $'abc\n'` made a folder `exports/abc\n/`
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)\Z")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}\Z")
VERSION_MOST = most_chars(DatasetVersionRecord, "version")
TASKS = ("binary", "diagnosis")


@dataclass(frozen=True)
class ExportOptions:
    name: str
    version: str
    task: str = "binary"
    spec: ImageSpec = ImageSpec()
    test_fraction: float = 0.2
    folds: int = 5
    seed: int = 0
    external_sources: tuple[str, ...] = ()
    parent: str | None = None  # None: the highest earlier version of the same name, if any
    reshuffle: bool = False  # deal every group afresh, ignoring the parent's splits and folds
    archive: bool = False
    workers: int = 0  # 0: one per core


@dataclass
class Row:
    """One manifest row before its files exist."""

    image_id: int
    sha256_original: str
    label: str
    diagnosis: str
    split: str
    fold: int | None
    source: str
    licence: str
    method: str
    n_raters: int
    agreement: float | None
    region: tuple[int, int, int, int] | None
    cluster: str
    has_case_id: bool
    size: tuple[int, int]  # oriented original size (catalogue)

    @property
    def file(self) -> str:
        return f"{self.split}/{self.label}/img{self.image_id:06d}.jpg"

    @property
    def roi_file(self) -> str:
        return f"roi/{self.file}" if self.region else ""


@dataclass
class ExportPlan:
    options: ExportOptions
    rows: list[Row]  # sorted by file path
    classes: list[str]
    split: SplitPlan
    meta: dict[str, Any]  # dataset.json without checksums
    labels: dict[str, Any]  # label statistics for the card
    sources: list[dict[str, Any]]  # per source: name, kind, licence, images per split
    parent_dir: Path | None
    fingerprint: str = ""
    parent_folds_kept: bool = True  # False: the parent had another number of folds, so folds were re-dealt
    parents_gone: list[str] = field(default_factory=list)  # later versions than the parent whose folders are gone
    excluded: dict[str, int] = field(
        default_factory=dict
    )  # every catalogue image not exported, by reason (not fingerprinted)
    conflicting: list[dict[int, str]] = field(default_factory=list)  # left out: copies under two diagnoses


def parse_version(text: str) -> tuple[int, int, int]:
    m = SEMVER.match(text or "")
    if not m:
        raise ExportError(f"version {text!r} is not semantic (MAJOR.MINOR.PATCH, e.g. 1.0.0)")
    if len(text) > VERSION_MOST:  # before: written whole, then PostgreSQL refused to record it (none listed it)
        raise ExportError(f"version {text[:20]}… is {len(text)} characters long (at most {VERSION_MOST})")
    return tuple(int(x) for x in m.groups())  # type: ignore[return-value]


def iso_utc(dt: datetime | None) -> str:
    """`dt` as dataset.json writes times (2026-12-05T18:06:25Z), the same on every catalogue backend: SQLite's
    naive times are UTC, PostgreSQL's carry their zone."""
    if dt is None:
        return "1970-01-01T00:00:00Z"
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate(options: ExportOptions) -> None:
    if not NAME.match(options.name or ""):
        raise ExportError(
            f"dataset name {options.name!r} must be lower-case letters, digits, '-' or '_', starting with a letter "
            "or digit (at most 100)"
        )
    version = parse_version(options.version)
    if options.parent is not None and parse_version(options.parent) >= version:  # before: a parent from the future
        raise ExportError(f"--parent {options.parent} must be an earlier version than --version {options.version}")
    if options.task not in TASKS:
        raise ExportError(f"task must be one of {', '.join(TASKS)}, not {options.task!r}")
    spec = options.spec
    if spec.policy not in RESIZE_POLICIES:
        raise ExportError(f"resize policy must be one of {', '.join(RESIZE_POLICIES)}, not {spec.policy!r}")
    if not all(16 <= s <= 4096 for s in spec.size):
        raise ExportError(f"image size must be between 16 and 4096 pixels, got {spec.size[0]}x{spec.size[1]}")
    if not 0.0 <= spec.roi_margin <= 2.0:
        raise ExportError(f"ROI margin must be between 0 and 2 (a fraction of the box), got {spec.roi_margin}")
    if not 0.0 < options.test_fraction < 1.0:
        raise ExportError(f"test fraction must be above 0 and below 1, not {options.test_fraction}")
    if options.folds < 2:
        raise ExportError(f"folds must be at least 2, got {options.folds}")


def _kappa_summary(s: Session, labels: list[str]) -> dict[str, Any] | None:
    """Cohen's kappa from the label stage's per-rater annotations; None before any image has two ratings."""
    ag = rater_agreement(collect(s).values(), labels)
    if not ag.n:
        return None
    return {"pairs": ag.n, "kappa": ag.kappa, "observed_agreement": ag.observed}


def make_plan(
    s: Session, options: ExportOptions, exports_root: Path, versions: list[str], diagnoses: DiagnosisList
) -> ExportPlan:
    """Everything the export will write, decided from the catalogue and the workspace's diagnosis list.

    The binary target comes from the declared positive set; "other diagnosis" is kept (non_mpox, or its
    own class); "not assessable" and every other exclusion are counted by reason. Raises ExportError, writing
    nothing."""
    validate(options)
    known_sources = {src.name: src for src in s.exec(select(Source)).all()}
    unknown = [n for n in options.external_sources if n not in known_sources]
    if unknown:
        names = ", ".join(sorted(known_sources)) or "none"
        raise ExportError(f"external source {', '.join(map(repr, unknown))} does not exist (sources: {names})")
    external_ids = {known_sources[n].id for n in options.external_sources}

    consensus = s.exec(select(Consensus)).all()
    status_counts = Counter(c.status for c in consensus)
    chosen = sorted((c for c in consensus if consensus_reason(c) is None), key=lambda c: c.image_id)
    undeclared = next((c for c in chosen if c.diagnosis not in diagnoses.names), None)
    if undeclared is not None:
        raise ExportError(
            f"image {undeclared.image_id}: diagnosis {undeclared.diagnosis!r} is not declared in the workspace "
            f"settings ({SETTINGS_TABLE}.diagnoses in curate.toml); declare it again to export"
        )
    if not chosen:
        # a folder's name is a prior label, never an export's: the next step is the clinicians' (before: no hint)
        raise ExportError(
            "no agreed or adjudicated labels to export (consensus: "
            + (", ".join(f"{k} {v}" for k, v in sorted(status_counts.items())) or "empty")
            + "): clinicians label first (curate studio start, curate label push, then curate label pull)"
        )
    clusters = cluster_map(s)
    chosen, left_out, conflicting = _copies_left_out(chosen, identifiable_photos(s, clusters), clusters)
    if not chosen:
        raise ExportError(
            f"every labelled image is a copy of a photo flagged identifiable or labelled with two diagnoses "
            f"({len(left_out)} image(s), see `curate export`'s exclusion reasons once others are labelled)"
        )
    ids = [c.image_id for c in chosen]
    images = {im.id: im for im in s.exec(select(Image).where(Image.id.in_(ids))).all()}
    prov: dict[int, list[tuple[Provenance, Source]]] = defaultdict(list)
    for p, src in s.exec(
        select(Provenance, Source).join(Source, Source.id == Provenance.source_id).where(Provenance.image_id.in_(ids))
    ).all():
        prov[p.image_id].append((p, src))
    chosen_ids = set(ids)
    together: dict[int, list[str]] = defaultdict(list)  # an undecided pair's images share a group: one split
    kept_together = 0
    for a, b in undecided_pairs(s):
        if a in chosen_ids and b in chosen_ids:
            together[a].append(f"pair:{a}-{b}")
            together[b].append(f"pair:{a}-{b}")
            kept_together += 1

    items, info = [], {}
    for c in chosen:
        im = images[c.image_id]
        arrivals = sorted(prov.get(c.image_id, []), key=lambda ps: (ps[1].priority, ps[1].id, ps[0].id))
        if not arrivals:
            raise ExportError(f"image {c.image_id} has consensus but no provenance; the catalogue is inconsistent")
        p0, src0 = arrivals[0]
        case_keys = sorted({f"case:{src.id}:{p.case_id}" for p, src in arrivals if p.case_id})
        cluster = clusters.get(c.image_id, f"img{c.image_id}")
        label = diagnoses.binary_label(c.diagnosis) if options.task == "binary" else c.diagnosis
        external = any(src.id in external_ids for _, src in arrivals)
        ext_src = next((src for _, src in arrivals if src.id in external_ids), None)
        groups = (f"cluster:{cluster}", *case_keys, *together.get(c.image_id, ()))
        items.append(Item(id=c.image_id, label=label, groups=groups, external=external))
        src_main = ext_src or src0
        licence = (
            next((p.licence for p, src in arrivals if src is src_main and p.licence), None) or src_main.licence or ""
        )
        try:
            boxes = json.loads(c.boxes or "[]")
        except json.JSONDecodeError:
            raise ExportError(f"image {c.image_id}: consensus boxes are not valid JSON") from None
        box = union_box(boxes)
        info[c.image_id] = dict(
            im=im,
            c=c,
            label=label,
            source=src_main.name,
            licence=licence,
            cluster=cluster,
            has_case=bool(case_keys),
            region=roi_region(box, options.spec.roi_margin, im.width, im.height) if box else None,
        )

    classes = sorted({it.label for it in items})
    if len(classes) < 2:
        left = f" ({len(left_out)} copies left out: {', '.join(sorted(set(left_out.values())))})" if left_out else ""
        raise ExportError(
            f"the {options.task} task needs at least two classes; the consensus holds only {classes}{left}"
        )
    parent, parent_dir, parents_gone = _find_parent(options, exports_root, versions)
    assignment, keep_folds = None, True
    if parent_dir is not None and not options.reshuffle:
        assignment, keep_folds = parent_assignment(parent_dir, options.folds)
    try:
        split = plan_splits(
            items, options.test_fraction, options.folds, options.seed, parent=assignment, keep_folds=keep_folds
        )
    except ConfigError as exc:
        raise ExportError(str(exc)) from None

    rows = []
    for it in items:
        d = info[it.id]
        c = d["c"]
        rows.append(
            Row(
                image_id=it.id,
                sha256_original=d["im"].sha256,
                label=d["label"],
                diagnosis=c.diagnosis,
                split=split.split[it.id],
                fold=split.fold.get(it.id),
                source=d["source"],
                licence=d["licence"],
                method=c.method or "",
                n_raters=c.n_raters,
                agreement=c.agreement,
                region=d["region"],
                cluster=d["cluster"],
                has_case_id=d["has_case"],
                size=(d["im"].width, d["im"].height),
            )
        )
    rows.sort(key=lambda r: r.file)

    agreements = [c.agreement for c in chosen if c.agreement is not None]
    labels = {
        "statuses": {k: status_counts.get(k, 0) for k in STATUSES},
        "excluded": consensus_exclusions(consensus, left_out),
        "rules": describe(recorded_rules(s)),
        "methods": dict(sorted(Counter(r.method or "unspecified" for r in rows).items())),
        "raters": {str(k): v for k, v in sorted(Counter(r.n_raters for r in rows).items())},
        "mean_agreement": round(sum(agreements) / len(agreements), 4) if agreements else None,
        "kappa": _kappa_summary(s, diagnoses.codes),
    }
    if uncompared := len(uncompared_image_ids(s, set(ids))):  # only then: other versions' fingerprints stay
        labels["uncompared"] = uncompared
    if kept_together:  # likewise
        labels["undecided_pairs"] = kept_together
    if conflicting:  # likewise
        labels["conflicting_copies"] = len(conflicting)
    per_source: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        per_source[r.source][r.split] += 1
    sources = []
    for name in sorted(per_source):
        src = known_sources[name]
        lic = sorted({r.licence or UNKNOWN_LICENCE for r in rows if r.source == name})
        sources.append(
            {
                "name": name,
                "kind": src.kind,
                "licences": lic,
                "external": name in options.external_sources,
                "images": {k: per_source[name][k] for k in SPLITS},
            }
        )

    updated = max((c.updated_at for c in chosen), key=iso_utc)
    spec = options.spec
    meta: dict[str, Any] = {
        "name": options.name,
        "version": options.version,
        "task": options.task,
        "classes": classes,
        "diagnoses": diagnoses.as_meta(),
        "image_size": list(spec.size),
        "resize_policy": spec.policy,
        "seed": options.seed,
        "folds": options.folds,
        "test_fraction": options.test_fraction,
        "external_sources": sorted(options.external_sources),
        "parent": parent,
        "created_at": iso_utc(updated),
        "preprocessing": spec.as_dict(),
        "format_version": FORMAT_VERSION,
    }
    if parent is not None:  # only then: a first version's dataset.json (and fingerprint) is as it always was
        meta["reshuffle"] = options.reshuffle
    plan = ExportPlan(
        options=options,
        rows=rows,
        classes=classes,
        split=split,
        meta=meta,
        labels=labels,
        sources=sources,
        parent_dir=parent_dir,
        parent_folds_kept=keep_folds,
        parents_gone=parents_gone,
        excluded=catalogue_exclusions(s, set(ids), left_out),
        conflicting=conflicting,
    )
    plan.fingerprint = fingerprint(plan)
    plan.meta["fingerprint"] = plan.fingerprint
    # where `roi_box` lives: the oriented original's size, so a reader can place the box on the exported image
    # (train's pointing game); added after the fingerprint, which depends on the catalogue state only
    plan.meta["original_sizes"] = {str(r.image_id): list(r.size) for r in rows if r.region}
    return plan


def _copies_left_out(
    chosen: list[Consensus], identifiable: set[int], clusters: dict[int, str]
) -> tuple[list[Consensus], dict[int, str], list[dict[int, str]]]:
    """`chosen` less the labelled copies of a photo that must not go out; those images with their exclusion
    reason; and the conflicting clusters' images with their diagnoses. Copies are the members of one dedupe
    cluster, each labelled (before dedupe joined them, or before a merge or a keep):

    * a cluster holding an image flagged "identifiable features" (`IDENTIFIABLE_COPY`; `identifiable`, from
      `identifiable_photos`): the flag is on the photo, whichever copy the clinicians saw it on (before, its other
      copies went out);
    * a cluster whose copies carry two or more diagnoses (`CONFLICTING_COPIES`): the photo has no consensus, as
      the study's rule says. Exporting both put one photo in the data under two labels; exporting the
      representative alone lost what the other copy carried (its case id, undecided pairs, external source,
      parent place)."""
    key = lambda i: clusters.get(i, f"img{i}")  # noqa: E731
    left_out = {c.image_id: IDENTIFIABLE_COPY for c in chosen if c.image_id in identifiable}
    diagnoses_of: dict[str, dict[int, str]] = defaultdict(dict)
    for c in chosen:
        if c.image_id not in left_out:
            diagnoses_of[key(c.image_id)][c.image_id] = c.diagnosis
    mixed = [group for group in diagnoses_of.values() if len(set(group.values())) > 1]
    left_out |= {i: CONFLICTING_COPIES for group in mixed for i in group}
    return [c for c in chosen if c.image_id not in left_out], left_out, sorted(mixed, key=min)


def _find_parent(
    options: ExportOptions, exports_root: Path, versions: list[str]
) -> tuple[str | None, Path | None, list[str]]:
    """The parent: given, or the highest earlier version of this name whose folder remains; its folder; and the
    earlier versions passed over because theirs was deleted (as `curate status` advises for a version holding a
    photo flagged identifiable since). Before, the highest earlier version was taken whatever became of it, so
    once its folder was deleted no later version of the name could be exported, `--reshuffle` included."""
    this = parse_version(options.version)
    folder = lambda v: exports_root / options.name / v  # noqa: E731
    if options.parent is not None:
        if not (folder(options.parent) / "manifest.csv").is_file():
            gone = " (its folder was deleted; `curate versions` still lists it)" if options.parent in versions else ""
            raise ExportError(
                f"parent version {options.name}@{options.parent} does not exist under {exports_root / options.name}"
                f"{gone}: name another --parent, or leave it out for the highest earlier version still there"
            )
        return options.parent, folder(options.parent), []
    earlier = sorted((v for v in versions if parse_version(v) < this), key=parse_version, reverse=True)
    gone = [v for v in earlier if not folder(v).exists()]  # deleted; a damaged one is refused below, as before
    parent = next((v for v in earlier if v not in gone), None)
    if parent is not None and not (folder(parent) / "manifest.csv").is_file():
        raise ExportError(
            f"parent version {options.name}@{parent} under {exports_root / options.name} has no manifest.csv: "
            "restore the version from a backup or its archive, or name another --parent"
        )
    return (
        parent,
        folder(parent) if parent else None,
        [v for v in gone if parent is None or parse_version(v) > parse_version(parent)],
    )


def parent_assignment(parent_dir: Path, folds: int) -> tuple[dict[int, tuple[str, int | None]], bool]:
    """image id -> (split, fold) from the parent's manifest.csv, and whether its folds still apply (same count)."""
    try:
        ds = DatasetVersion.open(parent_dir)
        ids = ds.catalogue_ids()
    except DatasetError as exc:
        raise ExportError(f"cannot read the parent version's splits: {exc}") from None
    assignment = {
        i: (r["split"], int(r["fold"]) if r["fold"] != "" else None) for i, r in zip(ids, ds.rows, strict=True)
    }
    return assignment, int(ds.meta.get("folds") or 0) == folds


def fingerprint(plan: ExportPlan) -> str:
    """sha256 over everything that decides the export's bytes (originals by hash, labels, splits, settings).

    The parent's SHA256SUMS digest covers its manifest, so the parent's assignment is in it; the
    reshuffle flag is in `meta` whenever there is a parent.
    """
    parent_sums = ""
    if plan.parent_dir is not None and (plan.parent_dir / "SHA256SUMS").is_file():
        parent_sums = hashlib.sha256((plan.parent_dir / "SHA256SUMS").read_bytes()).hexdigest()
    payload = {
        "meta": plan.meta,
        "rows": [
            [
                r.image_id,
                r.sha256_original,
                r.label,
                r.diagnosis,
                r.split,
                r.fold,
                r.source,
                r.licence,
                r.method,
                r.n_raters,
                r.agreement,
                r.region,
                r.cluster,
                r.has_case_id,
            ]
            for r in plan.rows
        ],
        "labels": plan.labels,
        "sources": plan.sources,
        "parent_sums": parent_sums,
        "bins": [(b.name, b.images) for b in plan.split.bins],
        "pulled_external": plan.split.pulled_external,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
