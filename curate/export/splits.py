"""Group-aware, stratified assignment of images to train / test / external and to folds.

Pure: plain data in, plain data out; no catalogue, no files.

The rules (the paper's design, made leak-safe):
1. Images are joined into *groups*: the connected components of "same dedupe cluster" and
   "same case/patient id". A group is never split across train, test, external or folds.
2. A group that holds an image from a reserved source goes to `external` whole.
3. The remaining groups are dealt into train/test, then the train groups into k folds, by one
   seeded greedy rule: largest groups first, each to the bin whose per-class counts then stay
   closest to the target fractions (StratifiedGroupKFold's rule, generalised to uneven targets).
4. How far the group rule pushed each bin off its target is measured and returned.
5. Stability across versions: given the parent version's assignment (image id -> split, fold),
   a group with any image in the parent keeps its parent place; only groups with no image in
   the parent are dealt by rule 3, counting the kept images toward the targets. When a group's
   parent members disagree (clusters merged, a case id corrected), the split holding most of
   them wins (ties: test, so no former test image lands in train), then the fold holding most;
   rule 2 still wins over the parent. Every parent image whose place changes is returned in
   `moved` with the reason, so a version never moves an image silently.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from curate.errors import ConfigError


class SplitError(ConfigError):
    """The requested split cannot be made from these images (too few, or a group rule forbids it)."""


@dataclass(frozen=True)
class Item:
    """One exportable image as the splitter sees it."""

    id: int
    label: str
    groups: tuple[Hashable, ...] = ()  # e.g. ("cluster:c12", "case:3:P0007"); shared key = same group
    external: bool = False  # comes from a source reserved for external validation


@dataclass
class BinStat:
    name: str
    target: float  # target fraction of the pool
    images: int
    fraction: float
    per_class: dict[str, float]  # class -> fraction of that class's pool images in this bin

    @property
    def deviation_pp(self) -> float:
        """Largest distance from the target, over the whole bin and each class, in percentage points."""
        values = [self.fraction, *self.per_class.values()]
        return round(100 * max(abs(v - self.target) for v in values), 2)


# The parent version's assignment, as plain data: image id -> (split, fold or None).
Assignment = Mapping[int, tuple[str, int | None]]

MOVE_CONFLICT = "its group's images were in different places in the parent (clusters or case ids joined)"
MOVE_RESERVED = "its source (or a group member's) is now reserved for external validation"
MOVE_UNRESERVED = "its source is no longer reserved for external validation; re-dealt"
MOVE_FOLDS = "the number of folds changed; folds re-dealt"


@dataclass(frozen=True)
class Move:
    """A parent image whose split or fold changed, and why."""

    id: int
    old: str  # "train/fold2", "test", "external" (the `curate diff` notation)
    new: str
    reason: str


def place(split: str, fold: int | None) -> str:
    return f"{split}/fold{fold}" if split == "train" and fold is not None else split


@dataclass
class SplitPlan:
    split: dict[int, str]  # item id -> train | test | external
    fold: dict[int, int]  # item id -> fold (train items only)
    group: dict[int, int]  # item id -> group number (connected component)
    bins: list[BinStat] = field(default_factory=list)  # test/train, then fold 0..k-1
    pulled_external: list[int] = field(default_factory=list)  # non-reserved ids that joined a reserved group
    kept: int = 0  # parent images in the same split and fold as in the parent
    moved: list[Move] = field(default_factory=list)  # parent images whose place changed (rule 5)
    dealt_groups: int = 0  # groups placed by the dealing rule (all of them when there is no parent)

    @property
    def max_deviation_pp(self) -> float:
        return max((b.deviation_pp for b in self.bins), default=0.0)


def connected_groups(items: Sequence[Item]) -> dict[int, int]:
    """item id -> group number; items sharing any group key are in one group (scipy's union-find).

    Group numbers are the rank of each group's smallest item id, so they do not depend on input order.
    """
    from scipy.cluster.hierarchy import DisjointSet  # lazy: scipy.cluster takes 0.7 s to import (`curate --help`)

    ids = list(dict.fromkeys(it.id for it in items))
    joined = DisjointSet(ids)
    first_with_key: dict[Hashable, int] = {}
    for it in items:
        for key in it.groups:
            if key is not None:
                joined.merge(it.id, first_with_key.setdefault(key, it.id))
    number = {i: n for n, group in enumerate(sorted(joined.subsets(), key=min)) for i in group}
    return {i: number[i] for i in ids}


def assign_groups(
    groups: dict[int, Counter], weights: Sequence[float], seed: int, initial: Sequence[Counter] | None = None
) -> dict[int, int]:
    """Deal groups (group -> Counter of class counts) into len(weights) bins; return group -> bin.

    Largest groups first (ties in seeded random order); each goes to the bin that minimises the
    squared distance of every (bin, class) fraction from its target weight after adding it.
    `initial` holds per-bin class counts already placed (images kept from the parent version),
    so the dealt groups bring the whole bin, not just the newcomers, towards the target.
    """
    total = sum(weights)
    w = [x / total for x in weights]
    counts = [Counter(c) for c in initial] if initial is not None else [Counter() for _ in w]
    if len(counts) != len(w):
        raise ValueError("initial counts must have one Counter per bin")
    class_total: Counter = Counter()
    for c in [*groups.values(), *counts]:
        class_total.update(c)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -sum(groups[g].values()))  # stable: seeded order among equal sizes
    sizes = [sum(c.values()) for c in counts]
    n_all = sum(class_total.values()) or 1
    out: dict[int, int] = {}
    for g in order:
        gc = groups[g]
        best, best_key = 0, None
        for b in range(len(w)):
            cost = 0.0
            for cls, n in gc.items():
                for bb in range(len(w)):
                    have = counts[bb][cls] + (n if bb == b else 0)
                    cost += (have / class_total[cls] - w[bb]) ** 2
            size_cost = ((sizes[b] + sum(gc.values())) / n_all - w[b]) ** 2
            # Tie-breakers: overall size balance, then the bin furthest below its target, then index.
            key = (round(cost, 12), round(size_cost, 12), sizes[b] / n_all - w[b], b)
            if best_key is None or key < best_key:
                best, best_key = b, key
        out[g] = best
        counts[best].update(gc)
        sizes[best] += sum(gc.values())
    return out


def _bin_stats(names: Sequence[str], weights: Sequence[float], members: dict[str, list[Item]]) -> list[BinStat]:
    pool = [it for name in names for it in members[name]]
    class_total = Counter(it.label for it in pool)
    total = sum(weights)
    stats = []
    for name, weight in zip(names, weights, strict=True):
        its = members[name]
        cc = Counter(it.label for it in its)
        stats.append(
            BinStat(
                name=name,
                target=weight / total,
                images=len(its),
                fraction=len(its) / len(pool) if pool else 0.0,
                per_class={c: cc[c] / class_total[c] for c in sorted(class_total)},
            )
        )
    return stats


def _parent_places(
    members: Sequence[Item], parent: Assignment, folds: int, keep_folds: bool
) -> tuple[str, int | None, bool] | None:
    """Where a group's parent train/test members put it: (split, fold or None, members disagreed), or None if none.

    Most members win; a split tie goes to test (a former test image must not become training data),
    a fold tie to the lower fold. Parent `external` members do not pin (rule 2 decides external).
    """
    prev = [parent[it.id] for it in members if it.id in parent and parent[it.id][0] in ("train", "test")]
    if not prev:
        return None
    prev = [(sp, f if sp == "train" and keep_folds and f is not None and 0 <= f < folds else None) for sp, f in prev]
    n = Counter(sp for sp, _ in prev)
    split = "test" if n["test"] >= n["train"] else "train"
    fold = None
    if split == "train":
        fc = Counter(f for sp, f in prev if sp == "train" and f is not None)
        if fc:
            fold = min(fc, key=lambda f: (-fc[f], f))
    return split, fold, len(set(prev)) > 1


def plan_splits(
    items: Iterable[Item],
    test_fraction: float = 0.2,
    folds: int = 5,
    seed: int = 0,
    parent: Assignment | None = None,
    keep_folds: bool = True,
) -> SplitPlan:
    """Assign every item a split (and train items a fold) under the group rules.

    `parent` is the parent version's assignment (image id -> (split, fold)); images in it keep their
    place (rule 5) and only groups with no image in it are dealt. `keep_folds=False` keeps the parent's
    train/test split but re-deals the folds (the number of folds changed). Without a parent the result
    is exactly the from-scratch deal.

    Raises SplitError, before anything is decided, when a class has fewer groups than the
    test split plus `folds` need, or after, when a group rule leaves a fold or the test split
    without a class.
    """
    items = sorted(items, key=lambda it: it.id)
    parent = parent or {}
    if not items:
        raise SplitError("nothing to split: no exportable images")
    if not 0.0 < test_fraction < 1.0:
        raise SplitError(f"test fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    if folds < 2:
        raise SplitError(f"need at least 2 folds, got {folds}")
    group = connected_groups(items)
    by_group: dict[int, list[Item]] = defaultdict(list)
    for it in items:
        by_group[group[it.id]].append(it)
    external_groups = {g for g, its in by_group.items() if any(it.external for it in its)}
    pulled = sorted(it.id for g in external_groups for it in by_group[g] if not it.external)
    internal = {g: Counter(it.label for it in its) for g, its in by_group.items() if g not in external_groups}

    # Pre-check: every class needs one group for the test split and one per fold.
    groups_per_class: Counter = Counter()
    images_per_class: Counter = Counter()
    for counter in internal.values():
        groups_per_class.update(counter.keys())
        images_per_class.update(counter)
    need = folds + 1
    short = [c for c in sorted(groups_per_class) if groups_per_class[c] < need]
    if not internal:
        raise SplitError(
            "every image is in a reserved external source (or grouped with one): nothing left for train/test"
        )
    if short:
        detail = ", ".join(f"{c!r} has {images_per_class[c]} images in {groups_per_class[c]} groups" for c in short)
        raise SplitError(
            f"too few images for {folds} folds plus a test split (each class needs ≥{need} independent groups): "
            f"{detail}; label more images, or give fewer --folds (at least 2)"
        )

    # Rule 5: groups with parent members keep the parent's place; the rest are dealt around them.
    pinned: dict[int, tuple[str, int | None, bool]] = {}
    for g in internal:
        where = _parent_places(by_group[g], parent, folds, keep_folds)
        if where is not None:
            pinned[g] = where
    tt_initial = [Counter(), Counter()]
    for g, (sp, _, _) in pinned.items():
        tt_initial[0 if sp == "train" else 1].update(internal[g])
    new = {g: c for g, c in internal.items() if g not in pinned}
    tt = assign_groups(new, [1.0 - test_fraction, test_fraction], seed, tt_initial)
    side = {g: ("train" if tt[g] == 0 else "test") for g in new}
    side.update({g: sp for g, (sp, _, _) in pinned.items()})
    split: dict[int, str] = {}
    for g, its in by_group.items():
        name = "external" if g in external_groups else side[g]
        for it in its:
            split[it.id] = name
    train_groups = [g for g in internal if side[g] == "train"]
    fixed = {g: pinned[g][1] for g in train_groups if g in pinned and pinned[g][1] is not None}
    fold_initial = [Counter() for _ in range(folds)]
    for g, f in fixed.items():
        fold_initial[f].update(internal[g])
    fg = assign_groups({g: internal[g] for g in train_groups if g not in fixed}, [1.0] * folds, seed + 1, fold_initial)
    fg.update(fixed)
    fold = {it.id: fg[group[it.id]] for it in items if split[it.id] == "train"}

    kept, moved = 0, []
    for it in items:
        if it.id not in parent:
            continue
        old_split, old_fold = parent[it.id]
        old, now = place(old_split, old_fold), place(split[it.id], fold.get(it.id))
        if old == now:
            kept += 1
            continue
        g = group[it.id]
        if g in external_groups:
            reason = MOVE_RESERVED
        elif old_split == "external":
            reason = MOVE_UNRESERVED
        elif pinned[g][2]:
            reason = MOVE_CONFLICT
        else:
            reason = MOVE_FOLDS
        moved.append(Move(it.id, old, now, reason))

    members: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        members[split[it.id]].append(it)
        if it.id in fold:
            members[f"fold {fold[it.id]}"].append(it)
    bins = _bin_stats(["train", "test"], [1.0 - test_fraction, test_fraction], members)
    bins += _bin_stats([f"fold {k}" for k in range(folds)], [1.0] * folds, members)
    for b in bins:
        missing = [c for c, f in b.per_class.items() if f == 0.0]
        if missing:
            hint = "; or reshuffle, ignoring the parent version's splits" if pinned else ""
            raise SplitError(
                f"the group rule leaves {b.name} without any {', '.join(repr(c) for c in missing)} image "
                f"(groups too large or too few); use fewer folds or a different seed{hint}"
            )
    return SplitPlan(
        split=split,
        fold=fold,
        group=group,
        bins=bins,
        pulled_external=pulled,
        kept=kept,
        moved=moved,
        dealt_groups=len(new),
    )
