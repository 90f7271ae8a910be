"""From a probe of `train predict` and `train serve` with hostile photos: what `curate ingest` refuses is refused
here too, `--max-megapixels` is the limit it says, and a photo's odd levels do not make it black."""

from __future__ import annotations

import io
import socket

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from curate.errors import ServeError
from train.photos import Limits, decode_sized


def _noise_jpeg(seed: int = 3) -> bytes:
    levels = np.random.default_rng(seed).integers(0, 255, (450, 600, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(levels).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def test_a_jpeg_with_a_block_never_written_is_refused_as_ingest_refuses_it():
    """Before: 8 KB of zeros in the coded pixels (a failed copy) decoded without an error, two thirds of it grey,
    and predict and serve gave it a probability and a decision."""
    whole = _noise_jpeg()
    decode_sized(whole, Limits())  # the intact photo is read
    damaged = bytearray(whole)
    damaged[len(damaged) // 3 : len(damaged) // 3 + 8192] = bytes(8192)
    with pytest.raises(ServeError, match="damaged") as exc:
        decode_sized(bytes(damaged), Limits())
    assert exc.value.status == 422


@pytest.mark.slow
def test_max_megapixels_above_pillows_own_limit_is_the_limit():
    """Before: a 92 MP photo was "a decompression bomb" whatever --max-megapixels said (Pillow's own 89.5 MP
    came first), and under the default 40 MP the refusal did not say the picture's size or the limit."""
    buf = io.BytesIO()
    Image.new("1", (9600, 9600), 1).save(buf, "PNG")
    data = buf.getvalue()
    with pytest.raises(ServeError, match=r"image is 9600×9600 pixels \(92\.2 MP\); the limit is 40\.0 MP") as exc:
        decode_sized(data, Limits())
    assert exc.value.status == 413
    pillows = Image.MAX_IMAGE_PIXELS
    img, size = decode_sized(data, Limits(max_pixels=150_000_000))
    assert size == (9600, 9600) and img.mode == "RGB"
    assert pillows == Image.MAX_IMAGE_PIXELS  # raised for that open alone: the process keeps Pillow's guard


def test_a_float_picture_with_a_nan_is_not_black():
    """Before: one NaN (or infinite) level in a float TIFF made its top level NaN, and every level 0: the model
    decided on a black picture (and the export wrote one)."""
    levels = np.random.default_rng(0).random((200, 300)).astype(np.float32)
    clean = io.BytesIO()
    Image.fromarray(levels).save(clean, "TIFF")
    levels[0, 0], levels[5, 5], levels[9, 9] = np.nan, np.inf, -np.inf
    odd = io.BytesIO()
    Image.fromarray(levels).save(odd, "TIFF")
    got = np.asarray(decode_sized(odd.getvalue(), Limits())[0], dtype=np.int16)
    want = np.asarray(decode_sized(clean.getvalue(), Limits())[0], dtype=np.int16)
    assert got.mean() > 100 and np.abs(got - want)[10:, 10:].max() <= 1


@pytest.mark.slow
def test_a_stop_while_the_model_loads_is_a_stop(triage_run, monkeypatch):
    """Before: SIGTERM in serve's first seconds (a service manager restarting it) said "error: terminated
    (SIGTERM); re-run the same command to continue" with exit 143, the unit marked failed; once serving it was
    "stopped", exit 0. Its port is let go either way."""
    import torch

    from curate.net import free_port
    from curate.output import Terminated
    from train.cli import app
    from train.ensemble import Ensemble

    def stopped_while_loading(*args, **kwargs):
        raise Terminated()

    monkeypatch.setattr(Ensemble, "load", stopped_while_loading)
    port = free_port()
    threads = ["--threads", str(torch.get_num_threads())]
    res = CliRunner().invoke(app, ["serve", str(triage_run), "--port", str(port), *threads])
    assert res.exit_code == 0 and "stopped (SIGTERM)" in res.stderr and "re-run" not in res.output, res.output
    with socket.create_server(("127.0.0.1", port)):
        pass  # the port is free again


def test_export_model_of_a_file_names_the_run(tmp_path):
    """Before: `train export-model photo.jpg` said "--out photo.jpg/model.onnx: photo.jpg is a file", an option
    the user never gave."""
    from train.cli import app

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(_noise_jpeg())
    res = CliRunner().invoke(app, ["export-model", str(photo)])
    assert res.exit_code == 1 and "is not a run folder" in res.stderr and "--out" not in res.stderr, res.output
