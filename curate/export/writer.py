"""Write one immutable dataset version: plan, render images in parallel, write metadata, rename into place.

The version is built in `<workspace>/tmp/export-<name>-<version>-<fingerprint>/`, every file written
as `.part` and renamed, and the finished folder renamed to `exports/<name>/<version>/`; only then is
the catalogue record committed. Killed at any moment, nothing half-written is visible or registered,
and a re-run with the same catalogue state reuses the finished files of the partial build, each only while it
still has the digest written beside it when it was finished (`_finished`).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from sqlmodel import select

from curate.audit import on_note
from curate.dataset import NAME_MAX, SPLITS, DatasetVersion, recorded_fault, split_counts, tampered
from curate.errors import DatasetError, MissingOriginals, StoreError
from curate.export import card, croissant
from curate.export.diff import changed_settings, describe_changes, diff_manifests
from curate.export.images import prepare
from curate.export.leakage import audit_files, entries_of
from curate.export.manifest import manifest_csv, manifest_row, read_manifest, sha256_file, sha256sums
from curate.export.plan import ExportError, ExportOptions, ExportPlan, make_plan, parse_version, validate
from curate.files import atomic_path, write_atomic
from curate.parallel import run_parallel
from db.models.export import DatasetVersionRecord

log = logging.getLogger("curate.export")


@dataclass
class ExportResult:
    name: str
    version: str
    path: Path
    status: str  # written | exists (identical version already there; registered if it was not)
    checksum: str
    fingerprint: str
    images: int
    roi_images: int
    counts: dict[str, dict[str, int]]  # {split: {class: n}}
    bins: list[dict] = field(default_factory=list)
    max_deviation_pp: float = 0.0
    pulled_external: int = 0
    archive: Path | None = None
    archive_sha256: str | None = None
    seconds: float = 0.0
    rendered: int = 0  # images decoded and encoded by this run (0 when every file was reused)
    parent: str | None = None
    parents_gone: list[str] = field(default_factory=list)  # later versions passed over: their folders were deleted
    reshuffle: bool = False  # splits dealt afresh, ignoring the parent's
    kept: int = 0  # parent images that kept their split and fold
    moved: list[dict] = field(default_factory=list)  # parent images whose place changed: image_id, from, to, reason
    excluded: dict[str, int] = field(
        default_factory=dict
    )  # catalogue images not exported, by reason (exclusions.REASONS)
    leakage: dict | None = None  # the leakage audit run before the version was sealed (its audit.json)
    uncompared: int = 0  # exported images no dedupe run had compared (`curate.dedupe.uncompared_image_ids`)
    undecided_pairs: int = 0  # pairs dedupe left to review, kept in one split (`curate.dedupe.undecided_pairs`)
    conflicting_images: list[dict[int, str]] = field(
        default_factory=list
    )  # each cluster left out for copies under two or more diagnoses: its images' diagnoses (`card.conflicting_note`)

    @property
    def images_per_second(self) -> float:
        return self.rendered / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "path": str(self.path),
            "status": self.status,
            "checksum": self.checksum,
            "fingerprint": self.fingerprint,
            "images": self.images,
            "roi_images": self.roi_images,
            "counts": self.counts,
            "bins": self.bins,
            "max_deviation_pp": self.max_deviation_pp,
            "pulled_external": self.pulled_external,
            "archive": str(self.archive) if self.archive else None,
            "archive_sha256": self.archive_sha256,
            "seconds": round(self.seconds, 2),
            "rendered": self.rendered,
            "images_per_second": round(self.images_per_second, 1),
            "parent": self.parent,
            "parents_gone": self.parents_gone,
            "reshuffle": self.reshuffle,
            "kept": self.kept,
            "moved": self.moved,
            "excluded": self.excluded,
            "leakage": self.leakage,
            "uncompared": self.uncompared,
            "undecided_pairs": self.undecided_pairs,
            "conflicting_copies": len(self.conflicting_images),
            "conflicting_images": [sorted(group) for group in self.conflicting_images],
        }


# --- image workers ----------------------------------------------------------------------


def _render(task: tuple) -> tuple[int, str, str, bool] | tuple[int, None, None, bool]:
    """Runs in a worker: write the image (and ROI crop) unless a previous run finished them. The original is
    read once, and its bytes must still hash to its name: a damaged one comes back as (image_id, None, None,
    False), nothing written, for `_build` to name with the others before anything is sealed."""
    image_id, src, sha, dest, roi_dest, region, expected, spec = task
    dest, roi_dest = Path(dest), (Path(roi_dest) if roi_dest else None)
    if (done := _finished(dest)) is not None and (
        roi_done := "" if roi_dest is None else _finished(roi_dest)
    ) is not None:
        return image_id, done, roi_done, False
    try:
        original = Path(src).read_bytes()
        if hashlib.sha256(original).hexdigest() != sha:
            return image_id, None, None, False
        main, roi = prepare(original, spec, region, expected)
    except Exception as exc:  # reported with the image id, never the clinic path
        raise RuntimeError(f"image {image_id}: cannot prepare ({type(exc).__name__}: {exc})") from None
    written = _write_marked(dest, main)
    roi_written = _write_marked(roi_dest, roi) if roi_dest is not None else ""
    return image_id, written, roi_written, True


FINISHED = ".sha256"  # beside each file a build finished, its digest (`_finished`); none is sealed into the version


def _write_marked(dest: Path, data: bytes) -> str:
    """Write `data` to `dest`, then its digest beside it (`FINISHED`): the mark that a re-run may reuse it."""
    digest = hashlib.sha256(data).hexdigest()
    write_atomic(dest, data)
    write_atomic(dest.with_name(dest.name + FINISHED), digest)
    return digest


def _finished(dest: Path) -> str | None:
    """The digest of a file a killed build finished, when it still has the bytes its mark says; else None and it is
    rendered again. Before, any file there was reused: one changed or cut short in tmp/ (a failing disk, a hand)
    was sealed into the version, or every re-run failed reading it, naming the version and not the build."""
    try:
        mark = dest.with_name(dest.name + FINISHED).read_text(encoding="ascii").strip()
        return mark if sha256_file(dest) == mark else None
    except (OSError, UnicodeDecodeError):
        return None


# --- the job ------------------------------------------------------------------------------


def _bins(plan: ExportPlan) -> list[dict]:
    return [
        {
            "name": b.name,
            "target": b.target,
            "images": b.images,
            "fraction": b.fraction,
            "per_class": b.per_class,
            "deviation_pp": b.deviation_pp,
        }
        for b in plan.split.bins
    ]


def _moves(plan: ExportPlan) -> list[dict]:
    return [{"image_id": m.id, "from": m.old, "to": m.new, "reason": m.reason} for m in plan.split.moved]


def _split_change(plan: ExportPlan) -> dict | None:
    """What the card says about the splits relative to the parent (None: no parent)."""
    if plan.parent_dir is None:
        return None
    return {
        "reshuffle": plan.options.reshuffle,
        "kept": plan.split.kept,
        "dealt_groups": plan.split.dealt_groups,
        "folds_kept": plan.parent_folds_kept,
        "moved": _moves(plan),
    }


def _registered(ws, name: str) -> dict[str, DatasetVersionRecord]:
    with ws.session() as s:
        return {
            r.version: r for r in s.exec(select(DatasetVersionRecord).where(DatasetVersionRecord.name == name)).all()
        }


def export_version(
    ws,
    options: ExportOptions,
    run_id: int | None = None,
    on_image: Callable[[int, int], None] | None = None,
    on_audit: Callable[[str, int, int | None], None] | None = None,
) -> ExportResult:
    """Build `exports/<name>/<version>/` from the catalogue (or recognise it as already built). `on_image(done,
    total)` hears the images rendered, `on_audit(stage, done, total)` the leakage audit's stages."""
    started = time.perf_counter()
    validate(options)  # before the name is used as a path
    registered = _registered(ws, options.name)
    on_disk = [p.name for p in (ws.exports / options.name).iterdir()] if (ws.exports / options.name).is_dir() else []
    versions = sorted({v for v in [*registered, *on_disk] if _is_version(v)} - {options.version})
    with ws.session() as s:
        plan = make_plan(s, options, ws.exports, versions, ws.diagnoses)
    final = ws.exports / options.name / options.version
    record = registered.get(options.version)

    if final.exists():
        existing = _existing_fingerprint(final)
        rebuild = (
            f"move {final} aside and run this export again: the same catalogue state rebuilds the same files, "
            "checked against the registered checksum"
        )
        if damage := _damage(final):
            raise ExportError(f"{options.name}@{options.version} is damaged ({damage}); {rebuild}")
        try:  # every byte, not only what is there: before, a photo replaced or one added was "this content"
            DatasetVersion.open(final).verify()
        except DatasetError as exc:
            raise ExportError(f"{exc}; {rebuild}") from None
        if existing != plan.fingerprint:
            changes = _changes(final, plan)
            if record is None:  # before: "(2.0.1 is free)", and 2.0.1 was then refused: its parent, this, unrecorded
                raise ExportError(
                    f"{final} holds a version the catalogue does not record, with other content"
                    f"{f' ({changes})' if changes else ''} (a catalogue restored from an older backup, a folder "
                    "copied in, or an export stopped before it was recorded and the catalogue changed since?): move it "
                    "out of exports/ (or restore the catalogue that wrote it), then export again"
                )
            raise ExportError(
                f"{options.name}@{options.version} already exists with different content"
                f"{f' ({changes})' if changes else ''}; a version never changes, so export under a new version "
                f"number ({_free_version(registered, [*versions, options.version])})"
            )
        result = _result(plan, final, "exists", read_manifest(final / "manifest.csv"))
        if record is not None and record.checksum != result.checksum:
            raise ExportError(tampered(f"{options.name}@{options.version}", final, result.checksum, record.checksum))
    else:
        if plan.parent_dir is not None:  # its splits pin this version's, its manifest the card's history: checked
            if plan.meta["parent"] not in registered:  # before: a folder copied in, its test image moved into
                parent = f"{options.name}@{plan.meta['parent']}"  # train and sealed again, pinned this version's
                raise ExportError(  # splits, "0 moved"
                    f"the catalogue records no parent version {parent}, so the splits in {plan.parent_dir} cannot be "
                    f"trusted: if an export of it was stopped before it was recorded, run `curate export --name "
                    f"{options.name} --version {plan.meta['parent']}` again (it checks the folder and records it); "
                    "if the folder is a copy, move it out of exports/, or export with --parent a version "
                    "`curate versions` lists"
                )
            try:
                checked_version(ws, plan.parent_dir)
            except ExportError as exc:  # before: an edited parent moved a test image into train, "0 moved"
                raise ExportError(
                    f"the parent version cannot be trusted: {exc}. Restore it from a copy, or export with --parent "
                    "another version"
                ) from None
        if record is not None and record.fingerprint != plan.fingerprint:
            raise ExportError(
                f"{options.name}@{options.version} is registered with different content (its folder is missing); "
                f"export under a new version number ({_free_version(registered, [*versions, options.version])})"
            )
        result = _build(ws, plan, final, on_image, on_audit)
        if record is not None and record.checksum != result.checksum:
            raise ExportError(
                f"rebuilt {options.name}@{options.version} does not match its registered checksum "
                f"({record.checksum[:12]} vs {result.checksum[:12]}); the image libraries may have changed"
            )
    _register(ws, plan, result, record, run_id)  # before the archive: a failed archive leaves the version listed
    if options.archive:
        if result.status == "exists":  # the archive vouches for the folder: every file checked, not only stat-ed
            try:
                checked_version(ws, final)
            except ExportError as exc:
                raise ExportError(f"not archived: {exc}") from None
        result.archive, result.archive_sha256 = write_archive(ws, final, plan.meta)
        _register(ws, plan, result, record, run_id)
    result.seconds = time.perf_counter() - started
    log.info(
        "export %s@%s %s images=%d checksum=%s",
        options.name,
        options.version,
        result.status,
        result.images,
        result.checksum[:12],
    )
    return result


def _is_version(text: str) -> bool:
    try:
        parse_version(text)
        return True
    except ExportError:
        return False


def _damage(final: Path) -> str | None:
    """What is missing from a written version's folder (stat only: a file named in its SHA256SUMS gone), or
    None. A changed or extra file is `DatasetVersion.verify`'s to find, asked next."""
    try:
        listed = (final / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return "SHA256SUMS is missing or unreadable"
    names = ["SHA256SUMS", *(line.split("  ", 1)[1] for line in listed if "  " in line)]
    missing = [n for n in names if not (final / n).is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        return f"{missing[0]}{more} missing"
    return None


def _changes(final: Path, plan: ExportPlan) -> str:
    """What exporting the catalogue now would change in the version at `final`, in words (or "" if that cannot
    be read, or only label statistics and times differ): before, "different content" alone left the steward
    to find out by hand whether a label, a new image or an option made it differ."""
    try:
        old_meta = json.loads((final / "dataset.json").read_text(encoding="utf-8"))
        old_rows = read_manifest(final / "manifest.csv")
        d = diff_manifests(old_rows, [manifest_row(r, "", "") for r in plan.rows])
    except (OSError, ValueError, KeyError, csv.Error):
        return ""
    new_meta = json.loads(json.dumps(plan.meta, default=str))  # as dataset.json reads back: tuples as lists
    return describe_changes(d, changed_settings(old_meta if isinstance(old_meta, dict) else {}, new_meta))


def _free_version(recorded, taken: list[str]) -> str:
    """Which version to export instead, in words: the next patch version above the highest version the catalogue
    records (else above every one `taken`) that no version takes, on disk or in the catalogue. A folder the catalogue
    does not record below it would be its parent, and refused: said."""
    known = [v for v in recorded if _is_version(v)] or taken
    top = max(parse_version(v) for v in known)
    major, minor, patch = top
    while f"{major}.{minor}.{patch + 1}" in {*recorded, *taken}:
        patch += 1
    free = f"{major}.{minor}.{patch + 1}"
    below = [v for v in taken if v not in recorded and top < parse_version(v) < (major, minor, patch + 1)]
    if below:
        folders = ", ".join(sorted(below, key=parse_version))
        return f"{free} is free once {folders}, a folder the catalogue does not record, is moved out of exports/"
    return f"{free} is free"


def _existing_fingerprint(final: Path) -> str | None:
    try:
        return json.loads((final / "dataset.json").read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError):
        return None


def _result(plan: ExportPlan, final: Path, status: str, rows: list[dict[str, str]], rendered: int = 0) -> ExportResult:
    return ExportResult(
        name=plan.options.name,
        version=plan.options.version,
        path=final,
        status=status,
        checksum=hashlib.sha256((final / "SHA256SUMS").read_bytes()).hexdigest(),
        fingerprint=plan.fingerprint,
        images=len(rows),
        roi_images=sum(1 for r in rows if r["roi_file"]),
        counts=split_counts(rows),
        bins=_bins(plan),
        max_deviation_pp=plan.split.max_deviation_pp,
        pulled_external=len(plan.split.pulled_external),
        rendered=rendered,
        parent=plan.meta["parent"],
        parents_gone=plan.parents_gone,
        reshuffle=plan.options.reshuffle and plan.parent_dir is not None,
        kept=plan.split.kept,
        moved=_moves(plan),
        excluded=plan.excluded,
        leakage=_leakage(final),
        uncompared=plan.labels.get("uncompared", 0),
        undecided_pairs=plan.labels.get("undecided_pairs", 0),
        conflicting_images=plan.conflicting,
    )


def _leakage(final: Path) -> dict | None:
    """The version's audit.json (None for versions exported before the audit existed)."""
    try:
        return json.loads((final / "audit.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _build(ws, plan: ExportPlan, final: Path, on_image, on_audit) -> ExportResult:
    opts = plan.options
    prefix = f"export-{opts.name}-{opts.version}-"
    build = ws.tmp / (prefix + plan.fingerprint[:16])
    try:
        build.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            for cls in plan.classes:
                (build / split / cls).mkdir(parents=True, exist_ok=True)
                (build / "roi" / split / cls).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if (
            exc.errno == errno.ENAMETOOLONG and len(os.fsencode(build.name)) > NAME_MAX
        ):  # a refusal of the input, not the disk's fault ("failed", not "aborted")
            raise ExportError(
                f"--name and --version together are too long for a folder name: the build folder's in tmp/ would "
                f"have {len(build.name)} characters: use shorter ones"
            ) from None
        raise StoreError(f"cannot create build folder under {ws.tmp}: {exc.strerror}") from exc
    into = final.parent if final.parent.exists() else ws.exports  # made at the end: a failed export leaves none
    if os.stat(build).st_dev != os.stat(into).st_dev:  # the finished version is renamed into place
        shutil.rmtree(build, ignore_errors=True)
        raise ExportError(
            f"{ws.exports} is on another disk than {ws.tmp}: a version is built in tmp/ and moved into exports/ "
            "whole, which needs one disk; link tmp/ to a folder on the exports disk"
        )  # before: said only after every image was rendered ("Invalid cross-device link")

    tasks = [
        (
            r.image_id,
            str(ws.store.path_for(r.sha256_original)),
            r.sha256_original,
            str(build / r.file),
            str(build / r.roi_file) if r.region else None,
            r.region,
            r.size,
            opts.spec,
        )
        for r in plan.rows
    ]
    missing = [t[0] for t in tasks if not Path(t[1]).is_file()]
    if missing:
        raise MissingOriginals(
            f"{len(missing)} original(s) missing from the store (image ids {', '.join(map(str, missing[:5]))})"
        )
    digests: dict[int, tuple[str, str]] = {}
    fresh: list[bool] = []
    damaged: list[tuple] = []

    def commit(done: list[tuple[tuple, tuple]]) -> None:
        for task, (image_id, sha, roi_sha, rendered_now) in done:
            if sha is None:
                damaged.append(task)
                continue
            digests[image_id] = (sha, roi_sha)
            fresh.append(rendered_now)

    try:
        run_parallel(_render, tasks, commit, workers=opts.workers, on_progress=on_image)
    except RuntimeError as exc:
        raise ExportError(str(exc)) from None
    if damaged:
        raise StoreError(_damaged_originals(ws, damaged))
    rendered = sum(fresh)

    rows = [manifest_row(r, *digests[r.image_id]) for r in plan.rows]
    known = {}
    for r in rows:
        known[r["file"]] = r["sha256"]
        if r["roi_file"]:
            known[r["roi_file"]] = r["roi_sha256"]
    manifest = manifest_csv(rows)
    change = None
    if plan.parent_dir is not None:
        change = diff_manifests(read_manifest(plan.parent_dir / "manifest.csv"), rows)
    meta = plan.meta
    licences = sorted({lic for s in plan.sources for lic in s["licences"]})
    # The audit reads the rendered files before the version is sealed, so the card and audit.json carry it.
    audit = audit_files(
        build,
        entries_of(rows),
        f"{opts.name}@{opts.version}",
        on_progress=on_audit,
        workers=opts.workers,
        stretched=opts.spec.policy == "stretch",
    )
    readme = card.render(
        meta,
        rows,
        plan.labels,
        plan.sources,
        _bins(plan),
        len(plan.split.pulled_external),
        change,
        _split_change(plan),
        audit,
    )
    description = (
        f"{meta['task']} skin-lesion image dataset ({', '.join(plan.classes)}), {len(rows)} clinician-labelled images "
        f"at {meta['image_size'][0]}x{meta['image_size'][1]}, with lesion crops; see README.md."
    )
    files = {
        "manifest.csv": manifest,
        "dataset.json": (json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"),
        "README.md": readme,
        "croissant.json": croissant.croissant(meta, hashlib.sha256(manifest).hexdigest(), description, licences),
        "audit.json": (
            json.dumps(audit.as_dict(timing=False), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        ).encode("utf-8"),
    }
    for name, data in files.items():
        write_atomic(build / name, data)
    for leftover in [*build.rglob("*.part"), *build.rglob("*" + FINISHED)]:  # a killed write; the marks of reuse
        leftover.unlink(missing_ok=True)
    _prune_empty_dirs(build)
    write_atomic(build / "SHA256SUMS", sha256sums(build, known))
    for p in build.rglob("*"):  # patient photos: the owner's alone, and never changed once written
        os.chmod(p, 0o700 if p.is_dir() else 0o400)
    os.chmod(build, 0o700)
    try:
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.rename(build, final)  # atomic; fails if another run got there first
    except OSError as exc:
        if _existing_fingerprint(final) == plan.fingerprint:  # a concurrent export of the same state won
            return _result(plan, final, "exists", read_manifest(final / "manifest.csv"))
        raise ExportError(f"cannot move the finished version into {final}: {exc.strerror}") from exc
    for stale in ws.tmp.glob(prefix + "*"):  # partial builds of other catalogue states
        shutil.rmtree(stale, ignore_errors=True)
    if others := _stopped_builds(ws.tmp):
        for stale in others:
            shutil.rmtree(stale, ignore_errors=True)
        on_note(f"removed {len(others)} build folder(s) of stopped exports of other versions from tmp/")
    return _result(plan, final, "written", rows, rendered)


_BUILD = re.compile(r"export-.+-[0-9a-f]{16}")  # `_build`'s folder: export-<name>-<version>-<fingerprint>


def _stopped_builds(tmp: Path) -> list[Path]:
    """The build folders stopped exports of other versions left in the workspace's own tmp/: their rendered photos
    stayed there for as long as nobody exported that version again (only its re-run on an unchanged catalogue
    reuses one). Each writer holds the workspace lock, so none is in progress. A tmp/ linked to a shared folder (as
    an export on another disk is told to) may hold another workspace's build in progress: nothing there."""
    if os.path.islink(tmp):
        return []
    return [p for p in tmp.iterdir() if _BUILD.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]


def _damaged_originals(ws, tasks: list[tuple]) -> str:
    """One line naming the originals whose bytes no longer hash to their name: image id and object path."""
    where = {t[0]: Path(t[1]).relative_to(ws.root).as_posix() for t in tasks}
    if len(tasks) == 1:
        [(image_id, path)] = where.items()
        return (
            f"original of image {image_id} is damaged ({path}: SHA-256 differs): "
            "restore it from a backup, or re-ingest its file"
        )
    named = ", ".join(f"image {i} ({path})" for i, path in list(where.items())[:5])
    more = f" and {len(tasks) - 5} more" if len(tasks) > 5 else ""
    return (
        f"{len(tasks)} originals are damaged (SHA-256 differs): {named}{more}: "
        "restore them from a backup, or re-ingest their files"
    )


def _prune_empty_dirs(root: Path) -> None:
    """Class folders with no image in a split are removed (ImageFolder rejects empty class folders)."""
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(d.iterdir()):
            d.rmdir()


def _tar_entry(name: str, mtime: int, data: bytes | None = None) -> tarfile.TarInfo:
    """A folder (`data` None) or file entry that says nothing about who wrote it, private once extracted too."""
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE if data is None else tarfile.REGTYPE
    ti.mode, ti.size, ti.mtime = (0o700 if data is None else 0o400), len(data or b""), mtime
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def write_archive(ws, final: Path, meta: dict) -> tuple[Path, str]:
    """`exports/<name>/<name>-<version>.tar`: the version folder, byte-identical for identical content."""
    dest = final.parent / f"{meta['name']}-{meta['version']}.tar"
    sidecar = dest.with_name(dest.name + ".sha256")
    if dest.is_file() and sidecar.is_file():  # kept only if it still is what its sidecar says (a cut copy is not)
        said = (sidecar.read_text(errors="replace").split() or [""])[0]
        if sha256_file(dest) == said:
            return dest, said
    mtime = (
        int(datetime.strptime(meta["created_at"], "%Y-%m-%dT%H:%M:%SZ").timestamp()) if meta.get("created_at") else 0
    )
    top = f"{meta['name']}-{meta['version']}"
    listed = {"SHA256SUMS", *(line.split("  ", 1)[1] for line in (final / "SHA256SUMS").read_text().splitlines())}
    folders = {parent.as_posix() for rel in listed for parent in PurePosixPath(rel).parents if parent.name}
    entries = sorted(listed | folders)  # what the version is: a stray file in its folder is not packed
    try:
        with atomic_path(dest, tmp_dir=ws.tmp, mode=0o400) as part:
            with tarfile.open(part, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                tar.addfile(_tar_entry(top, mtime))
                for rel in entries:
                    data = None if rel in folders else (final / rel).read_bytes()
                    tar.addfile(_tar_entry(f"{top}/{rel}", mtime, data), None if data is None else io.BytesIO(data))
            digest = sha256_file(part)
    except ValueError as exc:  # tarfile's USTAR limits: a path over 255 bytes (a long name and version number)
        raise ExportError(
            f"cannot pack {dest.name} ({exc}); the version itself is written and listed: use a shorter dataset name "
            "or version number for an archive, or pack its folder with another tool"
        ) from None
    write_atomic(sidecar, f"{digest}  {dest.name}\n".encode())
    return dest, digest


def _register(
    ws, plan: ExportPlan, result: ExportResult, record: DatasetVersionRecord | None, run_id: int | None
) -> None:
    with ws.session() as s:
        row = s.exec(
            select(DatasetVersionRecord).where(
                DatasetVersionRecord.name == plan.options.name, DatasetVersionRecord.version == plan.options.version
            )
        ).first()
        if row is None:
            row = DatasetVersionRecord(
                name=plan.options.name,
                version=plan.options.version,
                task=plan.options.task,
                checksum=result.checksum,
                fingerprint=plan.fingerprint,
                path=result.path.relative_to(ws.root).as_posix(),
                parent=plan.meta["parent"],
                images=result.images,
                roi_images=result.roi_images,
                counts=json.dumps(result.counts, sort_keys=True),
                settings=json.dumps(plan.meta, sort_keys=True),
                run_id=run_id,
            )
            s.add(row)
        if result.archive is not None:
            row.archive = result.archive.relative_to(ws.root).as_posix()
            row.archive_sha256 = result.archive_sha256


def recorded_checksum(ws, name: str, version: str) -> str | None:
    """The checksum (of SHA256SUMS) the catalogue recorded when it wrote NAME@VERSION; None if it wrote none."""
    record = _registered(ws, name).get(version)
    return None if record is None else record.checksum


def list_versions(ws, name: str | None = None) -> list[DatasetVersionRecord]:
    with ws.session() as s:
        q = select(DatasetVersionRecord)
        if name:
            q = q.where(DatasetVersionRecord.name == name)
        rows = s.exec(q).all()
    return sorted(rows, key=lambda r: (r.name, parse_version(r.version)))


def folder_state(ws, record: DatasetVersionRecord) -> str:
    """What `curate versions` says of a recorded version's folder, by stat and SHA256SUMS's digest alone (every
    byte is export's and the leakage audit's to check): "ok", "folder missing" (an archive kept: said), "damaged:
    …" or "changed since written". Before, a version restored away, or with its manifest gone, was listed as
    it was written."""
    folder = ws.root / record.path
    if not folder.is_dir():
        kept = record.archive and (ws.root / record.archive).is_file()
        return "folder missing" + ("; its archive is kept" if kept else "")
    if damage := _damage(folder):
        return f"damaged: {damage}"
    try:
        if hashlib.sha256((folder / "SHA256SUMS").read_bytes()).hexdigest() != record.checksum:
            return "changed since written"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return "ok"


def unrecorded_folders(ws, records: list[DatasetVersionRecord], name: str | None = None) -> list[Path]:
    """Version folders under exports/ (of `name`, or of every name) that the catalogue does not record: a catalogue
    restored from an older backup, a folder copied in, or an export stopped before it was recorded. A folder this
    user cannot read is passed over (the listing is `curate versions`', which an unrelated folder must not stop)."""
    known = {(r.name, r.version) for r in records}

    def entries(folder: Path) -> list[Path]:
        try:
            return sorted(folder.iterdir()) if folder.is_dir() and not folder.is_symlink() else []
        except OSError:
            return []

    def version_folder(v: Path) -> bool:
        try:
            return (v / "dataset.json").is_file()
        except OSError:
            return False

    names = [ws.exports / name] if name else entries(ws.exports)
    return [
        v
        for n in names
        for v in entries(n)
        if _is_version(v.name) and (n.name, v.name) not in known and version_folder(v)
    ]


def diff_versions(ws, a: str, b: str):
    """VersionDiff between two versions (NAME@VERSION or folder paths); the workspace's own versions are checked
    against the checksum recorded when they were written: a hand-edited one's edits are not "changes"."""
    versions = [checked_version(ws, ref) for ref in (a, b)]  # before: an edited version was diffed as it stood
    return diff_manifests(versions[0].rows, versions[1].rows)


def checked_version(ws, ref) -> DatasetVersion:
    """A version (NAME@VERSION or a folder) opened and checked before anything is taken from it (diff, an
    export's parent, an archive): every file against SHA256SUMS, and the workspace's own
    `exports/<name>/<version>` against the checksum recorded when it was written (a version changed and sealed
    again), asked of the folder given, whatever its dataset.json says. ExportError names what is wrong."""
    try:
        ds = DatasetVersion.open(ref, ws.root)
        ds.verify()
    except DatasetError as exc:
        raise ExportError(str(exc)) from None
    asked = DatasetVersion.resolve(ref, ws.root)
    if why := recorded_fault(ds, asked, ws.exports, lambda name, version: recorded_checksum(ws, name, version)):
        raise ExportError(why)
    return ds


__all__ = ["ExportOptions", "ExportResult", "export_version", "list_versions", "diff_versions", "write_archive"]
