"""kill -9 at seeded random moments, re-run, and the catalogue, store and exports are consistent and complete.

Two kills per command on SQLite and one on PostgreSQL here (CI, a few minutes); label pull, against the
suite's real Label Studio servers, three kills on SQLite. `python bench/faults.py` runs 20 per command
and prints kills survived / attempted.
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


@pytest.mark.slow
@pytest.mark.studio
def test_kill_9_during_label_pull_then_rerun_records_every_annotation_once(studio_server, tmp_path, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", studio_server.admin_token)
    monkeypatch.setenv("CURATE_STUDIO_DOCUMENT_ROOT", str(studio_server.base))
    result = run_case("label pull", kills=3, seed=11, tmp=tmp_path, backend=Backend(), studio=studio_server)
    assert result.survived == result.attempted == 3, result.failures
