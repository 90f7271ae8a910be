"""`bench/dedupe.py --photos DIR`: the dedupe benchmark on a steward's own photos (real lesion photos the
corpus was never tuned on), each given the same copies as the built-in corpus."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from photo_corpus import originals

BENCH = Path(__file__).resolve().parent.parent / "bench" / "dedupe.py"


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_benchmark_builds_its_corpus_from_a_folder_of_ones_own_photos(tmp_path):
    own = tmp_path / "mine"
    (own / "clinic").mkdir(parents=True)
    for k, i in enumerate((1, 3, 12)):  # coffee, rocket, gravel: three different photos, one in a sub-folder
        originals()[i].convert("RGB").save((own / "clinic" if k == 2 else own) / f"IMG_{k}.jpg", quality=92)
    run = _bench(
        *("--photos", str(own), "--synthetic", "0", "--closeups", "4", "--per-photo", "3"),
        *("--tools", "ours", "--json", "--corpus", str(tmp_path / "corpus")),
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)  # --json: stdout is the JSON alone
    assert out["files"] == 3 * (1 + 3) + 4  # each photo and its 3 copies, and the close-ups
    ours = out["tools"]["mpox-curate"]
    assert sum(n for n, _ in ours["found"].values()) == sum(m for _, m in ours["found"].values()) == 9
    assert ours["precision"] == 1.0
    # each photo's cluster keeps one picture; the row says which (the photo, or a copy that lost its colour)
    kept = ours["kept"]
    assert kept["of"] == 3 and kept["photo"] + kept["degraded"] + kept["framed"] <= 3
    assert kept["photo"] + sum(kept["instead"].values()) == 3  # each group keeps its photo or a copy of one kind
    built = sorted(p.name for p in (tmp_path / "corpus").glob("v6-*/images/pr*.jpg"))
    assert built == ["pr0000.jpg", "pr0001.jpg", "pr0002.jpg"]


def test_a_folder_without_photos_is_a_one_line_error(tmp_path):
    run = _bench("--photos", str(tmp_path), "--tools", "ours")
    assert run.returncode == 2
    assert (
        run.stderr.strip().splitlines()[-1]
        == f"dedupe.py: error: --photos {tmp_path}: not a folder with pictures in it"
    )


@pytest.mark.parametrize("kind", [[], ["--edits"], ["--retouched"], ["--camera"]])
def test_imagededup_and_difpy_are_scored_on_the_corpus_built_from_ones_own_photos(tmp_path, kind):
    """Each foreign tool runs in a process of its own (`--tool`), which must find the same corpus folder: it
    once got every flag but `--photos`, ran on the scikit-image corpus and was scored against the own photos'."""
    sys.path.insert(0, str(BENCH.parent))
    import dedupe as bench

    (tmp_path / "mine").mkdir()
    args = bench.parser().parse_args(["--photos", str(tmp_path / "mine"), "--corpus", str(tmp_path / "c"), *kind])
    for tool in ("imagededup", "difpy"):
        again = bench.parser().parse_args(bench.tool_argv(args, tool))
        assert again.tool == tool
        assert bench.corpus_dirs(again) == bench.corpus_dirs(args)
    plain = bench.parser().parse_args(["--corpus", str(tmp_path / "c"), *kind])
    assert bench.corpus_dirs(plain)[1] != bench.corpus_dirs(args)[1]


VERSION = {"stamped": 1, "rulers": 1, "collages": 1, "crops": 1, "templates": 2, "screens": 2, "augmented": 1}


@pytest.mark.parametrize("kind", list(VERSION))
def test_a_corpus_of_its_own_reaches_the_foreign_tools_from_ones_own_photos_too(tmp_path, kind):
    """`--stamped`, `--rulers`, `--collages`, `--crops`, `--templates`, `--screens` and `--augmented` are corpora of
    their own, which imagededup's and difPy's processes must score too; with `--photos` each is built from the
    steward's own photos (a folder of its own under the corpus root, rebuilt when the photos change), the
    close-ups and synthetic photos as before."""
    sys.path.insert(0, str(BENCH.parent))
    import dedupe as bench

    args = bench.parser().parse_args([f"--{kind}", "--corpus", str(tmp_path / "c")])
    assert bench.corpus_dirs(args)[1] == tmp_path / "c" / f"{kind}-v{VERSION[kind]}"
    own = tmp_path / "mine"
    own.mkdir()
    for k, i in enumerate((1, 3, 12, 30)):
        originals()[i].convert("RGB").save(own / f"IMG_{k}.jpg", quality=92)
    mine = bench.parser().parse_args([f"--{kind}", "--photos", str(own), "--corpus", str(tmp_path / "c")])
    folder = bench.corpus_dirs(mine)[1]
    assert folder.parent == tmp_path / "c" and folder.name.startswith(f"{kind}-v{VERSION[kind]}-")
    for run in (args, mine):
        for tool in ("imagededup", "difpy"):
            assert bench.corpus_dirs(bench.parser().parse_args(bench.tool_argv(run, tool))) == bench.corpus_dirs(run)
    truth = getattr(bench, f"build_{kind}")(folder / "images", 1, bench.own_photos(mine))
    real = {v["group"] for v in truth["files"].values() if v["group"][0] == "r"}
    if kind == "collages":  # groups are photos ("c") and figures ("f") there
        real = {v["group"] for f, v in truth["files"].items() if f.startswith("pc")}
        assert len(truth["panels"]) == 2  # 4 photos fill two figures of two
    # each of the own photos, and no other (`--crops`: those of 200 px and more, which leave room to crop)
    assert len(real) == (sum(min(originals()[i].size) >= 200 for i in (1, 3, 12, 30)) if kind == "crops" else 4)
    assert all(f.name in truth["files"] or f.name in ("truth.json",) for f in (folder / "images").iterdir())


@pytest.mark.slow
def test_the_stamped_corpus_from_ones_own_photos_is_scored(tmp_path):
    own = tmp_path / "mine"
    own.mkdir()
    for k, i in enumerate((1, 3, 12, 30, 40)):  # five different photos: five previews under three stamps
        originals()[i].convert("RGB").save(own / f"IMG_{k}.jpg", quality=92)
    run = _bench("--stamped", "--photos", str(own), "--tools", "ours", "--json", "--corpus", str(tmp_path / "c"))
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    assert out["files"] == 5 + 2  # the previews, and the first and fifth posted elsewhere unstamped
    assert out["tools"]["mpox-curate"]["precision"] == 1.0


def test_the_retouched_corpus_copies_ones_own_photos_by_every_retouch(tmp_path):
    """`--retouched` (what a journal, an app or a forum does to a photo) is built from the steward's own photos
    too, in a folder of its own, each photo with a third of the kinds, every kind planted."""
    sys.path.insert(0, str(BENCH.parent))
    import dedupe as bench
    from photo_corpus import RETOUCHES

    own = tmp_path / "mine"
    own.mkdir()
    for k, i in enumerate((1, 3, 12, 30, 40, 50)):
        originals()[i].convert("RGB").save(own / f"IMG_{k}.jpg", quality=92)
    args = bench.parser().parse_args(["--retouched", "--photos", str(own), "--corpus", str(tmp_path / "c")])
    folder = bench.corpus_dirs(args)[1]
    assert folder.name.startswith("retouched-v1-")
    truth = bench.build_edits(folder / "images", 1, bench.own_photos(args), "RETOUCHES")
    kinds = [v["transform"] for v in truth["files"].values() if v["transform"]]
    assert sorted(set(kinds)) == sorted(RETOUCHES) and len(kinds) == 6 * len(RETOUCHES) // 3
    assert all((folder / "images" / f).is_file() for f in truth["files"])


def test_the_held_out_photos_are_rebuilt_offline_from_installed_packages(tmp_path, monkeypatch):
    """`bench/heldout_photos.py`: photos the thresholds were never tuned on, the same folder on any machine."""
    monkeypatch.setenv("CURATE_LABEL_STUDIO", str(tmp_path / "no-studio"))  # without Label Studio: the three others
    sys.path.insert(0, str(BENCH.parent))
    import heldout_photos
    from PIL import Image

    counts = heldout_photos.write(tmp_path / "held", 180)
    assert set(counts) == {"temple", "flower", "hopper"}
    files = sorted((tmp_path / "held").glob("*.jpg"))
    assert len(files) == sum(counts.values()) > 3  # each photo and some of its tiles
    for f in files:
        with Image.open(f) as im:
            grey = np.asarray(im.convert("L"), np.float32)
        assert "_" not in f.stem or (grey.shape == (180, 180) and grey.std() >= heldout_photos.PLAIN_STD - 1)


def test_the_dermatoscope_photos_each_show_its_field_stop(tmp_path):
    """`bench/scope_photos.py`: different lesions through one dermatoscope, its round field found on each."""
    sys.path.insert(0, str(BENCH.parent))
    import scope_photos
    from PIL import Image

    from curate.dedupe.decode import field_stop

    assert scope_photos.write(tmp_path / "scope", 8) == 8
    files = sorted((tmp_path / "scope").glob("*.jpg"))
    assert len(files) == 8
    shapes = set()
    for f in files:
        with Image.open(f) as im:
            grey = np.asarray(im.convert("L").resize((160, im.height * 160 // im.width), Image.BOX))
        shapes.add(grey.shape)
        assert field_stop(grey) is not None, f.name
    assert shapes == {(160, 160)}


def test_a_figure_and_its_photos_are_scored_merged_or_to_review():
    """`--collages`' own rows: of the (figure, photo in it) pairs, how many a tool merged (false pairs) and
    how many ours listed to review; a tool with no review list has none."""
    sys.path.insert(0, str(BENCH.parent))
    import dedupe as bench

    files = {
        f: {"group": g, "transform": ""} for f, g in [("pf00.jpg", "f0"), ("pc000.jpg", "c0"), ("pc001.jpg", "c1")]
    }
    truth = {"files": files, "panels": {"pf00.jpg": ["pc000.jpg", "pc001.jpg"]}}
    ours = {"pairs": [("pf00.jpg", "pc000.jpg")], "review": [("pc001.jpg", "pf00.jpg")]}
    assert bench.figure_pairs(truth, ours) == {"figure_pairs": 2, "merged": 1, "to_review": 1}
    assert bench.figure_pairs(truth, {"pairs": []}) == {"figure_pairs": 2, "merged": 0, "to_review": None}
    assert bench.score(truth, ours["pairs"])["false_pairs"] == 1  # a merged figure is a false pair too


def test_the_skin_photos_hold_close_ups_with_too_few_keypoints_at_the_first_look(tmp_path):
    """`bench/skin_photos.py`: different photos at web sizes, the close-ups of one lesion on plain skin
    nearly textureless where verification first looks (under `MIN_KEYPOINTS` at 160 px), the others not."""
    sys.path.insert(0, str(BENCH.parent))
    import skin_photos
    from PIL import Image

    from curate.dedupe import verify

    assert skin_photos.write(tmp_path / "skin", 12) == 12
    files = sorted((tmp_path / "skin").glob("*.jpg"))
    assert [f.name[0] for f in files] == ["c"] * 5 + ["s"] * 7
    keypoints, width = {}, {}
    for f in files:
        with Image.open(f) as im:
            keypoints[f.name] = len(verify.features(np.asarray(im.convert("L")), verify.COARSE).points)
            width[f.name] = im.width
    big = [n for n in keypoints if n[0] == "c" and width[n] >= 640]
    assert big and all(keypoints[n] < verify.MIN_KEYPOINTS for n in big), keypoints
    assert all(keypoints[f.name] >= verify.MIN_KEYPOINTS for f in files if f.name[0] == "s"), keypoints


@pytest.mark.slow
def test_the_next_run_benchmark_reads_features_back_and_stores_the_same_pairs(tmp_path):
    """`bench/dedupe_next_run.py` on a small corpus of one's own photos: the workspace keeping features takes fewer
    the next time, none when every pair is verified again, and stores what the one without the cache stores."""
    own = tmp_path / "mine"
    own.mkdir()
    for k, i in enumerate((1, 3, 12, 20)):
        originals()[i].convert("RGB").save(own / f"IMG_{k}.jpg", quality=92)
    run = subprocess.run(
        [sys.executable, str(BENCH.parent / "dedupe_next_run.py"), "--photos", str(own), "--new", "4", "--json"]
        + ["--synthetic", "0", "--closeups", "4", "--per-photo", "3", "--corpus", str(tmp_path / "corpus")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    kept, plain = out["cache"], out["no cache"]
    assert out["same_pairs"] and out["pairs"] > 0 and (out["files"], out["new"]) == (4 * 4 + 4, 4)
    assert kept["next"]["read"] > 0 and kept["next"]["taken"] < plain["next"]["taken"]
    assert kept["again"]["taken"] == 0 and kept["again"]["read"] > 0 and plain["again"]["read"] == 0
