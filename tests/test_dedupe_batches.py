"""Verification's pairs in batches whose pictures' features fit together (`curate.dedupe.batches`): each pair
looked at once, no batch over its room, and pairs that share pictures kept together, so a catalogue larger
than the room takes each picture's features about once, not once for each of its pairs."""

from __future__ import annotations

import numpy as np

from curate.dedupe.batches import batches


def _ring(n: int, seed: int) -> list[tuple[int, int]]:
    """Pictures 0..n-1, each a candidate with the next two (as copies' neighbours are), in a shuffled order."""
    pairs = [(i, (i + d) % n) for i in range(n) for d in (1, 2)]
    order = np.random.default_rng(seed).permutation(len(pairs))
    return [tuple(sorted(pairs[k])) for k in order]


def test_every_pair_once_within_the_room_and_the_settled_ones_first():
    pairs = _ring(60, 0)
    needs = [k % 7 != 0 for k in range(len(pairs))]  # every seventh settled by thumbnails: no features needed
    found = batches(pairs, needs, room=10)
    assert sorted(k for b in found for k in b) == list(range(len(pairs)))
    assert all(len({i for k in b if needs[k] for i in pairs[k]}) <= 10 for b in found)
    assert {k for k, n in enumerate(needs) if not n} <= set(found[0])


def test_a_catalogue_that_fits_is_one_batch_in_the_proposals_order():
    pairs = _ring(60, 1)
    assert batches(pairs, [True] * len(pairs), room=60) == [list(range(len(pairs)))]


def test_pairs_sharing_pictures_come_together():
    """120 pictures, room for 12: batches of the pairs in the proposal's order take 470 pictures' features,
    nearly two for every pair; batched by `batches`, 177, about one and a half a picture."""
    pairs = _ring(120, 2)
    found = batches(pairs, [True] * len(pairs), room=12)
    taken = sum(len({i for k in b for i in pairs[k]}) for b in found)
    assert taken < 200
