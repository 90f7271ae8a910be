"""`bench/local_scale.py`: the local proposal's scale line measures what it says, a catalogue grown from real
SIFT descriptors whose planted copies are found and whose variants are pictures of their own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "local_scale.py"
sys.path.insert(0, str(BENCH.parent))

import local_scale


def test_a_variant_keeps_each_descriptors_values_and_moves_them():
    """Turning the orientation bins (and from the ninth variant mirroring the grid) keeps every value of
    a descriptor, so its statistics are SIFT's, and no variant equals another."""
    rng = np.random.default_rng(0)
    d = rng.integers(0, 256, (5, 128), dtype=np.uint8)
    variants = [local_scale.variant(d, r) for r in range(10)]
    for v in variants:
        assert v.shape == d.shape and v.dtype == np.uint8
        assert (np.sort(v, axis=1) == np.sort(d, axis=1)).all()
    flat = {v.tobytes() for v in [d, *variants[1:]]}
    assert len(flat) == 10


@pytest.mark.slow
def test_the_scale_line_finds_the_planted_copies_and_says_which_index_ran(tmp_path):
    """300 pictures grown to 600: each variant's three planted copies are proposed with their originals,
    and the line says which index ran and caches the descriptors it took."""
    run = subprocess.run(
        [sys.executable, str(BENCH), "--pictures", "600", "--base", "300", "--corpus", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    (row,) = json.loads(run.stdout)
    assert row["pictures"] == 606 and row["lists"] == "float"  # under 80,000 descriptors: below local.FAST
    assert row["planted"] == 6 and row["planted_found"] == 6
    assert row["candidates"] < 606  # different pictures are not proposed wholesale
    assert (tmp_path / "local-scale-v1-300.npz").exists()  # built once, reused


@pytest.mark.slow
def test_the_re_run_line_sets_the_new_pictures_asking_beside_everyone_asking(tmp_path):
    """`--new`: 1 % of 606 pictures and half the planted copies arrive (9, under `local.ALONE`); the re-run's
    proposal finds every candidate everyone asking finds, the new copies with their originals among them."""
    run = subprocess.run(
        [sys.executable, str(BENCH), "--pictures", "600", "--base", "300", "--corpus", str(tmp_path), "--new", "0.01"]
        + ["--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    (row,) = json.loads(run.stdout)
    assert row["new"] == 9 and row["planted"] >= 3 and row["planted_found"] == row["planted"]
    assert 0 < row["everyone_candidates"] == row["everyone_kept"] <= row["candidates"]
