"""Decisions a hostile probe made between runs, and what the catalogue then said.

Before: any decision made after an ingest gave the new, never compared images clusters of their own, so export
and `label push` no longer warned that a copy of them may sit in another split; a kept image that a later
`--min-side` put under the minimum silently took its whole cluster out of labelling; `merge 1 2 3` then
`split 2 3` left the merge 1–3 recorded and not honoured; after a merge joined two kept images, `keep --undo` of
the later handed the cluster to the earlier, not to the rule; a damaged cached CNN embedding stopped every
`dedupe --cnn`."""

from __future__ import annotations

import json

import pytest
from dedupe_corpus import photo, save, variant
from sqlmodel import select
from test_cli_dedupe import _ids, _rep, runner

from curate.cli import app
from curate.dedupe import labelable_image_ids, uncompared_image_ids
from curate.dedupe.run import DedupeOptions, run_dedupe
from curate.workspace import Workspace
from db.models import DedupeCode


def _dedupe(root, *extra):
    r = runner.invoke(app, ["dedupe", "-w", str(root), "--min-side", "64", "--workers", "1", *extra])
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture()
def deduped(ws_path):
    _dedupe(ws_path)
    return ws_path


@pytest.fixture()
def ws_path(tmp_path):
    return _seven(tmp_path)


def _seven(tmp_path):
    folder = tmp_path / "photos"
    for k in range(4):
        save(photo(40 + k), folder / f"p{k}.jpg")
    save(variant(photo(40), "quarter_turn", 0), folder / "p0_turned.jpg")
    save(photo(41).resize((120, 100)), folder / "p1_small.jpg")  # a smaller copy: 100 px on its short side
    root = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    r = runner.invoke(app, ["ingest", str(folder), "--source", "clinic-x", "--workers", "1", "-w", str(root)])
    assert r.exit_code == 0, r.output
    return root


def test_a_decision_leaves_images_ingested_since_the_last_run_uncompared(deduped, tmp_path):
    more = tmp_path / "more"
    save(variant(photo(42), "reencode", 0), more / "p2_again.jpg")
    r = runner.invoke(app, ["ingest", str(more), "--source", "web-y", "--workers", "1", "-w", str(deduped)])
    assert r.exit_code == 0, r.output
    ws, ids = _ids(deduped)
    new = ids["p2_again.jpg"]
    assert runner.invoke(app, ["dedupe", "keep", str(ids["p0_turned.jpg"]), "-w", str(deduped)]).exit_code == 0
    with ws.session() as s:
        assert uncompared_image_ids(s, {new}) == [new]
    r = runner.invoke(app, ["dedupe", "merge", str(ids["p3.jpg"]), str(new), "-w", str(deduped)])
    assert r.exit_code == 1 and f"image {new} not in a cluster yet" in " ".join(r.output.split())
    _dedupe(deduped)  # the next run compares it
    with ws.session() as s:
        assert uncompared_image_ids(s, {new}) == []


def test_a_keep_under_a_later_min_side_gives_way_and_is_said(deduped):
    ws, ids = _ids(deduped)
    small, big = ids["p1_small.jpg"], ids["p1.jpg"]
    assert _rep(ws, big) == big
    assert runner.invoke(app, ["dedupe", "keep", str(small), "-w", str(deduped)]).exit_code == 0
    assert _rep(ws, big) == small
    said = " ".join(_dedupe(deduped, "--min-side", "128").output.split())
    assert f"kept image {small} is below --min-side 128 now" in said
    assert _rep(ws, big) == big
    with ws.session() as s:
        assert big in labelable_image_ids(s)  # the cluster is still labelled
    data = json.loads(_dedupe(deduped, "--min-side", "128", "--json").stdout)
    assert any(f"kept image {small}" in n for n in data["notes"])
    _dedupe(deduped)  # back to 64: the keep stands again
    assert _rep(ws, big) == small


def test_a_split_that_a_merge_through_a_third_contradicts_is_refused(deduped):
    ws, ids = _ids(deduped)
    a, b, c = ids["p0.jpg"], ids["p2.jpg"], ids["p3.jpg"]
    assert runner.invoke(app, ["dedupe", "merge", str(a), str(b), str(c), "-w", str(deduped)]).exit_code == 0
    r = runner.invoke(app, ["dedupe", "split", str(b), str(c), "-w", str(deduped)])
    said = " ".join(r.output.split())
    assert r.exit_code == 1 and f"images {b} and {c} are one photo by your merges" in said, said
    assert f"{a}–{b}" in said and f"{a}–{c}" in said
    # taking one out of the unit replaces its own merge: accepted, as `split ID`'s help says
    r = runner.invoke(app, ["dedupe", "split", str(b), "-w", str(deduped), "--json"])
    assert r.exit_code == 0, r.output
    assert [x["action"] for x in json.loads(r.stdout)["replaced"]] == ["merge"]
    assert _rep(ws, a) == _rep(ws, c) != _rep(ws, b)


def test_keep_undo_after_a_merge_hands_the_cluster_to_the_rule(deduped):
    ws, ids = _ids(deduped)
    first, second = ids["p0_turned.jpg"], ids["p2.jpg"]
    for kept in (first, second):
        assert runner.invoke(app, ["dedupe", "keep", str(kept), "-w", str(deduped)]).exit_code == 0
    r = runner.invoke(app, ["dedupe", "merge", str(ids["p0.jpg"]), str(first), str(second), "-w", str(deduped)])
    assert r.exit_code == 0 and _rep(ws, first) == second
    r = runner.invoke(app, ["dedupe", "keep", str(second), "--undo", "-w", str(deduped), "--json"])
    assert json.loads(r.stdout)["now"] != first  # the rule's pick, not the earlier keep
    decisions = json.loads(runner.invoke(app, ["dedupe", "decisions", "-w", str(deduped), "--json"]).stdout)
    assert not [d for d in decisions if d["action"] == "keep"]


@pytest.mark.torch
def test_a_damaged_cached_embedding_is_computed_again(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import curate.lite0 as lite0

    class Features:  # the embedding network, small: what is checked is which pictures reach it
        def __call__(self, x):
            import torch

            return torch.ones((len(x), 4))

    monkeypatch.setattr(lite0, "imagenet_features", Features)
    root = _seven(tmp_path)
    ws = Workspace.open(root)
    options = DedupeOptions(min_side=64, workers=1, cnn=True, cnn_similarity=0.9)
    run_dedupe(ws, options)
    with ws.session() as s:
        row = s.exec(select(DedupeCode)).first()
        row.embedding = b"\x00"  # not a whole float16
        s.add(row)
        s.commit()
        damaged = row.image_id
    run_dedupe(ws, options)  # before: ValueError, on this and every later run
    with ws.session() as s:
        assert len(s.get(DedupeCode, damaged).embedding) == 8


def test_the_sheet_says_when_a_pictures_original_is_gone(deduped):
    """Before: `<img src=''>`, a blank square, and nothing on the terminal."""
    from db.models import Image

    ws, ids = _ids(deduped)
    photo_id = ids["p0.jpg"]
    with ws.session() as s:
        path = ws.store.path_for(s.get(Image, photo_id).sha256)
    path.chmod(0o600)
    path.unlink()
    r = runner.invoke(app, ["dedupe", "review", "-w", str(deduped)])
    said = " ".join(r.output.split())
    assert r.exit_code == 0 and "1 picture on it cannot be shown: its original is missing" in said, said
    sheet = (deduped / "reports" / "dedupe-review.html").read_text()
    assert "src=''" not in sheet and "its original is missing or damaged in the store" in sheet


def test_the_sheet_never_shows_another_photo_under_an_images_id(deduped):
    """An original replaced by another photo's bytes (still a picture) was shown as that image: a coffee cup in the
    rocket's cluster, beside `split` and `keep` commands for it. Its bytes are checked against its SHA-256 now."""
    from db.models import Image

    ws, ids = _ids(deduped)
    with ws.session() as s:
        victim, other = (ws.store.path_for(s.get(Image, ids[n]).sha256) for n in ("p0.jpg", "p1.jpg"))
    victim.chmod(0o600)
    victim.write_bytes(other.read_bytes())
    r = runner.invoke(app, ["dedupe", "review", "-w", str(deduped)])
    said = " ".join(r.output.split())
    assert r.exit_code == 0 and "1 picture on it cannot be shown: its original is missing" in said, said
    sheet = (deduped / "reports" / "dedupe-review.html").read_text()
    assert f"alt='image {ids['p0.jpg']}'" not in sheet and "its original is missing or damaged in the store" in sheet


def test_the_sheets_commands_name_the_workspace_it_was_made_from_outside(deduped, tmp_path, monkeypatch):
    """`curate dedupe -w study` printed `curate dedupe split 15` on the sheet: pasted in another workspace's folder
    it recorded the decision there, against whatever image 15 is in that catalogue."""
    import shlex

    from db.models import DedupeOverride

    ws, ids = _ids(deduped)
    other = Workspace.init(tmp_path / "other")
    monkeypatch.chdir(other.root)
    r = runner.invoke(app, ["dedupe", "review", "--json", "-w", str(deduped)])
    member = next(m for c in json.loads(r.stdout)["clusters"] for m in c["members"] if not m["representative"])
    words = shlex.split(member["split"])
    assert words[:3] == ["curate", "dedupe", "split"] and words[-2:] == ["-w", str(ws.root)], member["split"]
    assert runner.invoke(app, words[1:]).exit_code == 0
    for where, count in ((ws, 1), (other, 0)):
        with where.session() as s:
            assert len(s.exec(select(DedupeOverride)).all()) == count
    gone = tmp_path / "gone"  # a current folder deleted under the shell: before, "unexpected FileNotFoundError"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    r = runner.invoke(app, ["dedupe", "review", "--json", "-w", str(deduped)])
    assert r.exit_code == 0 and all(
        m["split"].endswith(f"-w {ws.root}") for c in json.loads(r.stdout)["clusters"] for m in c["members"][1:]
    ), r.output
    monkeypatch.chdir(deduped)  # made inside the workspace: the short command, as before
    r = runner.invoke(app, ["dedupe", "review", "--json"])
    assert all("-w" not in m.get("split", "") for c in json.loads(r.stdout)["clusters"] for m in c["members"])
