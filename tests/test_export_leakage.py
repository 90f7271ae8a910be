"""The leakage audit finds issue 9's three leak kinds across splits and folds, and nothing in a clean version."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from dedupe_corpus import photo, sibling
from leakage_corpus import LEAKS, exported
from PIL import Image
from train_fixtures import write_sums
from typer.testing import CliRunner

from curate.cli import app
from curate.dataset import MANIFEST_COLUMNS, DatasetError
from curate.export import leakage_match
from curate.export.leakage import audit_version, content_box
from curate.workspace import Workspace

runner = CliRunner()
# (file, split, fold, base photo, leak kind or None); three leaks, each crossing a different boundary,
# next to look-alike photos (siblings: same skin and light, other spots) in every part.
LAYOUT = [
    ("train/mpox/img000001.jpg", "train", 0, 1, None),
    ("test/mpox/img000002.jpg", "test", None, 1, "watermark_crop"),
    ("train/mpox/img000003.jpg", "train", 1, 2, None),
    ("external/mpox/img000004.jpg", "external", None, 2, "mirror_crop"),
    ("train/non_mpox/img000005.jpg", "train", 2, 3, None),
    ("train/non_mpox/img000006.jpg", "train", 3, 3, "white_frame"),
    ("train/mpox/img000007.jpg", "train", 4, -1, None),
    ("train/non_mpox/img000008.jpg", "train", 0, -2, None),
    ("test/non_mpox/img000009.jpg", "test", None, -3, None),
    ("external/non_mpox/img000010.jpg", "external", None, 4, None),
    ("train/non_mpox/img000011.jpg", "train", 1, 5, None),
]
EXPECTED = {
    ("train/mpox/img000001.jpg", "test/mpox/img000002.jpg"),
    ("train/mpox/img000003.jpg", "external/mpox/img000004.jpg"),
    ("train/non_mpox/img000005.jpg", "train/non_mpox/img000006.jpg"),
}


def _image(base: int) -> Image.Image:
    """Photo `base`; a negative number is a sibling of photo -base (a different photo that looks alike)."""
    return photo(base, (320, 256)) if base > 0 else sibling(-base, 0, (320, 256))


def write_version(root: Path, version: str = "1.0.0", leaks: bool = True, side: int | None = None) -> Path:
    """A version in the export contract's layout (real JPEGs, manifest, SHA256SUMS); `side`: the export's
    `--size` (each picture stretched to a square of it)."""
    out = root / "exports" / "mpox" / version
    rng = np.random.default_rng(7)
    rows = []
    for n, (rel, split, fold, base, kind) in enumerate(LAYOUT, 1):
        img = _image(base)
        if kind and leaks:
            img = LEAKS[kind](img, rng)
        elif kind:
            img = _image(100 + n)
        data = exported(img if side is None else img.resize((side, side)))
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
        label = rel.split("/")[1]
        rows.append(
            {
                **dict.fromkeys(MANIFEST_COLUMNS, ""),
                "file": rel,
                "sha256": hashlib.sha256(data).hexdigest(),
                "image_id": str(n),
                "label": label,
                "diagnosis": label,
                "split": split,
                "fold": "" if fold is None else str(fold),
                "source": "synthetic",
                "cluster": f"c{n}",
            }
        )
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    (out / "dataset.json").write_text(
        json.dumps({"name": "mpox", "version": version, "task": "binary", "classes": ["mpox", "non_mpox"], "folds": 5})
    )
    write_sums(out)
    return out


@pytest.fixture(scope="module")
def leaky(tmp_path_factory):
    ws = Workspace.init(tmp_path_factory.mktemp("leak") / "ws")
    write_version(ws.root, "1.0.0", leaks=True)
    write_version(ws.root, "1.0.1", leaks=False)
    return ws


def test_content_box_cuts_uniform_borders_of_any_colour():
    inner = np.asarray(photo(3, (120, 90)))
    for colour in [(255, 255, 255), (0, 0, 0), (128, 128, 128), (200, 230, 255)]:
        canvas = np.zeros((90 + 7 + 21, 120 + 30 + 3, 3), np.uint8)
        canvas[:] = colour
        canvas[7:97, 30:150] = inner
        x0, y0, x1, y1 = content_box(canvas)
        assert abs(x0 - 30) <= 1 and abs(y0 - 7) <= 1 and abs(x1 - 150) <= 1 and abs(y1 - 97) <= 1, colour
    white = np.full((50, 60, 3), 255, np.uint8)
    assert content_box(white) == (0, 0, 60, 50)  # uniform through and through: nothing cut


def test_content_box_keeps_plain_skin_and_cuts_a_frame_around_it():
    """Plain skin beside a lesion is near-uniform, but not flat: it is the photo, not a border. A frame around it,
    through JPEG (ringing where it meets the skin), is still cut."""
    from photo_corpus import closeup

    skin = closeup(5, (320, 256), texture=0.02)
    decoded = np.asarray(Image.open(io.BytesIO(exported(skin))))
    assert content_box(decoded) == (0, 0, 320, 320)
    for colour in [(255, 255, 255), (40, 40, 40), (200, 170, 150)]:  # the last near the skin's own colour
        framed = Image.new("RGB", (320 + 25 + 40, 256 + 30 + 12), colour)
        framed.paste(skin, (25, 30))
        buf = io.BytesIO()
        framed.save(buf, "JPEG", quality=85)
        box = content_box(np.asarray(Image.open(buf)))
        assert np.abs(np.subtract(box, (25, 30, 345, 286))).max() <= 3, (colour, box)


def test_audit_lists_each_leak_kind_and_nothing_else(leaky):
    _, audit = audit_version("mpox@1.0.0", leaky.root)
    found = {(p.a.file, p.b.file) for p in audit.pairs}
    assert found == EXPECTED
    by_b = {p.b.file: p for p in audit.pairs}
    assert by_b["test/mpox/img000002.jpg"].a.part == "train/fold 0"
    assert by_b["external/mpox/img000004.jpg"].mirrored
    assert (
        by_b["train/non_mpox/img000006.jpg"].a.part == "train/fold 2"
        and by_b["train/non_mpox/img000006.jpg"].b.part == "train/fold 3"
    )
    assert audit.status == "suspects" and audit.suspects == 3 and audit.images == len(LAYOUT)
    # every evaluation image against every train image, plus train pairs of different folds
    folds = [f for _, s, f, _, _ in LAYOUT if s == "train"]
    cross_fold = sum(1 for i in range(len(folds)) for j in range(i + 1, len(folds)) if folds[i] != folds[j])
    assert audit.compared == (len(LAYOUT) - len(folds)) * len(folds) + cross_fold


def test_audit_on_demand_reports_each_stage_to_the_end(leaky):
    heard: list[tuple[str, int, int | None]] = []
    _, audit = audit_version("mpox@1.0.0", leaky.root, on_progress=lambda *stage: heard.append(stage))
    assert list(dict.fromkeys(stage for stage, _, _ in heard)) == ["read images", "features", "compare"]
    n = audit.images
    assert {stage: (done, total) for stage, done, total in heard} == {
        "read images": (n, n),
        "features": (n, n),
        "compare": (2 * n, 2 * n),
    }
    for stage in ("read images", "features", "compare"):
        done = [d for st, d, _ in heard if st == stage]
        assert done == sorted(done), f"{stage} went backwards"


def test_clean_version_has_no_suspects(leaky):
    _, audit = audit_version("mpox@1.0.1", leaky.root)
    assert audit.status == "clean" and audit.pairs == [] and audit.suspects == 0


def test_cli_table_report_json_and_strict(leaky):
    r = runner.invoke(app, ["audit", "leakage", "mpox@1.0.0", "--workspace", str(leaky.root)])
    assert r.exit_code == 0, r.output
    assert "img000006" in r.stdout and "3 suspect pair(s)" in " ".join(r.stdout.split())
    page = leaky.reports / "leakage-mpox-1.0.0.html"
    assert stat.S_IMODE(os.stat(page).st_mode) == 0o600
    text = page.read_text()
    assert text.count("<img ") == 6 and "data:image/jpeg;base64," in text and "train/fold 2" in text

    r = runner.invoke(app, ["audit", "leakage", "mpox@1.0.0", "--strict", "--json", "--workspace", str(leaky.root)])
    assert r.exit_code == 2
    data = json.loads(r.stdout)
    assert data["version"] == "mpox@1.0.0" and data["suspects"] == 3 and data["report"].endswith(".html")
    pair = data["pairs"][0]
    assert set(pair) == {"a", "b", "inliers", "cover", "mirrored"} and set(pair["a"]) == {
        "file",
        "split",
        "fold",
        "part",
    }

    r = runner.invoke(app, ["audit", "leakage", "mpox@1.0.1", "--strict", "--workspace", str(leaky.root)])
    assert r.exit_code == 0 and "no suspect pairs" in r.stdout
    # a stricter threshold than any pair's evidence: nothing to report
    r = runner.invoke(
        app, ["audit", "leakage", "mpox@1.0.0", "--strict", "--threshold", "100000", "--workspace", str(leaky.root)]
    )
    assert r.exit_code == 0, r.output


def test_two_processes_find_what_one_finds(leaky, monkeypatch):
    monkeypatch.setattr(leakage_match, "QUERY_BLOCK", 1)  # a block of queries an image: both processes compare
    _, alone = audit_version("mpox@1.0.0", leaky.root, workers=1)
    _, shared = audit_version("mpox@1.0.0", leaky.root, workers=2)
    assert {(p.a.file, p.b.file) for p in shared.pairs} == EXPECTED
    assert shared.as_dict(timing=False) == alone.as_dict(timing=False)  # the same pairs, inliers, order


def test_missing_version_and_corrupt_image_are_one_line_errors(leaky, tmp_path):
    r = runner.invoke(app, ["audit", "leakage", "mpox@9.9.9", "--workspace", str(leaky.root)])
    assert r.exit_code == 1 and "mpox@9.9.9" in r.stderr and len(r.stderr.strip().splitlines()) == 1

    broken = write_version(tmp_path, "2.0.0", leaks=False)
    victim = broken / "test/mpox/img000002.jpg"
    was = hashlib.sha256(victim.read_bytes()).hexdigest()
    victim.write_bytes(b"\xff\xd8 not really a jpeg")
    manifest = broken / "manifest.csv"  # its row's digest and the sums updated: an image that cannot be decoded,
    manifest.write_text(manifest.read_text().replace(was, hashlib.sha256(victim.read_bytes()).hexdigest()))
    write_sums(broken)  # not a damaged version
    with pytest.raises(DatasetError, match="img000002.jpg"):
        audit_version(str(broken))
    ws = Workspace.init(tmp_path / "ws")
    r = runner.invoke(app, ["audit", "leakage", str(broken), "--workspace", str(ws.root)])
    assert r.exit_code == 1 and "cannot read image test/mpox/img000002.jpg" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_report_escapes_every_text(tmp_path):
    from curate.export.leakage import Entry, LeakageAudit, LeakPair
    from curate.export.leakage_report import render

    odd = Entry("train/<b>x</b>/img&1.jpg", "train", 0)
    audit = LeakageAudit(
        "suspects",
        "m<e>thod",
        15,
        images=2,
        compared=1,
        suspects=1,
        pairs=[LeakPair(odd, Entry("test/a/img2.jpg", "test", None), 20, 0.5, False)],
    )
    page = render(tmp_path, "mpox@<1>", audit)
    assert "<b>x" not in page and "&lt;b&gt;x&lt;/b&gt;/img&amp;1.jpg" in page and "m&lt;e&gt;thod" in page


@pytest.mark.slow
def test_export_runs_the_audit_before_sealing(tmp_path):
    """Without dedupe clusters, the re-encoded copy of a reserved external photo (kag0 → web_kdup) lands in train or
    test: the audit at export time lists it in the card, audit.json (checksummed) and on the terminal. The
    fixture's other copy (web0 → P01_dup) may cross too; nothing else may be listed."""
    from test_export_fixtures import build_catalogue

    cat = build_catalogue(tmp_path)
    r = runner.invoke(
        app,
        [
            "export",
            "--name",
            "mpox",
            "--version",
            "1.0.0",
            "--size",
            "320",
            "--external",
            "kaggle",
            "--workspace",
            str(cat.ws.root),
        ],
    )
    assert r.exit_code == 0, r.output
    version = cat.ws.exports / "mpox" / "1.0.0"
    from curate.dataset import DatasetVersion

    DatasetVersion.open(version).verify()  # audit.json is covered by SHA256SUMS
    audit = json.loads((version / "audit.json").read_text())
    name = lambda stem: f"img{cat.ids_by_name[stem]:06d}.jpg"  # noqa: E731
    found = {frozenset(p[k]["file"].rsplit("/", 1)[-1] for k in "ab"): p for p in audit["pairs"]}
    ext, copy = name("kag0"), name("web_kdup")
    assert frozenset({ext, copy}) in found and set(found) <= {
        frozenset({ext, copy}),
        frozenset({name("web0"), name("P01_dup")}),
    }
    assert found[frozenset({ext, copy})]["b"]["split"] == "external"
    assert "seconds" not in audit  # nothing run-dependent inside a version
    assert f"leakage audit: {len(found)} suspect pair(s)" in " ".join(r.stdout.split())
    card = (version / "README.md").read_text()
    assert "## Leakage audit" in card and copy in card
    # the same catalogue state exports the same bytes, audit included
    again = runner.invoke(
        app,
        [
            "export",
            "--name",
            "mpox",
            "--version",
            "1.0.0",
            "--size",
            "320",
            "--external",
            "kaggle",
            "--workspace",
            str(cat.ws.root),
            "--json",
        ],
    )
    assert json.loads(again.stdout)["leakage"] == audit
    # a rater flags the external photo "identifiable features" after the export: the page, audited again, still
    # lists the pair but shows neither thumbnail (before: its face was embedded, although status warned of it)
    from sqlmodel import select

    from db.models.label import Consensus

    with cat.ws.session() as s:
        row = s.exec(select(Consensus).where(Consensus.image_id == cat.ids_by_name["kag0"])).one()
        row.status, row.diagnosis, row.exclusion = "excluded", None, "identifiable_features"
        s.add(row)
    page = cat.ws.root / "flagged.html"
    r = runner.invoke(app, ["audit", "leakage", "mpox@1.0.0", "--html", str(page), "--workspace", str(cat.ws.root)])
    assert r.exit_code == 0, r.output
    shown = page.read_text()
    assert ext in shown and copy in shown and "not shown: flagged" in shown
    (pair,) = [d for d in shown.split("<div class='pair'")[1:] if ext in d]
    assert "<img" not in pair and pair.count("not shown: flagged") == 2  # its copy, one photo with it, shows the face


def test_featureless_images_are_compared_without_error():
    from curate.export import leakage_match

    flat = [np.full((64, 80), v, np.uint8) for v in (0, 128, 255)] + [np.full((9, 9), 7, np.uint8)]
    feats = leakage_match.features(flat)
    assert leakage_match.match(feats, np.array([0, 1, -1, 2]), 15) == []
    assert leakage_match.match([], np.zeros(0, np.int64), 15) == []


def test_a_copy_of_a_version_audited_by_path_keeps_the_versions_own_page(leaky, tmp_path):
    """A copy (edited or not) whose dataset.json names mpox@1.0.0 got the same page name and replaced the page
    of the version this workspace exported; its page now carries its folder's digest."""
    import shutil

    runner.invoke(app, ["audit", "leakage", "mpox@1.0.0", "--workspace", str(leaky.root)])
    own = leaky.reports / "leakage-mpox-1.0.0.html"
    before = own.read_bytes()
    copy = tmp_path / "copy"
    shutil.copytree(leaky.exports / "mpox" / "1.0.0", copy)
    r = runner.invoke(app, ["audit", "leakage", str(copy), "--json", "--workspace", str(leaky.root)])
    assert r.exit_code == 0, r.output
    page = Path(json.loads(r.stdout)["report"])
    assert page != own and page.name.startswith("leakage-mpox-1.0.0-") and page.is_file()
    assert own.read_bytes() == before


def test_another_threshold_writes_its_own_page(leaky):
    """A steward looking further (`--threshold 6`) replaced the calibrated audit's page, whose pairs the card
    describes, with a page of other pairs; now it has its own page, and `curate status` names both for a
    flagged version (`curate.export.flagged`)."""
    from curate.export.leakage_report import version_pages

    runner.invoke(app, ["audit", "leakage", "mpox@1.0.0", "--workspace", str(leaky.root)])
    own = leaky.reports / "leakage-mpox-1.0.0.html"
    before = own.read_bytes()
    r = runner.invoke(
        app, ["audit", "leakage", "mpox@1.0.0", "--threshold", "100000", "--json", "--workspace", str(leaky.root)]
    )
    assert r.exit_code == 0, r.output
    page = Path(json.loads(r.stdout)["report"])
    assert page == leaky.reports / "leakage-mpox-1.0.0-threshold-100000.html" and page.is_file()
    assert own.read_bytes() == before and "<img " not in page.read_text()
    assert version_pages(leaky.reports, "mpox@1.0.0") == [own, page]
    assert version_pages(leaky.reports, "mpox@1.0") == []  # another version's name is no prefix of it
    (leaky.reports / "leakage-mpox-1.0.0-threshold-².html").write_text("")  # a digit int() refuses: not a page
    assert version_pages(leaky.reports, "mpox@1.0.0") == [own, page]


@pytest.mark.parametrize("per_image", [86, 1])
def test_a_small_version_s_index_is_built_without_a_faiss_warning(capfd, per_image):
    """Before: the index had √n lists, more than its sample could train (faiss wants 39 points a list), and
    every small export printed faiss's "WARNING clustering 688 points to 26 centroids" on stderr; with fewer
    than 39 descriptors in all (a few 32 px images), "clustering 2 points to 1 centroids" still."""
    rng = np.random.default_rng(0)
    feats = [
        leakage_match.Features(
            rng.random((per_image, 2), np.float32),
            rng.integers(0, 256, (per_image, 32), np.uint8),
            np.zeros((0, 2), np.float32),
            np.zeros((0, 32), np.uint8),
            100.0,
        )
        for _ in range(8)
    ]
    index, owner, _ = leakage_match._index(feats)
    assert index.ntotal == 8 * per_image and len(owner) == 8 * per_image
    assert "WARNING" not in capfd.readouterr().err
    dist, nn = index.search(feats[0].desc, 2)
    assert (nn[:, 0] == np.arange(per_image)).all()  # each descriptor finds itself first, IVF or exact


def test_a_small_export_is_compared_and_identical_files_always_leak(tmp_path):
    """Before: at `curate export --size 64` ORB found no keypoints, and a byte-identical copy of a train image
    planted in test left the audit "clean" (`--strict` exit 0). Small pictures are enlarged before ORB, and the
    same bytes in two parts are a suspect pair whatever the pictures hold (a flat one has no keypoints at all)."""
    ws = Workspace.init(tmp_path / "ws")
    out = write_version(ws.root, "1.0.0", leaks=True, side=64)
    flat = exported(Image.new("RGB", (64, 64), (200, 160, 150)))
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    planted = [
        ("test/mpox/img000099.jpg", (out / "train/mpox/img000001.jpg").read_bytes(), "test", ""),
        ("train/non_mpox/img000097.jpg", flat, "train", "2"),
        ("external/non_mpox/img000098.jpg", flat, "external", ""),
    ]
    for n, (rel, data, split, fold) in enumerate(planted, 97):
        (out / rel).write_bytes(data)
        label = rel.split("/")[1]
        rows.append(
            {**rows[0], "file": rel, "sha256": hashlib.sha256(data).hexdigest(), "image_id": str(n), "label": label}
            | {"diagnosis": label, "split": split, "fold": fold, "cluster": f"c{n}"}
        )
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    write_sums(out)
    _, audit = audit_version("mpox@1.0.0", ws.root, workers=1)
    found = {(p.a.file, p.b.file): p for p in audit.pairs}
    identical = {k for k, p in found.items() if p.identical}
    assert identical == {
        ("train/mpox/img000001.jpg", "test/mpox/img000099.jpg"),
        ("train/non_mpox/img000097.jpg", "external/non_mpox/img000098.jpg"),
    }, found
    assert set(found) >= EXPECTED, found  # the three re-posted copies, found at 64 px too
    assert set(found) <= EXPECTED | identical  # and no look-alike
    r = runner.invoke(app, ["audit", "leakage", "mpox@1.0.0", "--strict", "-w", str(ws.root)])
    assert r.exit_code != 0 and "identical files" in r.output
