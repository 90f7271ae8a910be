"""A run that ranks mpox below the rest on its own out-of-fold predictions is left uncalibrated and is not fit for
triage; every place that shows its decisions says so. Before, `train predict` did, but `train serve` answered
(API, page, start-up) and `train compare` printed its table without a word."""

from __future__ import annotations

import json
import shutil

import pytest
from test_train_cli_inputs import train_cli
from train_fixtures import new_jpeg

pytestmark = [pytest.mark.torch, pytest.mark.slow]


@pytest.fixture
def unfit_run(triage_run, tmp_path):
    """The shared run as one whose Platt fit came out inverted (what `Platt.fit` records then)."""
    from train.calibration import INVERTED_METHOD

    copy = tmp_path / "run"
    shutil.copytree(triage_run, copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics["triage"]["calibration"] = {"a": 1.0, "b": 0.0, "method": INVERTED_METHOD}
    (copy / "metrics.json").write_text(json.dumps(metrics))
    return copy


def test_serve_says_the_model_is_unfit_in_every_answer(unfit_run, triage_run):
    """A real uvicorn on 127.0.0.1, as `train serve` runs it (`test_train_serve.Server`)."""
    httpx = pytest.importorskip("httpx")
    from test_train_serve import Server, post

    from train.calibration import INVERTED
    from train.ensemble import Ensemble
    from train.serve.app import create_app

    photo = new_jpeg("mpox")
    with Server(create_app(Ensemble.load(unfit_run))) as url:
        assert httpx.get(f"{url}/healthz").json()["model_warning"] == INVERTED
        body = post(url, photo).json()
        assert body["model_warning"] == INVERTED and body["decision"] in ("refer", "routine")
        assert "data.model_warning" in httpx.get(url).text  # the page shows it beside the decision
    with Server(create_app(Ensemble.load(triage_run))) as url:  # a fit run: no such word
        assert post(url, photo).json()["model_warning"] is None
        assert httpx.get(f"{url}/healthz").json()["model_warning"] is None


def test_serve_warns_at_start(unfit_run):
    """`train serve` prints the warning when it starts, before any photo."""
    import os
    import subprocess
    import sys
    import time

    from test_train_cli_inputs import ROOT

    from curate.net import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from train.cli import main; main()", "serve", str(unfit_run), "--port", str(port)],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ROOT},
    )  # fmt: skip
    try:
        lines, deadline = [], time.time() + 120
        while time.time() < deadline and not any(line.startswith("serving") for line in lines):
            lines.append(proc.stderr.readline())
        lines.append(proc.stderr.readline())  # the line after "serving …"
    finally:
        proc.terminate()
        proc.wait(30)
    assert any("worse than chance" in line for line in lines), lines


def test_compare_warns_for_the_unfit_run_only(unfit_run, triage_run, tmp_path):
    from train.calibration import INVERTED

    res = train_cli("compare", triage_run, unfit_run, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-800:]
    warned = [line for line in res.stderr.splitlines() if "worse than chance" in line]
    assert len(warned) == 1 and "[run]" in warned[0], res.stderr  # the unfit run's label, once
    data = json.loads(train_cli("compare", triage_run, unfit_run, "--json", cwd=tmp_path).stdout)
    assert [r["model_warning"] for r in data["runs"]] == [None, INVERTED]


def test_export_model_warns_that_the_run_is_unfit(unfit_run, triage_run, tmp_path):
    """The probe's case: `export-model` of such a run printed nothing, where run, compare, predict and serve warn;
    the file then went to a clinic as any other."""
    from train.calibration import INVERTED

    res = train_cli("export-model", unfit_run, "--out", tmp_path / "unfit.onnx", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-800:]
    assert [line for line in res.stderr.splitlines() if "worse than chance" in line], res.stderr
    data = json.loads(
        train_cli("export-model", unfit_run, "--out", tmp_path / "u2.onnx", "--json", cwd=tmp_path).stdout
    )
    assert data["model_warning"] == INVERTED
    fine = json.loads(
        train_cli("export-model", triage_run, "--out", tmp_path / "fit.onnx", "--json", cwd=tmp_path).stdout
    )
    assert fine["model_warning"] is None
