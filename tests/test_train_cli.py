"""`train run / compare / predict` end to end on a tiny export, and the bad-input cases."""

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from train_fixtures import write_export, write_sums
from typer.testing import CliRunner

from train.cli import app
from train.config import TrainConfig
from train.errors import TrainError
from train.recipe import run

pytestmark = pytest.mark.torch
runner = CliRunner()
FAST = ["--weights", "none", "--epochs", "2"]
ROOT = str(Path(__file__).resolve().parents[1])


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("ws")
    write_export(root, roi_every=2)
    return root


@pytest.fixture(scope="module")
def r18(ws):
    out = ws / "runs" / "r18"
    res = invoke("run", "--dataset", "mpox@1.0.0", "-w", ws, "--arch", "resnet18", *FAST, "--out", out, "--json")
    assert res.exit_code == 0, res.output
    return out


def test_run_writes_the_run_folder(r18):
    for name in [
        "config.json",
        "run.json",
        "predictions.csv",
        "metrics.json",
        "report.md",
        "roc_test.png",
        "roc_test_roi.png",
        "roc_external.png",
        "confusion.png",
        "gradcam_gallery.png",
        "oof_predictions.csv",
        "reliability.png",
        "pointing.json",
        "pointing.png",
    ]:
        assert (r18 / name).is_file(), name
    info = json.loads((r18 / "run.json").read_text())
    assert info["status"] == "complete" and len(info["dataset"]["checksum"]) == 64
    assert info["versions"]["torch"] and info["weights_id"] == "none:seed0" and info["mode"] == "cached"
    assert info["n_augmented"] == 6  # 10 mpox vs 16 non_mpox in train
    cfg = json.loads((r18 / "config.json").read_text())
    assert cfg["epochs"] == 2 and cfg["batch_size"] == 72 and cfg["lr"] == 3e-4 and cfg["dropout"] == 0.2
    assert cfg["command"][:2] == ["train", "run"]
    for k in range(5):
        ckpt = torch.load(r18 / f"fold{k}" / "checkpoint.pt", weights_only=True)
        assert set(ckpt["model"]) == {"fc.weight", "fc.bias"}  # the head only
        assert ckpt["dataset_checksum"] == info["dataset"]["checksum"] and ckpt["epoch"] == 2
    m = json.loads((r18 / "metrics.json").read_text())
    assert set(m["sets"]) == {"val", "test", "test_roi", "external"}
    assert set(m["sets"]["test"]) == {"auc", "accuracy", "precision", "recall", "f1"}
    with open(r18 / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["set"] for r in rows} == {"val", "test", "test_roi", "external"}
    assert len([r for r in rows if r["set"] == "test"]) == 5 * 8
    report = (r18 / "report.md").read_text()
    assert "| ResNet-18 |" in report and "region of interest" in report and "gradcam_gallery.png" in report
    assert list((r18 / "gradcam").glob("*-roi.png")) and list((r18 / "gradcam").glob("*-original.png"))
    # the gallery names the wrong prediction and covers errors of both kinds when the fold model made them
    assert "| kind | image | true | wrong | uncropped: pred (P(mpox)) | ROI: pred (P(mpox)) |" in report
    gallery = [line.split(" | ") for line in report.splitlines() if line.startswith(("| false ", "| true "))]
    assert gallery and all(g[3] in ("uncropped", "ROI", "uncropped and ROI", "neither") for g in gallery)
    test_rows = [r for r in rows if r["set"] == "test" and r["fold"] == str(m["best_fold"])]
    for kind, true in (("false negative", "mpox"), ("false positive", "non_mpox")):
        made = any(r["label"] == true and r["pred"] != true for r in test_rows)
        assert made <= any(g[0] == f"| {kind}" for g in gallery), kind


@pytest.mark.slow
def test_same_seed_same_metrics(ws, r18):
    out = ws / "runs" / "r18-again"
    res = invoke("run", "--dataset", ws / "exports/mpox/1.0.0", "--arch", "resnet18", *FAST, "--out", out, "--json")
    assert res.exit_code == 0, res.output
    a, b = (json.loads((p / "metrics.json").read_text()) for p in (r18, out))
    assert a["per_fold"] == b["per_fold"]
    assert json.loads((out / "run.json").read_text())["cache"]["computed"] == 0  # all from the cache


def test_compare_refuses_a_run_that_did_not_finish(r18, tmp_path):
    """A run killed after writing a fold's metrics is not compared as if it were whole (export-model refuses too)."""
    killed = tmp_path / "killed"
    shutil.copytree(r18, killed)
    info = json.loads((killed / "run.json").read_text())
    (killed / "run.json").write_text(json.dumps({**info, "status": "running"}))
    res = invoke("compare", r18, killed)
    assert res.exit_code == 1 and "did not finish; re-run `train run --resume` first" in res.output, res.output
    assert "Model evaluation" not in res.output


def test_compare_refuses_one_run_named_twice(r18):
    """Before: `train compare r r/` made a two-row table of one run, as if two backbones had agreed."""
    res = invoke("compare", r18, f"{r18}/")
    assert res.exit_code == 1 and "is named twice; name each run once" in res.output, res.output
    res = invoke("compare", r18, r18.parent / ".." / r18.parent.name / r18.name)
    assert res.exit_code == 1 and "are the same run; name each run once" in res.output, res.output
    assert "Model evaluation" not in res.output


@pytest.mark.slow
def test_compare_two_backbones(ws, r18, tmp_path):
    other = ws / "runs" / "shuffle"
    res = invoke("run", "--dataset", "mpox@1.0.0", "-w", ws, "--arch", "shufflenet_v2", *FAST, "--out", other, "--json")
    assert res.exit_code == 0, res.output
    res = invoke("compare", r18, other, "--out", tmp_path / "cmp")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| ResNet-18 |" in md and "| ShuffleNet-V2 |" in md and "external validation" in md
    assert (tmp_path / "cmp" / "roc_compare.png").stat().st_size > 1000
    data = json.loads(invoke("compare", r18, other, "--json").output)
    assert [r["arch"] for r in data["runs"]] == ["resnet18", "shufflenet_v2"] and data["same_dataset"]


@pytest.mark.slow
def test_predict_triage(ws, r18, tmp_path):
    imgs = sorted((ws / "exports/mpox/1.0.0/test").rglob("*.jpg"))[:2]
    res = invoke("predict", *imgs, "--run", r18, "--out", tmp_path, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    for r in out:
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-5
        assert (
            r["calibrated"] and r["threshold"] == json.loads((r18 / "metrics.json").read_text())["triage"]["threshold"]
        )
        refer = r["p_calibrated"] >= r["threshold"]  # the operating point, in train serve's words
        assert r["decision"] == ("refer" if refer else "routine") and r["predicted_class"] == (
            "mpox" if refer else "non_mpox"
        )
        assert r["gradcam"].endswith(".png") and (tmp_path / r["gradcam"].split("/")[-1]).is_file()
    first = sorted(p.stat().st_mtime_ns for p in tmp_path.glob("*-gradcam.png"))
    again = invoke("predict", *imgs, "--run", r18, "--out", tmp_path, "--threshold", "0", "--json")
    assert again.exit_code == 1 and "already holds Grad-CAM overlays from an earlier predict" in again.output
    assert sorted(p.stat().st_mtime_ns for p in tmp_path.glob("*-gradcam.png")) == first  # the first batch's kept
    zero = invoke("predict", *imgs, "--run", r18, "--out", tmp_path / "zero", "--threshold", "0", "--json")
    assert [(r["decision"], r["predicted_class"]) for r in json.loads(zero.output)] == [("refer", "mpox")] * 2
    batches = sorted((r18 / "predict").iterdir()) if (r18 / "predict").is_dir() else []
    res = invoke("predict", ws / "exports/mpox/1.0.0/README.md", "--run", r18)
    assert res.exit_code == 1 and "cannot read image " in res.output and "README.md" in res.output
    assert (sorted((r18 / "predict").iterdir()) if (r18 / "predict").is_dir() else []) == batches  # no empty folder
    assert "Triage" in invoke("predict", imgs[0], "--run", r18).output
    # a threshold just over the score: the table prints both to as many places as tell them apart (before: "0.242 |
    # 0.242 (cal.) | routine")
    near = out[0]["p_positive"] + 1e-5  # a --threshold is on P(positive); the same to 3 places but once in a hundred
    table = runner.invoke(
        app,
        ["predict", str(imgs[0]), "--run", str(r18), "--no-gradcam", "--threshold", str(near)],
        env={"COLUMNS": "250"},
    ).output
    row = next(line for line in table.splitlines() if "routine" in line or "refer" in line)
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[2] != cells[4] and float(cells[2]) < float(cells[4]) and "routine" in row, table
    # without --out, each batch gets a numbered folder of its own under the run: none overwrites another's
    a, b = (json.loads(invoke("predict", imgs[0], "--run", r18, "--json").output)[0]["gradcam"] for _ in range(2))
    assert Path(a).name == Path(b).name == "000-gradcam.png" and Path(a).parent != Path(b).parent
    assert Path(a).parent.parent == Path(b).parent.parent == r18 / "predict" and Path(a).is_file() and Path(b).is_file()


def test_predict_draws_a_phone_photos_overlay_small_or_none(ws, r18, tmp_path):
    """The probe's case: the overlay was drawn at the photo's full size (a 48 MP JPEG: 62 s, 4 GB, a 60 MB PNG),
    and could not be turned off for the label audit's hundreds of photos. It is at most 1024 px now; with
    --no-gradcam there is none, and the probabilities are the same."""
    from PIL import Image

    from train.predict import OVERLAY_SIDE

    small = sorted((ws / "exports/mpox/1.0.0/test").rglob("*.jpg"))[0]
    phone = tmp_path / "phone.jpg"
    Image.open(small).convert("RGB").resize((4000, 3000)).save(phone, quality=85)  # a 12 MP camera photo
    res = invoke("predict", phone, small, "--run", r18, "--out", tmp_path / "cam", "--json")
    assert res.exit_code == 0, res.output
    drawn = json.loads(res.output)
    with Image.open(drawn[0]["gradcam"]) as overlay:
        assert overlay.size == (OVERLAY_SIDE, OVERLAY_SIDE * 3 // 4)  # the photo's shape, 1024 px wide
    with Image.open(drawn[1]["gradcam"]) as overlay:
        assert overlay.size == Image.open(small).size  # a small photo keeps its size
    batches = sorted((r18 / "predict").glob("*")) if (r18 / "predict").is_dir() else []
    res = invoke("predict", phone, small, "--run", r18, "--no-gradcam", "--json")
    assert res.exit_code == 0, res.output
    bare = json.loads(res.output)
    assert [r["gradcam"] for r in bare] == [None, None]
    assert [r["probabilities"] for r in bare] == [r["probabilities"] for r in drawn]
    table = invoke("predict", small, "--run", r18, "--no-gradcam", "--out", tmp_path / "cam").output
    assert [line.rstrip(" │|").split()[-1] for line in table.splitlines() if "jpg" in line] == ["—"]
    # no folder made or refused for overlays that are not drawn (--out above already holds an earlier batch's)
    assert (sorted((r18 / "predict").glob("*")) if (r18 / "predict").is_dir() else []) == batches


# ------------------------------------------------------------------ bad input and faults
def test_tampered_dataset_is_refused(ws, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(ws / "exports/mpox/1.0.0", copy)
    victim = next((copy / "train" / "mpox").glob("*.jpg"))
    data = bytearray(victim.read_bytes())
    data[300] ^= 1
    victim.write_bytes(bytes(data))
    res = invoke("run", "--dataset", copy, "--arch", "resnet18", *FAST, "--out", tmp_path / "run")
    assert res.exit_code == 1 and "fails its checksums: 1 changed (train/mpox/" in res.output
    assert not (tmp_path / "run").exists()


def test_one_class_split_is_refused(tmp_path):
    path = write_export(tmp_path, counts={"train": {"mpox": 5, "non_mpox": 5}, "test": {"mpox": 3}})
    res = invoke("run", "--dataset", path, "--arch", "resnet18", *FAST, "--out", tmp_path / "run")
    assert res.exit_code == 1 and "split 'test' has only one class (mpox)" in res.output


def test_unknown_backbone_and_existing_run_folder(ws, r18):
    res = invoke("run", "--dataset", "mpox@1.0.0", "-w", ws, "--arch", "vgg16", *FAST, "--out", ws / "x")
    assert res.exit_code == 2 and "'vgg16' is not one of" in res.output and "densenet121" in res.output
    assert "Error: Invalid value" in res.output and "\u256d" not in res.output  # one plain line, as `curate`'s: no box
    res = invoke("run", "--dataset", "mpox@1.0.0", "-w", ws, "--arch", "resnet18", *FAST, "--out", r18)
    assert res.exit_code == 1 and "already exists; pass --resume" in res.output


@pytest.mark.parametrize(
    "args, code, text",
    [
        (["--arch", "resnet18"], 1, "already exists; pass --resume"),
        (["--arch", "vgg16"], 2, "'vgg16' is not one of"),
    ],
)
def test_refusals_come_before_torch_is_imported(tmp_path, args, code, text):
    """`train run` says "already exists" (or rejects an option) in well under the ~11 s torch takes to load here."""
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "run.json").write_text("{}")  # a run's folder (an empty one is taken over)
    cmd = [
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "train.cli",
        "run",
        "--dataset",
        "mpox@1.0.0",
        *args,
        "--out",
        str(tmp_path / "old"),
    ]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT}, timeout=60)
    took = time.perf_counter() - t0
    assert res.returncode == code and text in " ".join(res.stderr.split()), res.stderr[-500:]
    imported = {line.split("|")[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert not {m for m in imported if m.split(".")[0] in ("torch", "torchvision")}
    assert took < 5, f"refusal took {took:.1f} s"


@pytest.mark.parametrize("resume", [[], ["--resume"]])
def test_a_file_as_out_is_named_a_file(tmp_path, resume):
    """`--out notes.txt` (a file): before, "run folder notes.txt already exists; pass --resume", and --resume
    then said it was no run folder."""
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt"
    res = invoke("run", "--dataset", "mpox@1.0.0", "--arch", "resnet18", *FAST, "--out", out, *resume)
    assert res.exit_code == 1 and "is a file, not a run folder" in res.output, res.output
    assert out.read_text() == "mine"


@pytest.mark.slow
def test_interrupted_run_resumes_per_fold(ws, tmp_path):
    out = tmp_path / "run"
    cfg = TrainConfig(dataset="mpox@1.0.0", workspace=str(ws), arch="resnet18", out=str(out), weights="none", epochs=2)

    def progress(desc, total):
        if desc.startswith("fold 2"):
            raise KeyboardInterrupt
        return lambda n: None

    with pytest.raises(KeyboardInterrupt):
        run(cfg, progress=progress)
    done = {k: (out / f"fold{k}/checkpoint.pt").stat().st_mtime_ns for k in (0, 1)}
    assert not (out / "fold2/checkpoint.pt").exists()
    res = invoke("run", "--dataset", "mpox@1.0.0", "-w", ws, "--arch", "resnet18", *FAST, "--out", out)
    assert res.exit_code == 1 and "--resume" in res.output
    res = invoke(
        "run",
        "--dataset",
        "mpox@1.0.0",
        "-w",
        ws,
        "--arch",
        "resnet18",
        "--weights",
        "none",
        "--epochs",
        "3",
        "--out",
        out,
        "--resume",
    )
    assert res.exit_code == 1 and "different settings (epochs)" in res.output
    res = invoke("run", "--dataset", "mpox@1.0.0", "-w", ws, "--arch", "resnet18", *FAST, "--out", out, "--resume")
    assert res.exit_code == 0, res.output
    assert {k: (out / f"fold{k}/checkpoint.pt").stat().st_mtime_ns for k in (0, 1)} == done  # not retrained
    assert all((out / f"fold{k}/checkpoint.pt").exists() for k in range(5))
    # a broken fold checkpoint is reported, not silently retrained
    (out / "fold3/checkpoint.pt").write_bytes(b"garbage")
    res = invoke("run", "--dataset", "mpox@1.0.0", "-w", ws, "--arch", "resnet18", *FAST, "--out", out, "--resume")
    assert res.exit_code == 1 and "fold 3 checkpoint" in res.output and "unreadable" in res.output


def test_a_resume_that_moves_the_operating_point_names_the_runs_stale_exports(ws, r18, tmp_path):
    """The probe's case: `--resume --target-sensitivity 0.5` moved a finished run's operating point without a
    word, while the model.onnx exported into the run kept the old one: serve said "routine" where the deployed
    file said "refer". The resume names the exports that no longer hold the run's operating point."""
    pytest.importorskip("onnx")
    out = tmp_path / "runs" / "copy"
    shutil.copytree(r18, out)
    assert invoke("export-model", out).exit_code == 0
    again = ["run", "--dataset", "mpox@1.0.0", "-w", ws, "--arch", "resnet18", *FAST, "--out", out, "--resume"]
    res = invoke(*again, "--json")  # the same operating point: nothing stale
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["stale_exports"] == []
    res = invoke(*again, "--target-sensitivity", "0.5")
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert "warning: model.onnx in the run folder hold the operating point and calibration from before" in said
    assert invoke("export-model", out).exit_code == 0
    res = invoke(*again, "--target-sensitivity", "0.5", "--json")
    assert json.loads(res.stdout)["stale_exports"] == []


def test_resume_on_other_data_is_refused(ws, r18, tmp_path):
    other = write_export(tmp_path, seed=5)
    res = invoke("run", "--dataset", other, "--arch", "resnet18", *FAST, "--out", r18, "--resume")
    assert res.exit_code == 1 and "refusing to mix data" in res.output


@pytest.mark.slow
def test_weights_file_and_missing_weights(ws, tmp_path, monkeypatch):
    import torchvision

    sd_path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), sd_path)
    res = invoke(
        "run",
        "--dataset",
        "mpox@1.0.0",
        "-w",
        ws,
        "--arch",
        "resnet18",
        "--weights",
        sd_path,
        "--epochs",
        "1",
        "--out",
        tmp_path / "run",
        "--json",
    )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run/run.json").read_text())["weights_id"].startswith("file:")
    res = invoke(
        "run",
        "--dataset",
        "mpox@1.0.0",
        "-w",
        ws,
        "--arch",
        "resnet18",
        "--weights",
        tmp_path / "nope.pth",
        "--out",
        tmp_path / "run2",
    )
    assert res.exit_code == 1 and "no such file" in res.output
    res = invoke(
        "run",
        "--dataset",
        "mpox@1.0.0",
        "-w",
        ws,
        "--arch",
        "densenet121",
        "--weights",
        sd_path,
        "--out",
        tmp_path / "run3",
    )
    assert res.exit_code == 1 and "weights do not fit densenet121" in res.output

    # air-gapped: nothing cached, no network
    from urllib.error import URLError

    def offline(*a, **k):
        raise URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    res = invoke("run", "--dataset", "mpox@1.0.0", "-w", ws, "--arch", "resnet34", "--out", tmp_path / "run4")
    assert res.exit_code == 1
    msg = " ".join(res.output.split())
    assert "not cached at" in msg and "--weights FILE" in msg and "resnet34-" in msg
    with pytest.raises(TrainError):
        from train.models import build_backbone

        build_backbone("resnet34", "imagenet")


def test_bad_fold_count(ws, tmp_path):
    res = invoke(
        "run",
        "--dataset",
        "mpox@1.0.0",
        "-w",
        ws,
        "--arch",
        "resnet18",
        *FAST,
        "--folds",
        "3",
        "--out",
        tmp_path / "run",
    )
    assert res.exit_code == 1 and "but 3 folds were asked for" in res.output


def test_manifest_fold_gap_is_reported(tmp_path):
    path = write_export(tmp_path, folds=5)
    text = (path / "manifest.csv").read_text().replace(",train,4,", ",train,3,")
    (path / "manifest.csv").write_text(text)
    write_sums(path)
    res = invoke("run", "--dataset", path, "--arch", "resnet18", *FAST, "--out", tmp_path / "run")
    assert res.exit_code == 1 and "carry folds 0, 1, 2, 3, but 5 folds" in res.output


@pytest.mark.slow
def test_unfreeze_fine_tunes_on_images(ws, tmp_path):
    out = tmp_path / "ft"
    res = invoke(
        "run",
        "--dataset",
        "mpox@1.0.0",
        "-w",
        ws,
        "--arch",
        "resnet18",
        "--weights",
        "none",
        "--epochs",
        "1",
        "--unfreeze",
        "--out",
        out,
        "--json",
    )
    assert res.exit_code == 0, res.output
    assert json.loads((out / "run.json").read_text())["mode"] == "unfreeze"
    ckpt = torch.load(out / "fold0/checkpoint.pt", weights_only=True)
    assert "backbone.conv1.weight" in ckpt["model"] and "head.fc.weight" in ckpt["model"]
    img = next((ws / "exports/mpox/1.0.0/test").rglob("*.jpg"))
    res = invoke("predict", img, "--run", out)
    assert res.exit_code == 1 and "frozen-backbone runs only" in res.output


def test_diagnosis_task_with_three_classes(tmp_path):
    counts = {"train": {"herpes": 5, "mpox": 5, "non_mpox": 5}, "test": {"herpes": 2, "mpox": 2, "non_mpox": 2}}
    path = write_export(tmp_path, counts=counts)
    meta = json.loads((path / "dataset.json").read_text())
    (path / "dataset.json").write_text(json.dumps({**meta, "task": "diagnosis"}))
    write_sums(path)
    out = tmp_path / "run"
    res = invoke("run", "--dataset", path, "--arch", "resnet18", *FAST, "--out", out, "--json")
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["positive_class"] is None and set(m["sets"]) == {"val", "test", "test_roi"}
    with open(out / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"p_herpes", "p_mpox", "p_non_mpox"} <= set(rows[0])
    # The probe's cases: the exported model's `p_calibrated` was P(first class) here, and the page said
    # "Calibrated probability of class: 0.0 %". A diagnosis run exports its probabilities alone, its card speaks
    # of no operating point, and the page lists each class's probability.
    import onnxruntime
    from browser import chromium, shot
    from test_train_serve import Server, post

    from train.ensemble import Ensemble
    from train.export_model import read_metadata
    from train.photos import Limits
    from train.serve.app import ServeSettings, create_app

    res = invoke("export-model", out, "--json")
    assert res.exit_code == 0, res.output
    meta, card = read_metadata(out / "model.onnx")
    assert meta["outputs"] == ["probabilities"] and meta["positive_class"] is None
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    assert "no positive class" in card and "routine" not in card and "operating point" in card
    assert "Not a diagnosis: a PCR test" in card
    photo = next((path / "test").rglob("*.jpg"))
    with Server(create_app(Ensemble.load(out), ServeSettings(Limits(10_000_000, 10_000_000)))) as url:
        body = post(url, photo.read_bytes()).json()
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 800, "height": 900})
            page.goto(url)
            page.set_input_files("#photo", str(photo))
            page.click("#go")
            page.wait_for_selector("#result:not([hidden])", timeout=60_000)
            shown = page.inner_text("#classes")
            assert not page.is_visible("#positive") and page.is_visible("#classes")
            shot(page, "serve-page-diagnosis.png", full_page=True)
    assert body["p_positive"] is None
    best = max(body["probabilities"], key=body["probabilities"].get)
    assert shown.startswith(f"Probability of each class (not calibrated): {best} ")
    for cls, p in body["probabilities"].items():
        assert f"{cls} {100 * p:.1f} %" in shown


def test_a_version_of_a_named_workspace_trains_into_its_runs(ws, tmp_path, monkeypatch):
    """Before: into the current folder's runs/, its Grad-CAM crops of the photos outside the workspace, where
    `curate status` never looked for a run to name when a photo was later flagged identifiable."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = invoke("run", "--dataset", "mpox@1.0.0", "-w", ws, "--arch", "resnet18", *FAST, "--seed", "3", "--json")
    assert res.exit_code == 0, res.output
    assert (ws / "runs" / "mpox-1.0.0" / "resnet18-s3" / "run.json").is_file()
    assert not (elsewhere / "runs").exists()


def test_compare_tells_two_runs_of_one_folder_name_apart(r18, tmp_path):
    """The probe's case: runs of two copies of a workspace, each `resnet18-s0`: both rows read
    "ResNet-18 [resnet18-s0]"."""
    copy = tmp_path / "copyB" / r18.name
    shutil.copytree(r18, copy)
    data = json.loads(invoke("compare", r18, copy, "--json").output)
    assert [r["label"] for r in data["runs"]] == [f"ResNet-18 [{r18}]", f"ResNet-18 [{copy}]"]
