"""`bench/leakage.py --retouched`: the leakage audit's benchmark on what a journal, an app or a forum does to a
photo, the copies dedupe leaves out most, each kind a column of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from photo_corpus import RETOUCHES

BENCH = Path(__file__).resolve().parent.parent / "bench" / "leakage.py"


@pytest.mark.slow
def test_the_audit_is_scored_on_every_retouched_kind(tmp_path):
    run = subprocess.run(
        [sys.executable, str(BENCH), "--retouched", "--no-photos", "--skin", "2", "--workers", "1"]
        + ["--out", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = json.loads(run.stdout)["rows"]
    default = next(r for r in rows if r["default"])
    assert set(RETOUCHES) <= set(default)  # a recall for every kind
    assert default["grey"] == 1.0 and default["false_pairs"] == 0
    planted = {p.name.split("-", 1)[1].removesuffix(".jpg") for p in tmp_path.glob("[0-9]*-*.jpg")}
    assert planted == {"original", *RETOUCHES}
