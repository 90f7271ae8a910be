"""How far the catalogue's clusters agree with a steward's own answer (`curate dedupe score TRUTH.csv`), and how
`bench/dedupe.py` scores every tool on its corpora.

imagededup's `evaluation` module scores the pairs a tool listed against a map of true duplicates. A cluster
merges every pair inside it, listed or not (one weak link joined two clusters, and 11 photos in one frame became
one cluster), so here precision counts every pair a cluster holds; recall is counted per pair and, where the
truth names what was done to a copy, per kind of copy: a copy is found when it shares a cluster with its group's
original (the group's first file without a kind).
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, replace
from itertools import combinations, islice
from pathlib import Path, PurePosixPath

from sqlmodel import select

from curate.dedupe import cluster_map, uncompared_image_ids, undecided_pairs
from curate.errors import CurateError
from curate.regular import NotRegular, open_regular
from db.models import Provenance

LISTED = 20  # false and missed pairs a score lists (`--json`); the counts are whole
MOST_BYTES = 256 * 2**20  # a truth file larger than this is refused: a million rows take about 50 MB


class TruthError(CurateError):
    """The steward's truth file cannot be read or names nothing in the catalogue."""


@dataclass(frozen=True)
class Truth:
    group: dict[Hashable, str]  # file (or image) -> the group of those that are one photo
    kind: dict[Hashable, str]  # file -> what was done to the copy ("" for an original)
    line: dict[Hashable, int] = field(default_factory=dict)  # file -> its line in the truth file


@dataclass(frozen=True)
class DedupeScore:
    images: int  # files (in the catalogue: images) of the truth scored
    cluster_pairs: int  # pairs of them inside one cluster
    false_pairs: int  # of those, pairs the truth calls different photos
    true_pairs: int  # pairs the truth calls one photo
    found_pairs: int  # of those, pairs inside one cluster
    by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (copies found, copies)
    false: list[tuple] = field(default_factory=list)  # the first LISTED false pairs (in the catalogue: image ids)
    missed: list[tuple] = field(default_factory=list)  # the first LISTED missed pairs
    missed_to_review: int = 0  # missed pairs that the review sheet lists (found alike, left apart, not split)
    unknown: list[int] = field(default_factory=list)  # lines of the truth file naming no one image of the catalogue

    @property
    def precision(self) -> float:
        """Share of the pairs inside clusters that are one photo (1.0 when no cluster holds two)."""
        return (self.cluster_pairs - self.false_pairs) / self.cluster_pairs if self.cluster_pairs else 1.0

    @property
    def recall(self) -> float:
        """Share of the truth's same-photo pairs inside one cluster (1.0 when it names none)."""
        return self.found_pairs / self.true_pairs if self.true_pairs else 1.0


def score(truth: Truth, cluster_of: Mapping[Hashable, Hashable], review: set[frozenset] = frozenset()) -> DedupeScore:
    """`truth` against the clusters `cluster_of` (key -> cluster; a key without one is alone). `review`: pairs the
    review sheet lists, counted among the missed ones. Pairs are counted per cluster and per group, so a cluster of
    many costs what its members do; only the first `LISTED` of each kind are made."""
    where = {f: cluster_of.get(f, ("alone", f)) for f in truth.group}
    false: list[tuple] = []
    cluster_pairs = false_pairs = 0
    for files in _members(where).values():
        groups = Counter(truth.group[f] for f in files)
        cluster_pairs += _pairs(len(files))
        false_pairs += _pairs(len(files)) - sum(map(_pairs, groups.values()))
        if len(groups) > 1:
            apart = ((a, b) for a, b in combinations(files, 2) if truth.group[a] != truth.group[b])
            false += islice(apart, max(0, LISTED - len(false)))
    missed: list[tuple] = []
    true_pairs = found_pairs = 0
    found, total = Counter(), Counter()
    for files in _members(truth.group).values():
        clusters = Counter(where[f] for f in files)
        true_pairs += _pairs(len(files))
        found_pairs += sum(map(_pairs, clusters.values()))
        if len(clusters) > 1:
            missed += islice(
                ((a, b) for a, b in combinations(files, 2) if where[a] != where[b]), max(0, LISTED - len(missed))
            )
        original = next((f for f in files if not truth.kind.get(f)), None)
        for f in files if original is not None else ():
            if kind := truth.kind.get(f):
                total[kind] += 1
                found[kind] += where[f] == where[original]
    to_review = sum(
        len(p) == 2
        and all(f in where for f in p)
        and len({truth.group[f] for f in p}) == 1
        and len({where[f] for f in p}) == 2
        for p in review
    )
    return DedupeScore(
        images=len(where),
        cluster_pairs=cluster_pairs,
        false_pairs=false_pairs,
        true_pairs=true_pairs,
        found_pairs=found_pairs,
        by_kind={k: (found[k], total[k]) for k in sorted(total)},
        false=false,
        missed=missed,
        missed_to_review=to_review,
    )


def said_lines(lines: list[int], most: int = 5) -> str:
    """Line numbers as a message gives them: the first `most`, then "…"."""
    return ", ".join(map(str, lines[:most])) + (", …" if len(lines) > most else "")


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _members(of: Mapping[Hashable, Hashable]) -> dict[Hashable, list]:
    """value -> the keys of `of` that have it, in their order."""
    out: dict[Hashable, list] = defaultdict(list)
    for k, v in of.items():
        out[v].append(k)
    return out


def read_truth(path: Path) -> Truth:
    """The truth CSV: a header with `file` (as ingested: its path inside the ingested folder, or its URL; a name
    alone when one image alone has it) and `group` (files of one group are one photo), and optionally `kind` (what
    was done to a copy; empty for the original). TruthError naming the file and line for anything else, never a
    file name from it (a name may hold a patient's)."""
    try:
        with open_regular(path) as (f, st):
            if st.st_size > MOST_BYTES:
                raise TruthError(
                    f"{path}: {st.st_size // 2**20} MB, more than a truth file takes ({MOST_BYTES // 2**20} MB)"
                )
            text = f.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TruthError(f"{path}: not UTF-8 text (save the truth as CSV in UTF-8)") from None
    except NotRegular as exc:
        raise TruthError(f"cannot read {path}: it is {exc.kind}, not a file") from None
    except OSError as exc:
        raise TruthError(f"cannot read {path} ({exc.strerror or type(exc).__name__})") from None
    group: dict[Hashable, str] = {}
    kind: dict[Hashable, str] = {}
    lines: dict[Hashable, int] = {}
    try:
        reader = csv.DictReader(io.StringIO(text))
        reader.fieldnames = [c.strip() for c in reader.fieldnames or ()]
        if not {"file", "group"} <= set(reader.fieldnames):
            raise TruthError(f"{path}: needs a header with the columns file and group (and optionally kind)")
        for row in reader:
            line = reader.line_num  # a row's last line: blank lines are skipped, a quoted cell may span several
            name, g = (row.get("file") or "").strip(), (row.get("group") or "").strip()
            if not name or not g:
                raise TruthError(f"{path} line {line}: needs a file and a group")
            if name in group:
                raise TruthError(f"{path} line {line}: names the file of line {lines[name]} again")
            group[name], kind[name], lines[name] = g, (row.get("kind") or "").strip(), line
    except csv.Error as exc:
        raise TruthError(f"{path}: not CSV ({exc})") from None
    if not group:
        raise TruthError(f"{path}: lists no file")
    return Truth(group, kind, lines)


def _images(ws, truth: Truth) -> dict[Hashable, int]:
    """file -> its image, for the files of `truth` found in the catalogue: by locator, else (a name without a
    folder) by name, when one image alone has it."""
    with ws.session() as s:
        arrivals = s.exec(select(Provenance.locator, Provenance.image_id)).all()
    by_locator: dict[str, set[int]] = defaultdict(set)
    by_name: dict[str, set[int]] = defaultdict(set)
    for loc, i in arrivals:
        by_locator[loc].add(i)
        by_name[PurePosixPath(loc).name].add(i)
    image = {}
    for f in truth.group:
        found = by_locator.get(f) or (by_name.get(f, set()) if "/" not in f else set())
        if len(found) == 1:  # else not there, or two sources' files of that path or name
            image[f] = next(iter(found))
    return image


def score_catalogue(ws, path: Path) -> DedupeScore:
    """The catalogue's current clusters scored against the truth file at `path` (`curate dedupe score`), image by
    image: two lines naming one image (copies with the same bytes are one image) count once, and must name one
    group. Lines naming no one image are left out and listed by number. Pairs are named by image ids, as on the
    review sheet, never by file name: a file name may hold a patient's."""
    truth = read_truth(path)
    image = _images(ws, truth)
    if not image:
        raise TruthError(
            f"none of the {len(truth.group)} files of {path} is in the catalogue: name each as it was ingested "
            "(its path inside the ingested folder, or its URL)"
        )
    group: dict[Hashable, str] = {}
    kind: dict[Hashable, str] = {}
    line: dict[Hashable, int] = {}
    for f, i in image.items():
        if i in group and group[i] != truth.group[f]:
            raise TruthError(
                f"{path} lines {line[i]} and {truth.line[f]} name one image (the same bytes) in two groups"
            )
        if i not in group or not truth.kind[f]:  # of two lines naming one image, an original's counts
            group[i], kind[i], line[i] = truth.group[f], truth.kind[f], truth.line[f]
    with ws.session() as s:
        late = uncompared_image_ids(s, set(group))
        clusters = cluster_map(s)
        review = {frozenset(p) for p in undecided_pairs(s, clusters)}
    if late:
        raise TruthError(
            f"{path}: the files of line {said_lines(sorted(line[i] for i in late))} came in after the last dedupe "
            "run: run `curate dedupe` first, then score"
        )
    scored = score(Truth(group, kind, line), {i: clusters[i] for i in group}, review)
    return replace(scored, unknown=[truth.line[f] for f in truth.group if f not in image])
