"""`bench/dedupe_decisions.py`: its catalogue is a dedupe run's rows (groups of copies, pairs to review between
them), and the decisions it times are carried out, as a steward's are, by `curate dedupe merge` and `split`."""

from __future__ import annotations

import hashlib
import io
import json
import random
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

from PIL import Image

from curate.workspace import Workspace

BENCH = Path(__file__).resolve().parent.parent / "bench" / "dedupe_decisions.py"
sys.path.insert(0, str(BENCH.parent))

import dedupe_decisions


def test_the_catalogue_holds_groups_of_copies_and_pairs_to_review_between_them(tmp_path):
    made = dedupe_decisions.build(tmp_path / "ws", 500)
    db = sqlite3.connect(tmp_path / "ws" / "catalogue.db")
    kinds = Counter(k for (k,) in db.execute("select kind from dedupe_pairs"))
    assert db.execute("select count(*) from images").fetchone()[0] == 500
    assert sum(kinds.values()) == made["pairs"] and set(kinds) == {"hash", "review", "untested"}
    assert kinds["review"] + kinds["untested"] == int(dedupe_decisions.REVIEW_PER_IMAGE * 500)
    assert db.execute("select count(distinct image_a || '-' || image_b) from dedupe_pairs").fetchone()[0] == sum(
        kinds.values()
    )  # one row a pair, as a run stores them
    sizes = Counter(len(g) for g in dedupe_decisions.groups(500, random.Random(0)))
    assert sizes[1] > sizes[2] > 0 and max(sizes) <= 6
    shas = [sha for (sha,) in db.execute("select sha256 from images")]
    assert len(set(shas)) == 500  # each picture its own bytes, as the store holds them
    store = Workspace.open(tmp_path / "ws").store
    for sha in shas[:3]:
        data = store.read(sha)
        assert hashlib.sha256(data).hexdigest() == sha and Image.open(io.BytesIO(data)).size == (96, 72)


def test_each_decision_timed_is_carried_out(tmp_path):
    run = subprocess.run(
        [sys.executable, str(BENCH), "--sizes", "300", "--repeat", "1", "--imagededup-max", "0", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    [row] = json.loads(run.stdout)
    assert row["images"] == 300 and min(row["merge_s"], row["split_s"], row["record_s"], row["sheet_s"]) > 0
    assert row["sheet_mb"] > 0.1  # thumbnails of the stored pictures, not empty frames
    assert row["imagededup_s"] is None
    assert 20 < row["peak_mb"] < 2000  # the command's own peak, not this script's


def test_a_clustering_not_as_decided_stops_the_benchmark(tmp_path):
    dedupe_decisions.build(tmp_path / "ws", 100)
    try:
        dedupe_decisions.together(tmp_path / "ws", 1, 2, True)  # no dedupe run: no clustering at all
    except SystemExit as e:
        assert "not as decided" in str(e)
    else:
        raise AssertionError("a catalogue without the decision's clustering passed")
