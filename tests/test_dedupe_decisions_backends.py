"""A steward's merge and split rewrite the clustering on either catalogue, SQLite or PostgreSQL: the members
are written in one statement (`curate.dedupe.run.recluster`), so both must give every image one row, one
representative a cluster, and the cluster the decision asked for."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from dedupe_corpus import photo, save, variant
from sqlmodel import select

from curate.dedupe import overrides
from curate.dedupe.run import DedupeOptions, run_dedupe
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace
from db.models import DedupeMember, Provenance


def _ids(ws) -> dict[str, int]:
    with ws.session() as s:
        return {Path(loc).stem: i for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all()}


def _clusters(ws) -> tuple[dict[str, str], Counter]:
    """file name -> cluster key, and how many representatives each cluster has."""
    name = {i: n for n, i in _ids(ws).items()}
    with ws.session() as s:
        members = s.exec(select(DedupeMember)).all()
    reps = Counter(m.cluster_key for m in members if m.representative)
    return {name[m.image_id]: m.cluster_key for m in members}, reps


def test_a_merge_and_a_split_give_the_clusters_asked_for_on_either_catalogue(tmp_path, db_url):
    folder = tmp_path / "in"
    for k in range(3):
        save(photo(70 + k), folder / f"p{k}.jpg")
    save(variant(photo(70), "bar", 0), folder / "p0_bar.jpg")
    ws = Workspace.init(tmp_path / "ws", db_url=db_url)
    ingest_folder(ws, folder, IngestOptions(source="atlas", kind="public", workers=1))
    run_dedupe(ws, DedupeOptions(min_side=64, workers=1))
    key, reps = _clusters(ws)
    assert len(key) == 4 and key["p0"] == key["p0_bar"] and len({key["p0"], key["p1"], key["p2"]}) == 3
    ids = _ids(ws)

    summary = overrides.merge(ws, ids["p1"], ids["p2"], "one photo, two crops")
    key, reps = _clusters(ws)
    assert key["p1"] == key["p2"] != key["p0"] and summary["clusters"] == 2
    assert set(reps.values()) == {1} and set(reps) == set(key.values())  # one representative a cluster

    overrides.split(ws, ids["p0_bar"], note="a different lesion under the bar")  # every other member
    key, reps = _clusters(ws)
    assert key["p0_bar"] != key["p0"] and key["p1"] == key["p2"] and len(key) == 4
    assert set(reps.values()) == {1} and set(reps) == set(key.values())

    run_dedupe(ws, DedupeOptions(min_side=64, workers=1))  # a re-run keeps both decisions
    assert _clusters(ws)[0] == key
