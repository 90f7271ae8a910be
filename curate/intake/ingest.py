"""`curate ingest`: bring a folder of photos into the store and the catalogue.

Workers (one per core) read, hash, fully decode and store each new file; the
main process writes catalogue rows in batches, always after the bytes are in
the store. Killed at any moment, a re-run finds the stored objects, adds the
missing rows and never duplicates an image or an arrival.

Images are recognised by their content, not their name (a JPEG without an
extension is ingested). FIFOs, devices and sockets are never opened, a file's
size is checked before it is read, and symlinks leading out of the folder are
not followed unless `follow_symlinks`; every file left out is named with why.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import regex
from sqlmodel import select

from curate.errors import ConfigError
from curate.intake.catalogue import check_name, drop_if_empty, get_or_create_source, known_shas, record_arrival
from curate.intake.decode import IMAGE_EXTENSIONS, Rejected, inspect, looks_like_image, not_an_image
from curate.intake.limits import MAX_BYTES
from curate.intake.store import ImageStore, sha256_bytes
from curate.intake.walk import iter_files, locator_of, read_bounded, refuse_own
from curate.parallel import run_parallel
from db.models import Provenance, Rejection, Source, most_chars

log = logging.getLogger("curate.ingest")


@dataclass(frozen=True)
class IngestOptions:
    source: str
    kind: str | None = None  # clinic | public | web; default clinic for a new source
    licence: str | None = None
    label_from_folders: bool = False  # prior label: the nearest enclosing folder named after a declared diagnosis
    label_map: dict[str, str] | None = None  # top-level folder name -> prior label
    # The workspace's declared diagnosis slugs (curate.toml [labels]; the commands pass them): the only folder
    # names label_from_folders takes. None (a library caller that passes none): the top-level folder, as named.
    diagnoses: tuple[str, ...] | None = None
    case_id_pattern: str | None = None  # regex on the relative path; group "case" or group 1
    workers: int = 0  # 0: one per core
    batch: int = 64
    follow_symlinks: bool = False  # follow symlinks that lead out of the folder
    settings_files: tuple[str, ...] = ()  # the source's own settings (source.toml, its label map): not photos
    label_map_hint: str = "--label-map"  # where the steward gives a label map, named in warnings (or source.toml's)

    def __post_init__(self):
        """A bad source name, licence or case id pattern stops the command before the workspace is opened."""
        check_name(self.source, "--source")
        if self.licence is not None:
            check_name(self.licence, "--licence")
        compile_case_pattern(self.case_id_pattern)


KEPT_NAMES = {"case_id": "case id(s)", "prior_label": "prior label(s)", "licence": "licence(s)"}


@dataclass
class IngestReport:
    run_id: int | None = None
    files: int = 0
    added: int = 0
    provenance: int = 0  # known image, new arrival (e.g. the same photo in a second folder)
    known: int = 0  # this exact arrival was already recorded
    restored: int = 0  # catalogued images whose original was missing or damaged in the store, written again
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why): not images, special files, symlinks
    rejected: list[tuple[str, str]] = field(default_factory=list)
    per_class: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    case_ids: int | None = None  # arrivals whose path the case id pattern matched; None: no pattern given
    case_ids_cut: int = 0  # arrivals whose case id the pattern cut out of a longer id (none recorded for them)
    # files the labelling rule gives no prior label: under no declared diagnosis's folder, or (`by_map`) in a
    # top-level folder the --label-map does not name; None: no rule that counts them
    no_prior_label: int | None = None
    by_map: bool = False
    diagnoses: tuple[str, ...] = ()  # the declared diagnoses, named in that warning
    undeclared: tuple[str, ...] = ()  # labels the --label-map gives that the workspace does not declare
    label_map_hint: str = "--label-map"  # IngestOptions.label_map_hint
    unregistered: str | None = None  # the source this run created and, finding no images, removed again
    kept: Counter = field(default_factory=Counter)  # field -> known arrivals that keep another recorded value
    conflicting: Counter = field(default_factory=Counter)  # (label, label) -> arrivals of one photo under both
    conflicting_files: int = 0  # files among them (one file can meet two other labels: counted once)
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0

    @property
    def ignored(self) -> int:
        return len(self.skipped)

    @property
    def arrivals(self) -> int:
        return self.added + self.provenance + self.known

    @property
    def warnings(self) -> list[str]:
        """What the steward must not miss: no images at all, or photos left without a case id (a patient's
        photos then cannot be kept in one split). No paths: the summary is kept in the audit log."""
        out = []
        if self.files == 0:
            out.append(
                "no images found: nothing ingested"
                + (f"; source {self.unregistered!r} not registered" if self.unregistered else "")
            )
        elif self.arrivals == 0:  # the source stays: its rejections are recorded under it
            out.append(f"nothing ingested: every one of the {self.files} image file(s) was rejected (reasons above)")
        if self.case_ids_cut:  # counted, never shown: a case id is a patient's
            out.append(
                f"the case id pattern cut {self.case_ids_cut} file(s)' case id out of a longer run of digits or "
                "letters (as P\\d{4} does in P00012): patients whose ids differ after the cut would share one, so "
                "this run gave those files none; widen the pattern and re-run (a case id an earlier run recorded "
                "is kept)"
            )
        unmatched = self.arrivals - (self.case_ids or 0) - self.case_ids_cut  # the cut ones are said above
        if self.case_ids is not None and unmatched > 0:
            if self.case_ids + self.case_ids_cut == 0:
                out.append(
                    f"the case id pattern matched none of the {self.arrivals} ingested files: no case ids recorded, "
                    "so one patient's photos can land in both train and test; fix the pattern (it is "
                    "case-sensitive) and re-run"
                )
            else:  # before: "matched 13 of 15; the rest have no case id", where 3 of the 13 were cut and had none
                out.append(
                    f"the case id pattern did not match {unmatched} of the {self.arrivals} files: those have no case id"
                )
        if self.undeclared:  # the map's own words, typed by the steward: safe to name
            out.append(
                f"{self.label_map_hint} gives labels the workspace does not declare "
                f"({', '.join(self.undeclared)}): no rater can choose them; declare them under [labels] in "
                'curate.toml (README, "Workspace settings") or map those folders to declared diagnoses'
            )
        if n := self.no_prior_label:  # a count, never a folder name: those can be a patient's name
            lie = f"{n} file{'s lie' if n != 1 else ' lies'}"
            if self.by_map:
                out.append(
                    f"{lie} in a folder {self.label_map_hint} does not name: no prior label; add those folders to "
                    "the map"
                )
            else:
                shown = ", ".join(self.diagnoses[:10]) + (", …" if len(self.diagnoses) > 10 else "")
                out.append(
                    f"{lie} under no folder named after a declared diagnosis ({shown}): no prior label; name other "
                    f"folders' labels with {self.label_map_hint} (folder,label)"
                )
        if self.kept:  # counts and field names only: the values can be a patient's folder
            fields = ", ".join(f"{n} {KEPT_NAMES.get(k, k)}" for k, n in sorted(self.kept.items()))
            out.append(
                f"files recorded before keep what was recorded then, not what this run gives ({fields}): a re-run "
                "fills in what is missing, never replaces"
            )
        if self.conflicting:  # declared diagnoses' names only: safe to say
            pairs = ", ".join(f"{a} and {b}: {n}" for (a, b), n in sorted(self.conflicting.items()))
            out.append(
                f"{self.conflicting_files} file(s) are the same bytes as a photo recorded with another prior "
                f"label ({pairs}): one photo cannot be both; check those folders (`curate status` counts such photos)"
            )
        if self.restored:
            out.append(
                f"{self.restored} catalogued original{'s were' if self.restored != 1 else ' was'} missing or damaged "
                "in the store and restored from these files"
            )
        return out

    def merge(self, part: IngestReport) -> None:
        """Add the counts of one committed batch."""
        self.files += part.files
        self.added += part.added
        self.provenance += part.provenance
        self.known += part.known
        self.restored += part.restored
        self.kept.update(part.kept)
        self.conflicting.update(part.conflicting)
        self.conflicting_files += part.conflicting_files
        self.bytes_read += part.bytes_read
        if part.case_ids is not None:
            self.case_ids = (self.case_ids or 0) + part.case_ids
        self.case_ids_cut += part.case_ids_cut
        if part.no_prior_label is not None:
            self.no_prior_label = (self.no_prior_label or 0) + part.no_prior_label
        self.skipped.extend(part.skipped)
        self.rejected.extend(part.rejected)
        for klass, counts in part.per_class.items():
            self.per_class[klass].update(counts)

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "files": self.files,
            "added": self.added,
            "new_provenance": self.provenance,
            "already_known": self.known,
            "restored": self.restored,
            "rejected": len(self.rejected),
            "ignored": self.ignored,
            "rejects": [{"file": f, "reason": r} for f, r in self.rejected],
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "per_class": {k: dict(v) for k, v in sorted(self.per_class.items())},
            "case_ids": None
            if self.case_ids is None
            else {
                "matched": self.case_ids,
                "of": self.arrivals,
                **({"cut": self.case_ids_cut} if self.case_ids_cut else {}),
            },
            "no_prior_label": self.no_prior_label,
            "kept_recorded": dict(sorted(self.kept.items())),  # field -> files that kept an earlier run's value
            "conflicting_prior_labels": {f"{a}|{b}": n for (a, b), n in sorted(self.conflicting.items())},
            "warnings": self.warnings,
            "seconds": round(self.seconds, 2),
            "images_per_second": round(self.images_per_second, 1),
            "megabytes": round(self.bytes_read / 1e6, 1),
        }


# --- options ------------------------------------------------------------------------


def slug(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def folder_key(name: str) -> str:
    """A folder's name as the label map matches it: one Unicode form (macOS writes "é" as "e" and an accent, the
    map's editor as one character) and any case ("monkeypox/" is the map's "Monkeypox")."""
    return unicodedata.normalize("NFC", name).casefold().strip()


def load_label_map(path: Path) -> dict[str, str]:
    """Folder (`folder_key`) → label, from a two-column CSV (folder,label) or a JSON object."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a spreadsheet's CSV begins with a byte-order mark
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read label mapping ({exc})") from exc
    if Path(path).suffix.lower() == ".json":
        try:
            pairs = json.loads(text, object_pairs_hook=lambda kv: kv)  # every key as written: a repeated one too
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}") from exc
        if not isinstance(pairs, list) or not all(isinstance(p, tuple) and isinstance(p[1], str) for p in pairs):
            raise ConfigError(f"{path}: expected a JSON object of folder name to label")
        return _by_folder_key(path, pairs)
    mapping: list[tuple[str, str]] = []
    for n, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or row[0].startswith("#"):
            continue
        if len(row) != 2:
            raise ConfigError(f"{path}:{n}: expected 'folder,label', got {len(row)} fields")
        if n == 1 and [c.strip().lower() for c in row] == ["folder", "label"]:
            continue
        mapping.append((row[0].strip(), row[1].strip()))
    return _by_folder_key(path, mapping)


def _by_folder_key(path: Path, rows) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for folder, label in rows:
        if (n := len(slug(label))) > LABEL_MOST:  # the catalogue holds the label normalised
            raise ConfigError(f"{path}: a label of {n} characters once normalised (at most {LABEL_MOST}): shorten it")
        key = folder_key(folder)
        if slug(mapping.get(key, label)) != slug(label):  # "Mpox" and "mpox" are one label
            raise ConfigError(f"{path}: folder {folder!r} is mapped twice, to {mapping[key]!r} and {label!r}")
        mapping[key] = label
    return mapping


CASE_MATCH_S = 1.0  # the most one file name may take to match --case-id-pattern
LABEL_MOST = most_chars(Provenance, "prior_label")
CASE_MOST = most_chars(Provenance, "case_id")


def compile_case_pattern(pattern: str | None, where: str = "--case-id-pattern") -> regex.Pattern | None:
    """The compiled pattern, or a ConfigError naming `where` (the option, or a source.toml's field).

    The `regex` library, not `re`: its match takes a timeout. A pattern that backtracks without end on some
    name (`(a+)+$` on forty a's and a b) held ingest at 100 % CPU for good, with nothing said."""
    if not pattern:
        return None
    try:
        rx = regex.compile(pattern)
    except regex.error as exc:
        raise ConfigError(f"{where} is not a valid regular expression: {exc}") from exc
    if rx.groups == 0:
        raise ConfigError(f"{where} needs a capture group, e.g. '(?P<case>P\\d+)'")
    return rx


def case_id(rx: regex.Pattern | None, locator: str) -> str | None:
    """The case id `rx` finds in `locator`: the first match that does not cut an id (`_cut`); CutCaseId when
    every match does."""
    if rx is None:
        return None
    group = "case" if "case" in rx.groupindex else 1
    cut = False
    try:
        for m in rx.finditer(locator, timeout=CASE_MATCH_S):
            value = m.group(group)
            if not value:
                continue
            if not _cut(locator, m, group):
                return value
            cut = True
    except TimeoutError:
        raise ConfigError(
            f"the case id pattern took over {CASE_MATCH_S:.0f} s on one file name (it backtracks without end, as "
            "(a+)+ does): simplify it; what was ingested so far is kept"
        ) from None
    if cut:
        raise CutCaseId
    return None


class CutCaseId(Exception):
    """The pattern took a case id out of a longer run of digits or letters (`P\\d{4}` on "P00012"): patients
    whose ids differ past the cut would share one case id, silently."""


def _cut(text: str, m: regex.Match, group: int | str) -> bool:
    """Whether the case id group stops inside, or begins inside, a run of ASCII digits (or ASCII letters) at an
    edge of the whole match: a pattern that takes in what follows on purpose (`(\\d{4})\\d{2}`) cuts nothing."""

    def same_kind(a: str, b: str) -> bool:
        return a.isascii() and b.isascii() and ((a.isdigit() and b.isdigit()) or (a.isalpha() and b.isalpha()))

    start, end = m.span(group)
    before = start == m.start() and start > 0 and same_kind(text[start - 1], text[start])
    after = end == m.end() and end < len(text) and same_kind(text[end - 1], text[end])
    return before or after


def by_diagnosis_folder(options: IngestOptions) -> bool:
    """Whether prior labels come from folders named after the declared diagnoses (and the rest get none)."""
    return options.label_from_folders and options.label_map is None and options.diagnoses is not None


class Named(NamedTuple):
    """What a file's path says: its prior label and case id (None where the pattern cut one out of a longer id)."""

    label: str | None
    case: str | None
    cut: bool


def _fits(options: IngestOptions, rx: regex.Pattern | None, locators: Iterable[str]) -> dict[str, Named]:
    """Each file's `Named`, once; refused before any file is read when a prior label or case id is longer than the
    catalogue holds, said without the value (a folder or a case id can be a patient's name). Before, PostgreSQL's
    "unexpected DataError" printed the INSERT with the file's path and case id, mid-ingest; SQLite took it."""
    named: dict[str, Named] = {}
    for loc in locators:
        label = prior_label(options, loc)
        if label is not None and len(label) > LABEL_MOST:
            raise ConfigError(
                f"a folder gives a prior label of {len(label)} characters (at most {LABEL_MOST}): map it to a "
                "shorter label with --label-map; nothing was ingested"
            )
        try:
            case, cut = case_id(rx, loc), False
        except CutCaseId:
            case, cut = None, True
        if case is not None and len(case) > CASE_MOST:
            raise ConfigError(
                f"--case-id-pattern found a case id of {len(case)} characters (at most {CASE_MOST}): make it "
                "match the case id alone; nothing was ingested"
            )
        named[loc] = Named(label, case, cut)
    return named


def prior_label(options: IngestOptions, locator: str) -> str | None:
    """The label map's label for the top-level folder; with label_from_folders, the nearest enclosing folder
    (from the file up to the ingest root, which is not one) whose name is a declared diagnosis once
    normalised ("Healthy skin/" -> healthy_skin), so a patient's folder never becomes a label."""
    if not (options.label_from_folders or options.label_map):
        return None
    folders = locator.split("/")[:-1]
    if not folders:
        return None
    if options.label_map is not None:
        mapped = options.label_map.get(folder_key(folders[0]))
        return slug(mapped) if mapped else None
    if options.diagnoses is None:
        return slug(folders[0]) or None
    return next((label for label in map(slug, reversed(folders)) if label in options.diagnoses), None)


# --- workers ------------------------------------------------------------------------

_W: dict = {}


def _init_worker(objects: str, tmp: str, known: frozenset[str]) -> None:
    _W["store"] = ImageStore(Path(objects), Path(tmp))
    _W["known"] = known


def _examine(path: str) -> tuple:
    """Runs in a worker: ('new'|'known'|'restored', sha, size, info) or ('rejected'|'skipped', reason).

    A catalogued file is put in the store again too: its object is kept when it holds these bytes and written
    again ('restored') when it is missing, cut short or damaged, so re-running ingest repairs the store."""
    try:
        data = read_bounded(path, MAX_BYTES)
    except OSError as exc:
        return ("rejected", f"unreadable ({exc.strerror or type(exc).__name__})")
    if isinstance(data, tuple):
        return data
    named_image = Path(path).suffix.lower() in IMAGE_EXTENSIONS
    if not named_image and not looks_like_image(data[:4096]):  # an empty .gitkeep or notes.txt too: not a photo
        return ("skipped", not_an_image(data[:4096]))
    sha = sha256_bytes(data)
    if sha in _W["known"]:
        _, written = _W["store"].put(data, sha)  # a StoreError (disk full) stops the run, as below
        return ("restored" if written else "known", sha, len(data), None)
    try:
        info = inspect(data)
    except Rejected as exc:
        return ("rejected", str(exc))
    _W["store"].put(data, sha)  # a StoreError (disk full) stops the run once the finished files are recorded
    return ("new", sha, len(data), info)


# --- the job ------------------------------------------------------------------------


def ingest_folder(
    ws,
    folder: Path | str,
    options: IngestOptions,
    run_id: int | None = None,
    on_file: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Ingest every image under `folder` (recursively) from the named source.

    `on_file(done, total)` is called after each file, for progress display.
    """
    started = time.perf_counter()
    root = Path(folder)
    if not root.exists():
        raise ConfigError(f"folder not found: {root}")
    if root.is_file():
        raise ConfigError(f"{root} is a file; ingest takes a folder (of one or more photos)")
    if not root.is_dir():
        raise ConfigError(f"not a folder: {root}")
    root = root.resolve()
    toolkits = ws.own_folders()
    # the workspace itself may be ingested (`curate ingest .`: its own folders are skipped and named); another not
    refuse_own(
        root,
        toolkits,
        "ingest the folder the photos came from",
        lambda f: None if f == ws.root.resolve() else ws.whose(f),
    )
    rx = compile_case_pattern(options.case_id_pattern)
    report = _report(options, rx, run_id)

    unreadable: list[tuple[str, str]] = []
    own = set(options.settings_files)
    candidates = [
        p
        for p in iter_files(root, unreadable, report.skipped, options.follow_symlinks, toolkits, ws.toolkit_folder)
        if locator_of(p, root) not in own
    ]
    named = _fits(options, rx, (locator_of(p, root) for p in candidates))

    def start(s):
        new = s.exec(select(Source.id).where(Source.name == options.source.strip())).first() is None
        source_id = get_or_create_source(s, options.source, options.kind, options.licence).id
        # A file rejected by an earlier run is reported again but recorded once.
        recorded = set(
            s.exec(select(Rejection.locator, Rejection.reason).where(Rejection.source_id == source_id)).all()
        )
        for loc, reason in unreadable:
            _record_rejection(s, recorded, run_id, source_id, loc, reason)
        return source_id, known_shas(s), recorded, new

    source_id, known, recorded, new = ws.transact(start)
    report.rejected.extend(unreadable)
    report.files += len(unreadable)  # before: in the rejected total only, so the rows and "N files" fell short
    for loc, _ in unreadable:
        report.per_class[prior_label(options, loc) or "(none)"]["rejected"] += 1

    def commit(done: list[tuple[str, tuple]]) -> None:
        nonlocal recorded

        def write(s):  # re-run from scratch if a concurrent ingest took a key first (see Workspace.transact)
            part, seen = _report(options, rx), set(recorded)
            for path, result in done:
                loc = locator_of(Path(path), root)
                _record(s, part, options.licence, named[loc], source_id, run_id, loc, result, seen)
            return part, seen

        part, recorded = ws.transact(write)
        report.merge(part)

    run_parallel(
        _examine,
        [str(p) for p in candidates],
        commit,
        batch=options.batch,
        workers=options.workers,
        initializer=_init_worker,
        initargs=(str(ws.store.objects), str(ws.store.tmp), known),
        on_progress=on_file,
    )
    if report.files == 0 and new and ws.transact(lambda s: drop_if_empty(s, source_id)):
        report.unregistered = options.source.strip()
    report.seconds = time.perf_counter() - started
    log.info(
        "ingest source=%s files=%d added=%d rejected=%d",
        options.source,
        report.files,
        report.added,
        len(report.rejected),
    )
    return report


def _report(options: IngestOptions, rx: regex.Pattern | None, run_id: int | None = None) -> IngestReport:
    """An empty report that counts case ids only with a pattern, files under no diagnosis folder only by that rule."""
    folders = by_diagnosis_folder(options)
    mapped = {slug(v) for v in (options.label_map or {}).values()} - {None, ""}
    return IngestReport(
        run_id=run_id,
        case_ids=None if rx is None else 0,
        no_prior_label=0 if folders or options.label_map is not None else None,
        by_map=options.label_map is not None,
        diagnoses=tuple(options.diagnoses or ()) if folders else (),
        undeclared=tuple(sorted(mapped - set(options.diagnoses))) if options.diagnoses is not None else (),
        label_map_hint=options.label_map_hint,
    )


def _record_rejection(s, recorded: set, run_id, source_id, loc: str, reason: str) -> None:
    if (loc, reason) not in recorded:
        s.add(Rejection(run_id=run_id, source_id=source_id, locator=loc, reason=reason))
        recorded.add((loc, reason))


def _record(
    s, report: IngestReport, licence, named: Named, source_id, run_id, loc: str, result: tuple, recorded: set
) -> None:
    if result[0] == "skipped":
        report.skipped.append((loc, result[1]))
        return
    report.files += 1
    label = named.label
    klass = label or "(none)"
    if result[0] == "rejected":
        report.rejected.append((loc, result[1]))
        report.per_class[klass]["rejected"] += 1
        _record_rejection(s, recorded, run_id, source_id, loc, result[1])
        log.debug("rejected %s: %s", loc, result[1])
        return
    # images only (a rejected file has no label to lack); a file beside the map's folders is in none of them
    if label is None and report.no_prior_label is not None and (not report.by_map or "/" in loc):
        report.no_prior_label += 1
    tag, sha, size, info = result
    report.bytes_read += size
    if tag == "restored":
        report.restored += 1
    case = named.case
    report.case_ids_cut += int(named.cut)
    if case is not None:
        report.case_ids += 1
    differs: list[str] = []
    conflicts: list[tuple[str, str]] = []
    outcome = record_arrival(
        s,
        sha256=sha,
        size_bytes=size,
        info=info,
        source_id=source_id,
        locator=loc,
        differs=differs,
        conflicts=conflicts,
        run_id=run_id,
        prior_label=label,
        case_id=case,
        licence=licence,
    )
    report.kept.update(differs)
    report.conflicting.update(conflicts)
    report.conflicting_files += bool(conflicts)
    if outcome == "added":
        report.added += 1
    elif outcome == "provenance":
        report.provenance += 1
    else:
        report.known += 1
    report.per_class[klass][outcome] += 1
    log.debug("%s %s", outcome, sha[:12])
