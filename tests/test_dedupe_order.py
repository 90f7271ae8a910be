"""The same pictures give the same clusters and the same pairs to review whatever order they were ingested
in: a steward who re-ingests a folder sorted otherwise, or receives a colleague's batches in another order,
must not get another dataset; nor may a catalogue too large for verification to keep every picture's local
features. Ratio matching runs from one picture to the other, and an index's training sample and ties follow
the order it is given; both now follow the pictures' digests (`Verifier.swapped`, `load_codes`). The same 20
pictures ingested the other way round differed in 7 stored pairs before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dedupe_corpus import save
from photo_corpus import LEAKS, closeup, originals, stamp, with_ruler
from sqlmodel import select

from curate.dedupe import pairs as dedupe_pairs
from curate.dedupe import verify
from curate.dedupe.pairs import Verifier
from curate.dedupe.run import DedupeOptions, run_dedupe
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace
from db.models import DedupeMember, DedupePair, Provenance


def _pictures() -> dict:
    """A stock site's previews under one logo, lesions beside one ruler, and photos with two re-posted copies."""
    photos = originals()
    files = {f"stock{j}.jpg": stamp(photos[k], "logo") for j, k in enumerate((5, 3, 45, 36, 114, 29, 64, 90))}
    files |= {f"ruled{k}.jpg": with_ruler(closeup(k), k) for k in range(6)}
    for k in (1, 12, 30, 40):
        files[f"photo{k}.jpg"] = photos[k]
        files[f"photo{k}_wm.jpg"] = LEAKS["watermark_crop"](photos[k], np.random.default_rng(k))
        files[f"photo{k}_mc.jpg"] = LEAKS["mirror_crop"](photos[k], np.random.default_rng(k + 1))
    return files


def _deduped(root: Path, files: dict, names: list[str]) -> tuple[dict, set]:
    """Ingest `names` in that order (their files numbered so), dedupe; (kind and reason of each stored pair
    by its two names, the clusters as sets of names)."""
    for n, name in enumerate(names):
        save(files[name], root / "in" / f"{n:03d}_{name}", quality=90)
    ws = Workspace.init(root / "ws")
    ingest_folder(ws, root / "in", IngestOptions(source="atlas", kind="public", workers=1))
    run_dedupe(ws, DedupeOptions(min_side=1, workers=1))
    with ws.session() as s:
        name = {
            i: Path(loc).name.split("_", 1)[1] for i, loc in s.exec(select(Provenance.image_id, Provenance.locator))
        }
        pairs = {
            tuple(sorted((name[p.image_a], name[p.image_b]))): (p.kind, p.inliers) for p in s.exec(select(DedupePair))
        }
        groups: dict[str, set[str]] = {}
        for m in s.exec(select(DedupeMember)):
            groups.setdefault(m.cluster_key, set()).add(name[m.image_id])
    return pairs, {frozenset(g) for g in groups.values()}


@pytest.mark.slow
def test_the_same_pictures_in_the_other_order_give_the_same_pairs_and_clusters(tmp_path):
    files = _pictures()
    names = sorted(files)
    pairs, clusters = _deduped(tmp_path / "forward", files, names)
    again, clusters_again = _deduped(tmp_path / "backward", files, names[::-1])
    assert {k for k, v in pairs.items() if v[0] == "review"}  # the stamp and the ruler: pairs to review
    merged = [c for c in clusters if len(c) > 1]
    assert len(merged) == 4 and all(len(c) == 3 and min(c).startswith("photo") for c in merged)  # copies found
    assert again == pairs
    assert clusters_again == clusters


@pytest.mark.slow
def test_features_let_go_and_taken_again_give_the_same_pairs_and_clusters(tmp_path, monkeypatch):
    """A catalogue too large for verification to keep every picture's local features (`pairs.FEATURES_BUDGET`:
    a quarter of what 100,000 pictures need, at the default) lets the least recently used go and takes them again:
    the same pairs and clusters as when all were kept, never more features held than the budget."""
    files = _pictures()
    names = sorted(files)
    pairs, clusters = _deduped(tmp_path / "kept", files, names)
    made: list[Verifier] = []

    class Watched(Verifier):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(dedupe_pairs, "Verifier", Watched)
    monkeypatch.setattr(dedupe_pairs, "FEATURES_BUDGET", 4 * dedupe_pairs.PICTURE_BYTES)  # 4 pictures' room
    again, clusters_again = _deduped(tmp_path / "let_go", files, names)
    assert again == pairs
    assert clusters_again == clusters
    [verifier] = made
    assert verifier.kept.used <= verifier.kept.budget
    assert verifier.taken[verify.COARSE] > len(files)  # features were let go and taken again
