"""Photos and run files a hostile probe sent `train predict` and `train serve`: each is one line naming what is
wrong, the other photos are still triaged, and the server's log never holds a traceback.

Before: a JPEG with a malformed EXIF tag stopped `predict` ("unexpected error: required argument is not a float",
no file named, no other photo triaged) and was a 500 with a 60-line traceback in `serve`'s log (it is now read as
curate reads it: the orientation the tag gives, the rest of the EXIF ignored); a TIFF turned by
its EXIF was reported with its size swapped; a 48 MP phone photo was refused by predict (serve's 40 MP default);
a metrics.json whose calibration slope is NaN called every photo "routine"; export-model replaced a file of the
card's name that the steward had written."""

from __future__ import annotations

import io
import json
import logging
import shutil

import pytest
from PIL import Image
from test_train_cli_inputs import train_cli
from train_fixtures import new_jpeg

pytestmark = [pytest.mark.torch, pytest.mark.slow]


def _bad_exif_jpeg() -> bytes:
    """A JPEG whose EXIF "Make" tag is renumbered to one Pillow reads as a float, turned by orientation 6."""
    ex = Image.Exif()
    ex[0x0112], ex[0x010F] = 6, "PatientCam"
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), "red").save(buf, format="JPEG", exif=ex.tobytes())
    return buf.getvalue().replace(b"\x01\x0f\x00\x02", b"\x01\x55\x00\x02")


def _turned_tiff() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), (180, 120, 110)).save(buf, format="TIFF", tiffinfo={0x0112: 6})
    return buf.getvalue()


def test_predict_reads_a_malformed_exif_as_curate_does_and_names_a_damaged_photo(triage_run, tmp_path):
    (tmp_path / "good.jpg").write_bytes(new_jpeg("mpox"))
    (tmp_path / "exif.jpg").write_bytes(_bad_exif_jpeg())
    (tmp_path / "turned.tif").write_bytes(_turned_tiff())
    (tmp_path / "cut.jpg").write_bytes(new_jpeg("mpox")[:600])
    big = Image.new("RGB", (8064, 6048), (170, 120, 100))  # a 48 MP phone photo: 49 MP, under ingest's 89
    big.save(tmp_path / "phone48.jpg", quality=50)
    res = train_cli("predict", "good.jpg", "exif.jpg", "turned.tif", "phone48.jpg", "cut.jpg", "--run", triage_run,
                    "--json", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 1, res.stderr[-800:]  # one input could not be read
    out = {r["image"]: r for r in json.loads(res.stdout)}
    assert out["exif.jpg"]["size"] == [300, 400] and out["exif.jpg"]["decision"] in ("refer", "routine")  # upright
    assert out["cut.jpg"]["error"].startswith("cannot read image cut.jpg") and "damaged" in out["cut.jpg"]["error"]
    assert out["good.jpg"]["decision"] in ("refer", "routine") and out["phone48.jpg"]["size"] == [8064, 6048]
    assert out["turned.tif"]["size"] == [300, 400]  # upright, as decided
    assert "Traceback" not in res.stderr and "unexpected" not in res.stderr


@pytest.fixture
def server_log(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def test_serve_reads_a_malformed_exif_and_answers_an_unexpected_error_in_one_line(triage_run, server_log, monkeypatch):
    httpx = pytest.importorskip("httpx")
    from test_train_serve import Server, post

    from train.ensemble import Ensemble
    from train.serve import app as served
    from train.serve.app import create_app

    with Server(create_app(Ensemble.load(triage_run))) as url:
        r = post(url, _bad_exif_jpeg())
        assert r.status_code == 200 and r.json()["image_size"] == [300, 400], r.text
        r = post(url, _turned_tiff())
        assert r.status_code == 200 and r.json()["image_size"] == [300, 400]

        def broken(*_a, **_k):
            raise RuntimeError("a bug")

        monkeypatch.setattr(served, "_prepare", broken)
        r = post(url, new_jpeg("mpox"))
        assert r.status_code == 500 and r.json() == {"error": "internal error (RuntimeError)"}
        assert r.headers.get("cache-control") == "no-store"  # `private`'s headers, as on every answer
        assert httpx.get(f"{url}/healthz").status_code == 200  # still serving
    said = [rec for rec in server_log.records if rec.levelno >= logging.WARNING]
    assert not any(rec.exc_info for rec in said), [rec.getMessage() for rec in said]
    assert [rec.getMessage() for rec in said if "RuntimeError" in rec.getMessage()] == ["request failed: RuntimeError"]
    assert not any("Corrupt EXIF" in rec.getMessage() for rec in server_log.records)


@pytest.mark.parametrize(
    "change, what",
    [
        (lambda t: t["calibration"].update(a=float("nan")), "nan-slope"),
        (lambda t: t.update(threshold=5.0), "threshold-5"),
        (lambda t: t["calibration"].update(a="x"), "text-slope"),
    ],
    ids=["nan-slope", "threshold-5", "text-slope"],
)
def test_a_calibration_that_cannot_decide_is_refused(triage_run, tmp_path, change, what):
    run = tmp_path / "run"
    shutil.copytree(triage_run, run)
    metrics = json.loads((run / "metrics.json").read_text())
    change(metrics["triage"])
    (run / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "p.jpg").write_bytes(new_jpeg("mpox"))
    res = train_cli("predict", "p.jpg", "--run", run, "--json", cwd=tmp_path)
    assert res.returncode == 1 and "metrics.json is damaged" in res.stderr, (what, res.stderr[-600:])
    assert len(res.stderr.strip().splitlines()) == 1


def test_export_model_keeps_a_file_of_the_cards_name_it_did_not_write(triage_run, tmp_path):
    notes = tmp_path / "model.onnx.card.md"
    notes.write_text("my notes\n")
    res = train_cli("export-model", triage_run, "--out", tmp_path / "model.onnx", cwd=tmp_path)
    assert res.returncode == 1 and "is not a model card" in res.stderr, res.stderr[-600:]
    assert notes.read_text() == "my notes\n" and not (tmp_path / "model.onnx").exists()
    notes.write_text("# Model card: left by a killed export\n")  # its own card, from a killed run: replaced
    res = train_cli("export-model", triage_run, "--out", tmp_path / "model.onnx", cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-600:]
    assert notes.read_text().startswith("# Model card: ") and "left by a killed export" not in notes.read_text()


def test_a_stopped_predict_with_out_does_not_say_the_same_command_continues(triage_run, tmp_path, monkeypatch):
    """Before: "re-run the same command to continue", and the same command was refused: --out held overlays."""
    from typer.testing import CliRunner

    import train.predict
    from train.cli import app

    def stopped(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(train.predict, "predict", stopped)
    (tmp_path / "p.jpg").write_bytes(new_jpeg("mpox"))
    r = CliRunner().invoke(app, ["predict", str(tmp_path / "p.jpg"), "--run", str(triage_run), "--out", "o"])
    said = " ".join(r.output.split())
    assert r.exit_code == 130 and "run predict again with another --out" in said and "same command" not in said


@pytest.mark.parametrize(
    "damage, said",
    [
        (lambda run: (run / "predictions.csv").write_text((run / "predictions.csv").read_text()[:300]),
         "predictions.csv is damaged"),
        (lambda run: (run / "metrics.json").write_text(
            json.dumps(json.loads((run / "metrics.json").read_text()) | {"sets": {"test": "x"}})),
         "metrics.json or run.json is damaged"),
    ],
    ids=["cut-predictions", "sets-not-tables"],
)  # fmt: skip
def test_compare_names_a_damaged_run_file(triage_run, tmp_path, damage, said):
    run = tmp_path / "run"
    shutil.copytree(triage_run, run)
    damage(run)
    res = train_cli("compare", triage_run, run, "--out", tmp_path / "cmp", cwd=tmp_path)
    assert res.returncode == 1 and said in res.stderr and "unexpected" not in res.stderr, res.stderr[-600:]
