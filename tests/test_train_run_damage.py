"""A finished run whose files were damaged or overwritten is refused in one line, never used half-way.

Before, a damaged metrics.json made predict and serve decide at an uncalibrated 0.5 without a word (one probe
photo went from "refer" to "routine", exit 0), a damaged fold checkpoint printed torch's text advising an
unsafe load, and `export-model --out` wrote over any file, the run's own checkpoint included.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from test_train_cli_inputs import ROOT, train_cli
from train_fixtures import new_jpeg

pytestmark = [pytest.mark.torch, pytest.mark.slow]


@pytest.fixture
def run_copy(triage_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(triage_run, copy)
    (tmp_path / "photo.jpg").write_bytes(new_jpeg("mpox"))
    return copy


def _refused(res, *words):
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr[-1500:]
    for w in words:
        assert w in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and "weights_only" not in res.stderr


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda m: m.write_text("{"), "metrics.json is damaged"),
        (lambda m: m.unlink(), "metrics.json is missing"),
        (lambda m: m.write_text(json.dumps({**json.loads(m.read_text()), "triage": {}})), "no calibration"),
        (lambda m: m.write_text(json.dumps({**json.loads(m.read_text()), "triage": ["x"]})), "is damaged"),
        (
            lambda m: m.write_text(
                json.dumps((d := json.loads(m.read_text())) | {"triage": {**d["triage"], "calibration": [1, 2]}})
            ),
            "is damaged",
        ),
    ],
    ids=["damaged", "missing", "no-operating-point", "triage-not-a-table", "calibration-not-a-table"],
)
def test_predict_refuses_a_run_without_its_calibration(run_copy, tmp_path, damage, words):
    good = train_cli("predict", "photo.jpg", "--run", run_copy, "--json", cwd=tmp_path)
    assert good.returncode == 0 and json.loads(good.stdout)[0]["calibrated"] is True, good.stderr[-800:]
    damage(run_copy / "metrics.json")
    _refused(train_cli("predict", "photo.jpg", "--run", run_copy, "--json", cwd=tmp_path), words, "train again")


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda i: {**i, "positive_class": "zzz"}, "positive_class 'zzz' is not one of its classes"),
        (lambda i: {**i, "dataset": {**i["dataset"], "classes": "mpox"}}, "(dataset.classes)"),
        (lambda i: [i], "(dataset)"),
        (lambda i: {k: v for k, v in i.items() if k != "positive_class"}, "(positive_class)"),
        (lambda i: {k: v for k, v in i.items() if k != "weights_id"}, "(weights_id)"),
    ],
    ids=["positive-class", "classes", "not-an-object", "no-positive-class", "no-weights-id"],
)
def test_a_damaged_run_json_is_named_by_predict_and_export_model(run_copy, tmp_path, edit, said):
    """Before: "unexpected ValueError: 'zzz' is not in list" from predict, and "exporting … failed: ValueError"
    from export-model, for a run.json whose positive class is not one of its classes."""
    info = run_copy / "run.json"
    info.write_text(json.dumps(edit(json.loads(info.read_text()))))
    _refused(train_cli("predict", "photo.jpg", "--run", run_copy, cwd=tmp_path), "run.json is damaged", said)
    out = tmp_path / "model.pt"
    _refused(train_cli("export-model", run_copy, "--format", "torchscript", "--out", out, cwd=tmp_path), said)
    assert not out.exists()


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda c: "{bad", "config.json is damaged (not JSON)"),
        (lambda c: b"\xff\xfe\x00garbage", "config.json is damaged (not JSON)"),
        (lambda c: json.dumps({**json.loads(c), "folds": 1_000_000_000}), "config.json says 1000000000 folds"),
        (lambda c: json.dumps({**json.loads(c), "image_size": 10**6}), "config.json is damaged (image_size)"),
        (lambda c: json.dumps([json.loads(c)]), "config.json is damaged"),
    ],
    ids=["not-json", "not-utf-8", "folds", "image-size", "not-an-object"],
)
def test_a_damaged_config_json_is_named_by_predict_and_export_model(run_copy, tmp_path, edit, said):
    """Before: "folds": 1000000000 made predict build a list of a billion folds, and the process was killed
    (exit 137, nothing said); a config.json that is not JSON was "missing", and clinic IT looked for a deleted
    file."""
    config = run_copy / "config.json"
    damaged = edit(config.read_text())
    (config.write_bytes if isinstance(damaged, bytes) else config.write_text)(damaged)
    _refused(train_cli("predict", "photo.jpg", "--run", run_copy, cwd=tmp_path), said, "train again")
    out = tmp_path / "model.pt"
    _refused(train_cli("export-model", run_copy, "--format", "torchscript", "--out", out, cwd=tmp_path), said)
    assert not out.exists()


@pytest.mark.parametrize("content", [b"garbage\n", None], ids=["garbage", "truncated"])
def test_a_damaged_fold_checkpoint_is_named(run_copy, tmp_path, content):
    ckpt = run_copy / "fold0" / "checkpoint.pt"
    ckpt.write_bytes(content if content is not None else ckpt.read_bytes()[:1000])
    _refused(train_cli("predict", "photo.jpg", "--run", run_copy, cwd=tmp_path), "fold0/checkpoint.pt is damaged")


@pytest.mark.parametrize("field", ["dataset_checksum", "config"])
def test_a_fold_checkpoint_of_another_run_is_refused(run_copy, tmp_path, field):
    """Before: a fold checkpoint copied from a run of other data or settings (the same head shape) was used as
    this run's: predict and export-model mixed two runs' answers, exit 0."""
    import torch

    ckpt_path = run_copy / "fold0" / "checkpoint.pt"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    if field == "dataset_checksum":
        ckpt["dataset_checksum"] = "0" * 64
    else:
        ckpt["config"] = {**ckpt["config"], "epochs": ckpt["config"]["epochs"] + 1}
    torch.save(ckpt, ckpt_path)
    for args in (("predict", "photo.jpg", "--run", run_copy), ("export-model", run_copy, "--out", tmp_path / "m.pt")):
        _refused(train_cli(*args, cwd=tmp_path), "fold0/checkpoint.pt and config.json disagree")
    assert not (tmp_path / "m.pt").exists()


def test_export_model_never_writes_over_an_existing_file(run_copy, tmp_path):
    ckpt = run_copy / "fold0" / "checkpoint.pt"
    before = ckpt.read_bytes()
    res = train_cli("export-model", run_copy, "--format", "torchscript", "--out", ckpt, cwd=tmp_path)
    _refused(res, "already exists")
    assert ckpt.read_bytes() == before
    for _ in range(2):  # the run's own model file: a re-run rewrites it
        res = train_cli("export-model", run_copy, "--format", "torchscript", cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-800:]
    assert (run_copy / "model.pt").is_file()
    predict = train_cli("predict", "photo.jpg", "--run", run_copy, cwd=tmp_path)
    assert predict.returncode == 0, predict.stderr[-800:]


@pytest.mark.parametrize("content", ["{", "[]", "{}"], ids=["cut", "a-list", "empty"])
def test_compare_names_a_damaged_metrics_file(run_copy, tmp_path, content):
    """Before: a cut metrics.json was "missing", `[]` an unexpected TypeError and `{}` an unexpected KeyError."""
    (run_copy / "metrics.json").write_text(content)
    res = train_cli("compare", run_copy, run_copy, cwd=tmp_path)
    _refused(res, "metrics.json or run.json is damaged")


def test_export_model_stopped_between_its_two_files_is_finished_by_a_re_run(run_copy, tmp_path, monkeypatch):
    """Before: Ctrl-C after the model file was written and before its card left the model alone, and the re-run
    the message advised was refused: "--out … already exists". Now a stop after the card leaves no model yet."""
    from train import export_model as em

    real = em._swap_card

    def swapped_then_stopped(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    out = tmp_path / "m.onnx"
    monkeypatch.setattr(em, "_swap_card", swapped_then_stopped)
    with pytest.raises(KeyboardInterrupt):
        em.export_model(run_copy, "onnx", out)
    assert not out.exists() and (tmp_path / "m.onnx.card.md").is_file()
    monkeypatch.setattr(em, "_swap_card", real)
    assert em.export_model(run_copy, "onnx", out) == out
    assert out.stat().st_size > 0 and "Model card" in (tmp_path / "m.onnx.card.md").read_text()


def test_a_re_export_killed_while_its_model_is_built_leaves_the_old_model_with_its_own_card(run_copy):
    """A probe: kill -9 while a re-export built its model left the new card (target sensitivity 0.50) beside the old
    model (0.95), since the card was written first. The child dies as kill -9 would: no clean-up runs."""
    from train import export_model as em

    first = run_copy / "model.onnx"

    em.export_model(run_copy, "onnx")
    card = first.with_name(first.name + ".card.md")
    model_before, card_before = first.read_bytes(), card.read_bytes()
    child = (
        "import os, sys\n"
        "from train import export_model as em\n"
        "real = em.card_markdown\n"
        "em.card_markdown = lambda meta: real(meta) + 'another operating threshold'\n"
        "em.onnx_bytes = lambda *a, **k: os._exit(9)\n"
        "em.export_model(sys.argv[1], 'onnx')\n"
    )
    done = subprocess.run([sys.executable, "-c", child, str(run_copy)], env={"PYTHONPATH": ROOT}, timeout=300)
    assert done.returncode == 9
    assert card.read_bytes() == card_before and first.read_bytes() == model_before


def test_a_fold_checkpoint_copied_over_another_fold_is_refused(run_copy, tmp_path):
    """A probe: fold 1's checkpoint copied into fold2/ was used as fold 2 by predict, serve and export-model (and by
    a resumed run, whose fold-2 validation AUC went from 0.667 to 0.833: the head had trained on those images)."""
    shutil.copy(run_copy / "fold1" / "checkpoint.pt", run_copy / "fold2" / "checkpoint.pt")
    _refused(train_cli("predict", "photo.jpg", "--run", run_copy, cwd=tmp_path), "fold2/checkpoint.pt holds fold 1")
    from train.errors import TrainError
    from train.recipe import run

    with pytest.raises(TrainError, match="fold2/checkpoint.pt is fold 1's; delete it to retrain fold 2"):
        run(_resumed(run_copy), resume=True)


def test_a_deleted_fold_folder_is_named_not_config_json(run_copy, tmp_path):
    """A probe: with fold4/ deleted, predict said "config.json is damaged (folds: 5, more than the run's)"."""
    last = max(run_copy.glob("fold*"), key=lambda p: int(p.name[4:]))
    shutil.rmtree(last)
    _refused(train_cli("predict", "photo.jpg", "--run", run_copy, cwd=tmp_path), f"({last.name}/ is missing)")


def test_a_failed_re_export_keeps_the_models_own_card(run_copy, tmp_path, monkeypatch):
    """A re-export to the run's own model.onnx that fails (onnx missing, a full disk) leaves the model there with
    the card it was written with, not none."""
    from train import export_model as em
    from train.errors import TrainError

    first = em.export_model(run_copy, "onnx")
    card = first.with_name(first.name + ".card.md")
    before = card.read_bytes()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(em, "onnx_bytes", broken)
    with pytest.raises(TrainError, match="failed"):
        em.export_model(run_copy, "onnx")
    assert card.read_bytes() == before and first.is_file()


def _resumed(run_copy):
    """The copy's own settings, to resume it in this process (`train run --resume` with the same options)."""
    from dataclasses import replace

    from train.config import from_saved

    return replace(from_saved(json.loads((run_copy / "config.json").read_text())), out=str(run_copy))


def test_a_resume_that_fails_leaves_a_finished_run_finished(run_copy, tmp_path):
    """Before: `train run --resume` of a finished run that met a damaged fold checkpoint left run.json "running";
    with the checkpoint restored, predict and serve still refused the run ("did not finish")."""
    from train.errors import TrainError
    from train.recipe import run

    ckpt = run_copy / "fold1" / "checkpoint.pt"
    good = ckpt.read_bytes()
    ckpt.write_bytes(b"garbage\n")
    with pytest.raises(TrainError, match="fold 1 checkpoint"):
        run(_resumed(run_copy), resume=True)
    assert json.loads((run_copy / "run.json").read_text())["status"] == "complete"
    ckpt.write_bytes(good)
    res = train_cli("predict", "photo.jpg", "--run", run_copy, "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr


def test_a_resume_that_trained_a_fold_again_and_failed_is_no_longer_finished(run_copy):
    """Review of the change above: a fold whose checkpoint was deleted (as the error says to) is trained again
    before another fold's damaged checkpoint stops the resume; the old metrics no longer describe the folds, so
    the run is "failed", not put back to "complete"."""
    from train.errors import TrainError
    from train.recipe import run

    (run_copy / "fold0" / "checkpoint.pt").unlink()
    (run_copy / "fold1" / "checkpoint.pt").write_bytes(b"garbage\n")
    with pytest.raises(TrainError, match="fold 1 checkpoint"):
        run(_resumed(run_copy), resume=True)
    assert json.loads((run_copy / "run.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("stop", [RuntimeError("the disk went away"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_a_run_that_stops_says_how_in_run_json(run_copy, monkeypatch, stop):
    """Before: an error or Ctrl-C left run.json "running" for good."""
    import train.recipe
    from train.recipe import run

    def stopped(*args, **kwargs):
        raise stop

    for ckpt in run_copy.glob("fold*/checkpoint.pt"):
        ckpt.unlink()  # folds to train again, so that the run passes where it stops
    info = json.loads((run_copy / "run.json").read_text())
    (run_copy / "run.json").write_text(json.dumps({**info, "status": "running"}))  # a run killed half-way, resumed
    monkeypatch.setattr(train.recipe, "train_fold", stopped)
    with pytest.raises(type(stop)):
        run(_resumed(run_copy), resume=True)
    info = json.loads((run_copy / "run.json").read_text())
    if isinstance(stop, KeyboardInterrupt):
        assert info["status"] == "interrupted" and "error" not in info
    else:
        assert info["status"] == "failed" and info["error"] == "the disk went away"


def test_two_runs_into_one_folder_are_not_run_at_once(run_copy):
    """Before: a second `train run --resume` into a folder another run was training in took it over: both wrote
    its checkpoints and outputs and both said "done"."""
    import fcntl
    import os

    from train.errors import TrainError
    from train.recipe import run

    held = os.open(run_copy, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # as the first run holds it
    try:
        with pytest.raises(TrainError, match="is in use by another `train run`"):
            run(_resumed(run_copy), resume=True)
    finally:
        os.close(held)
    assert json.loads((run_copy / "run.json").read_text())["status"] == "complete"
