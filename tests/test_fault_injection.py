"""kill -9 at seeded random moments, re-run, and the catalogue, store and exports are consistent and complete.

Two kills per command on SQLite and one on PostgreSQL here (CI, a few minutes); `python bench/faults.py`
runs 20 per command and prints kills survived / attempted.
"""
from __future__ import annotations

import pytest

from faults import Backend, run_case

KILLS = {"sqlite": 2, "postgres": 1}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request):
    if request.param == "sqlite":
        return Backend()
    return Backend(request.getfixturevalue("pg_server"))


@pytest.mark.slow
@pytest.mark.parametrize("command", ["ingest", "scrape", "dedupe", "export"])
def test_kill_9_then_rerun_is_consistent_and_complete(command, backend, tmp_path):
    kills = KILLS[backend.name]
    result = run_case(command, kills=kills, seed=11, tmp=tmp_path, backend=backend)
    assert result.survived == result.attempted == kills, result.failures
