"""The pure splitter: groups never straddle, stratification within tolerance, seeded, honest errors."""

from collections import Counter, defaultdict

import numpy as np
import pytest

from curate.export.splits import Item, SplitError, assign_groups, connected_groups, plan_splits


def synthetic(n_groups=600, seed=1, external_every=0):
    """Groups of 1–4 images (a case with several photos, or a near-duplicate cluster); 30% mpox."""
    rng = np.random.default_rng(seed)
    items, next_id = [], 1
    for g in range(n_groups):
        label = "mpox" if rng.random() < 0.3 else "non_mpox"
        size = int(rng.integers(1, 5))
        ext = bool(external_every) and g % external_every == 0
        for k in range(size):
            # Every third group is linked through a cluster key on one member and a case key on another.
            groups = (f"case:{g}",) if k % 2 == 0 else (f"cluster:{g}",)
            if k == 1:
                groups = (f"cluster:{g}", f"case:{g}")
            items.append(Item(id=next_id, label=label if k < 3 else "mpox", groups=groups, external=ext and k == 0))
            next_id += 1
    return items


def test_connected_groups_join_clusters_and_cases_transitively():
    items = [
        Item(1, "a", ("cluster:x",)),
        Item(2, "a", ("cluster:x", "case:P1")),
        Item(3, "b", ("case:P1",)),
        Item(4, "b", ("case:P2", "cluster:y")),
        Item(5, "a", ("cluster:y",)),
        Item(6, "a", ()),
    ]
    g = connected_groups(items)
    assert g[1] == g[2] == g[3] and g[4] == g[5] and len({g[1], g[4], g[6]}) == 3
    assert connected_groups(list(reversed(items))) == g  # numbering does not depend on input order


def test_no_group_straddles_splits_or_folds_and_stratification_holds():
    items = synthetic(external_every=10)
    plan = plan_splits(items, test_fraction=0.2, folds=5, seed=7)
    places = defaultdict(set)
    for it in items:
        places[plan.group[it.id]].add((plan.split[it.id], plan.fold.get(it.id)))
    assert all(len(p) == 1 for p in places.values())
    # Reserved items' groups are external whole; non-reserved members came along and are reported.
    assert all(plan.split[it.id] == "external" for it in items if it.external)
    assert plan.pulled_external and all(not next(i for i in items if i.id == x).external for x in plan.pulled_external)
    # Within tolerance: 600 groups of ≤4 images deal to within 2 percentage points per class.
    assert plan.max_deviation_pp < 2.0, [(b.name, b.deviation_pp) for b in plan.bins]
    pool = [it for it in items if plan.split[it.id] != "external"]
    test = [it for it in pool if plan.split[it.id] == "test"]
    assert abs(len(test) / len(pool) - 0.2) < 0.02
    for cls in ("mpox", "non_mpox"):
        n_cls = sum(it.label == cls for it in pool)
        assert abs(sum(it.label == cls for it in test) / n_cls - 0.2) < 0.02
    train = [it for it in pool if plan.split[it.id] == "train"]
    assert set(plan.fold) == {it.id for it in train}
    sizes = Counter(plan.fold.values())
    assert sorted(sizes) == [0, 1, 2, 3, 4] and max(sizes.values()) - min(sizes.values()) <= 0.03 * len(train)


def test_seeded_and_order_independent():
    items = synthetic(200)
    a = plan_splits(items, seed=3)
    b = plan_splits(list(reversed(items)), seed=3)
    c = plan_splits(items, seed=4)
    assert (a.split, a.fold) == (b.split, b.fold)
    assert a.split != c.split


def test_uneven_target_and_reported_deviation_when_groups_force_it():
    # One giant case of 40 mpox photos among 75: no fold can get half of train's mpox.
    items = [Item(i, "mpox", ("case:big",)) for i in range(1, 41)]
    items += [Item(100 + i, "mpox", ()) for i in range(35)]
    items += [Item(200 + i, "non_mpox", ()) for i in range(60)]
    plan = plan_splits(items, test_fraction=0.2, folds=2, seed=0)
    assert len({(plan.split[i], plan.fold.get(i)) for i in range(1, 41)}) == 1
    bins = {b.name: b for b in plan.bins}
    assert set(bins) == {"train", "test", "fold 0", "fold 1"}
    assert bins["test"].deviation_pp < 1.0  # train/test can still be hit ...
    assert (
        max(bins["fold 0"].deviation_pp, bins["fold 1"].deviation_pp) > 10
    )  # ... the folds cannot: reported, not hidden
    assert plan.max_deviation_pp > 10


def test_assign_groups_balances_weights():
    groups = {g: Counter({"a": 1}) for g in range(100)}
    out = assign_groups(groups, [3, 1], seed=0)
    assert Counter(out.values()) == {0: 75, 1: 25}


@pytest.mark.parametrize(
    "items, kwargs, message",
    [
        ([], {}, "no exportable images"),
        (
            [Item(i, "a" if i % 2 else "b") for i in range(10)],
            {"folds": 5},
            r"too few images for 5 folds.*'a' has 5 images in 5 groups",
        ),
        (
            [Item(i, "a" if i % 2 else "b", ("case:x",) if i % 2 else ()) for i in range(40)],
            {"folds": 2},
            r"'a' has 20 images in 1 groups",
        ),
        ([Item(i, "a" if i % 2 else "b", external=True) for i in range(10)], {}, "nothing left for train/test"),
        ([Item(i, "a") for i in range(10)], {"test_fraction": 1.0}, "between 0 and 1"),
        ([Item(i, "a") for i in range(10)], {"folds": 1}, "at least 2 folds"),
    ],
)
def test_errors(items, kwargs, message):
    with pytest.raises(SplitError, match=message):
        plan_splits(items, **kwargs)


# --- rule 5: stability across versions ----------------------------------------------------------


def _assignment(plan):
    return {i: (s, plan.fold.get(i)) for i, s in plan.split.items()}


def test_parent_images_keep_their_place_and_newcomers_follow_their_group():
    items = synthetic(200, seed=5)
    v1 = plan_splits(items, seed=3)
    parent = _assignment(v1)
    next_id = max(it.id for it in items) + 1
    joiner = Item(next_id, "mpox", ("case:17",))  # joins an existing group (case key of group 17)
    fresh = [Item(next_id + 1 + k, "mpox" if k % 3 == 0 else "non_mpox", (f"case:new{k}",)) for k in range(60)]
    v2 = plan_splits([*items, joiner, *fresh], seed=3, parent=parent)
    assert all((v2.split[i], v2.fold.get(i)) == place for i, place in parent.items())
    assert v2.moved == [] and v2.kept == len(items) and v2.dealt_groups == len(fresh)
    member = next(it.id for it in items if "case:17" in it.groups)
    assert (v2.split[joiner.id], v2.fold.get(joiner.id)) == parent[member]
    dealt = Counter(v2.split[it.id] for it in fresh)
    assert set(dealt) == {"train", "test"}
    # The dealt groups are counted with the kept ones: the whole version stays near its targets.
    assert v2.max_deviation_pp < 3.0, [(b.name, b.deviation_pp) for b in v2.bins]
    # Same inputs, same answer; and without a parent it is the from-scratch deal.
    again = plan_splits([*reversed(items), joiner, *fresh], seed=3, parent=parent)
    assert (again.split, again.fold, again.moved) == (v2.split, v2.fold, v2.moved)
    assert _assignment(plan_splits(items, seed=3, parent={})) == parent


def test_conflicting_parent_places_pick_the_majority_then_test_and_report_each_move():
    from curate.export.splits import MOVE_CONFLICT

    filler = [Item(100 + i, "mpox" if i % 2 else "non_mpox") for i in range(40)]
    base = plan_splits(filler, seed=0)
    parent = _assignment(base)
    # Group A (ids 1-3) was in train fold 1, B (id 4) in test; C (id 5) in train fold 0, D (id 6) in test.
    parent.update(
        {1: ("train", 1), 2: ("train", 1), 3: ("train", 1), 4: ("test", None), 5: ("train", 0), 6: ("test", None)}
    )
    items = [
        *filler,
        Item(1, "mpox", ("cluster:a",)),
        Item(2, "mpox", ("cluster:a",)),
        Item(3, "mpox", ("cluster:a", "case:x")),
        Item(4, "mpox", ("case:x",)),  # a corrected case id joins B to A: 3 train vs 1 test -> train fold 1
        Item(5, "non_mpox", ("cluster:cd",)),
        Item(6, "non_mpox", ("cluster:cd",)),  # merged clusters, 1 vs 1 -> test
        Item(7, "non_mpox", ("cluster:cd",)),
    ]  # a newcomer goes with the merged group
    plan = plan_splits(items, seed=0, parent=parent)
    assert [(plan.split[i], plan.fold.get(i)) for i in (1, 2, 3, 4)] == [("train", 1)] * 4
    assert [plan.split[i] for i in (5, 6, 7)] == ["test"] * 3
    assert [(m.id, m.old, m.new, m.reason) for m in plan.moved] == [
        (4, "test", "train/fold1", MOVE_CONFLICT),
        (5, "train/fold0", "test", MOVE_CONFLICT),
    ]
    assert plan.kept == len(filler) + 4


def test_newly_reserved_source_leaves_train_test_and_unreserved_one_is_redealt():
    from curate.export.splits import MOVE_FOLDS, MOVE_RESERVED, MOVE_UNRESERVED

    items = synthetic(100, seed=2)
    parent = _assignment(plan_splits(items, seed=1))
    reserved = next(it for it in items if parent[it.id][0] == "train")
    parent[999_001] = ("external", None)  # was reserved in the parent; its source no longer is
    now = [Item(it.id, it.label, it.groups, external=it.id == reserved.id) for it in items]
    now.append(Item(999_001, "mpox", ("case:lonely",)))
    plan = plan_splits(now, seed=1, parent=parent)
    why = {m.id: m for m in plan.moved}
    assert plan.split[reserved.id] == "external" and why[reserved.id].reason == MOVE_RESERVED
    assert all(why[i].reason == MOVE_RESERVED for i in why if i != 999_001)  # its group came along, each reported
    assert plan.split[999_001] in ("train", "test") and why[999_001].reason == MOVE_UNRESERVED
    # Another number of folds: train/test kept, folds re-dealt, and every fold change reported.
    three = plan_splits(items, folds=3, seed=1, parent=_assignment(plan_splits(items, seed=1)), keep_folds=False)
    assert all(three.split[i] == s for i, (s, _) in _assignment(plan_splits(items, seed=1)).items())
    assert three.moved and {m.reason for m in three.moved} == {MOVE_FOLDS} and set(three.fold.values()) == {0, 1, 2}


def test_assign_groups_counts_what_is_already_placed():
    groups = {g: Counter({"a": 1}) for g in range(20)}
    out = assign_groups(groups, [3, 1], seed=0, initial=[Counter({"a": 60}), Counter()])
    assert Counter(out.values()) == {1: 20}  # the 60 kept train images leave the newcomers to test
    assert assign_groups(groups, [3, 1], seed=0, initial=[Counter(), Counter()]) == assign_groups(
        groups, [3, 1], seed=0
    )
