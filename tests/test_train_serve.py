"""`train serve` against a real uvicorn server on 127.0.0.1: a real HTTP client (httpx), a real
browser (Debian's Chromium driven by Playwright), and the uploads a clinic's phones will send."""

import asyncio
import base64
import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from browser import chromium, shot

pytest.importorskip("torch")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
from PIL import Image

from curate.dataset import DatasetVersion
from curate.net import free_port
from train.ensemble import Ensemble
from train.photos import Limits, decode
from train.serve import engines, listen
from train.serve.app import ServeSettings, create_app, hosts_for

pytestmark = [pytest.mark.torch, pytest.mark.slow]


class Server:
    """uvicorn in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app, headers_s: float = listen.HEADERS_S):
        (self.sock,) = listen.bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.server = listen.server(app, headers_s=headers_s)  # as `train serve` runs it
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            assert time.time() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="module")
def model(triage_run):
    return Ensemble.load(triage_run)


@pytest.fixture(scope="module")
def server(model):
    with Server(create_app(model, ServeSettings(Limits(max_bytes=20 * 1024 * 1024, max_pixels=40_000_000)))) as url:
        yield url


@pytest.fixture(scope="module")
def photos(triage_run):
    ds = DatasetVersion.open(json.loads((triage_run / "run.json").read_text())["dataset"]["path"])
    return [s.path for s in ds.samples("test")]


def _encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def post(url, data: bytes, name="photo.jpg", gradcam=False, client=None):
    c = client or httpx
    return c.post(
        f"{url}/api/predict",
        params={"gradcam": str(gradcam).lower()},
        files={"file": (name, data, "application/octet-stream")},
        timeout=60,
    )


def test_health_page_and_card(server):
    h = httpx.get(f"{server}/healthz").json()
    assert h["status"] == "ok" and h["model"] == "mean of 5 fold models" and h["queue_size"] == 32
    assert h["engine"] == ("onnxruntime" if engines.onnxruntime_installed() else "torch")  # --engine auto
    page = httpx.get(server).text
    assert 'type="file"' in page and 'accept="image/*"' in page and 'capture="environment"' in page
    assert "This is not a diagnosis" in page and "Model card" in page and "Intended use" in page
    assert "Limits" in httpx.get(f"{server}/api/card").text
    for path in ("", "/healthz"):  # an uptime monitor asks with HEAD: before, 405, and the service was "down"
        head = httpx.head(f"{server}{path}")
        assert head.status_code == 200 and head.content == b"" and head.headers["cache-control"] == "no-store"


def test_only_the_overlays_size_of_a_photo_waits_in_the_queue(model):
    """A PNG decodes whole: 32 uploads of 40 MP waiting for the model held 4 GB, and the server kept it. What
    waits is the engine's input and, for Grad-CAM, the photo at the overlay's 512 px."""
    from train.serve.app import OVERLAY_MAX, _prepare
    from train.serve.engines import TorchEngine

    engine = TorchEngine(model)
    data = _encode(Image.new("RGB", (3000, 2000), (180, 120, 100)), "PNG")
    image, size, x = _prepare(data, Limits(), engine, True)
    assert size == (3000, 2000) and max(image.size) == OVERLAY_MAX and image.size == (512, 341)
    assert tuple(x.shape[-2:]) == (model.preset.size, model.preset.size)
    assert _prepare(data, Limits(), engine, False)[0] is None


def test_predict_matches_the_model_and_returns_a_gradcam(server, model, photos):
    data = photos[0].read_bytes()
    r = post(server, data, gradcam=True)
    assert r.status_code == 200, r.text
    body = r.json()
    ref = model.triage([decode(data, Limits())])[0]
    assert body["p_positive"] == pytest.approx(ref.p_calibrated, abs=1e-6) and body["calibrated"]
    assert body["p_uncalibrated"] == pytest.approx(ref.p_positive, abs=1e-6)
    assert body["decision"] == ("refer" if body["p_positive"] >= body["threshold"] else "routine")
    assert body["threshold"] == pytest.approx(model.operating_threshold) and "not a diagnosis" in body["disclaimer"]
    assert body["gradcam_jpeg"].startswith("data:image/jpeg;base64,")
    overlay = Image.open(io.BytesIO(base64.b64decode(body["gradcam_jpeg"].split(",", 1)[1])))
    assert overlay.format == "JPEG" and body["image_size"] == list(Image.open(io.BytesIO(data)).size)
    big = _encode(Image.open(photos[0]).convert("RGB").resize((256, 192)), "JPEG", quality=90, comment=b"J. Smith")
    raw = post(server, big, gradcam=True).json()["gradcam_jpeg"]
    assert b"Smith" not in base64.b64decode(raw[23:])  # the overlay is pixels only: no upload's comment comes back
    # decoded at 1/8 scale for the 32 px model, its size said in full; the overlay at the photo's own size, as
    # `predict` draws it (a probe: it came back at 1/8 scale, 32 x 24 here)
    r = post(server, big, gradcam=True).json()
    assert r["image_size"] == [256, 192]
    assert Image.open(io.BytesIO(base64.b64decode(r["gradcam_jpeg"][23:]))).size == (256, 192)
    assert "gradcam_jpeg" not in post(server, data).json()


def test_train_predict_and_the_server_give_one_jpeg_the_same_answer(server, triage_run, photos, tmp_path):
    """Before: `train predict` decoded a JPEG at full size and the server at reduced scale, so one photo had two
    P(mpox) (0.4964 against 0.4972 on a probe): near the threshold, two decisions for one photo."""
    from train.predict import predict

    for size in ((256, 192), (640, 480)):
        photo = tmp_path / f"photo{size[0]}.jpg"
        photo.write_bytes(_encode(Image.open(photos[1]).convert("RGB").resize(size), "JPEG", quality=90))
        [mine] = predict(triage_run, [photo], out_dir=tmp_path / f"out{size[0]}")
        served = post(server, photo.read_bytes()).json()
        assert mine["p_calibrated"] == pytest.approx(served["p_positive"], abs=1e-6)
        # one name for one number in both: `p_positive` is the calibrated P in the answer, the raw one in predict's
        for name in ("p_calibrated", "p_uncalibrated"):
            assert mine[name] == pytest.approx(served[name], abs=1e-6), name
        assert mine["p_uncalibrated"] == mine["p_positive"] and served["p_calibrated"] == served["p_positive"]
        assert mine["decision"] == served["decision"] and mine["size"] == list(size)
        assert Image.open(mine["gradcam"]).size == size  # the overlay still at the photo's own size


def test_phone_photos_are_handled_correctly(server, photos):
    """HEIC, CMYK and EXIF-rotated photos are predicted as the same picture in plain RGB."""
    img = Image.open(photos[1]).convert("RGB")
    base = post(server, _encode(img, "PNG"), "a.png").json()["p_positive"]
    rotated = img.transpose(Image.Transpose.ROTATE_90)  # stored sideways, EXIF says "rotate back"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": undoes the counter-clockwise ROTATE_90
    r = post(server, _encode(rotated, "PNG", exif=exif), "b.png")
    assert r.status_code == 200 and r.json()["p_positive"] == pytest.approx(base, abs=1e-6)
    assert r.json()["image_size"] == list(img.size)
    cmyk = post(server, _encode(img.convert("CMYK"), "JPEG", quality=95), "c.jpg")
    assert cmyk.status_code == 200 and cmyk.json()["p_positive"] == pytest.approx(base, abs=0.03)
    heic = post(server, _encode(img, "HEIF", quality=95), "d.heic")
    assert heic.status_code == 200 and heic.json()["p_positive"] == pytest.approx(base, abs=0.03)


def test_bad_uploads_get_a_4xx_and_one_line(server, photos):
    data = photos[0].read_bytes()
    cases = {
        "not an image": (post(server, b"%PDF-1.4 not a photo", "x.pdf"), 415),
        "truncated": (post(server, data[: len(data) // 2]), 422),
        "bomb": (post(server, _encode(Image.new("1", (12_000, 12_000)), "PNG"), "bomb.png"), 413),
        "50 MB": (post(server, os.urandom(50 * 1024 * 1024), "big.jpg"), 413),
        "empty": (post(server, b"", "e.jpg"), 400),
        "no multipart": (httpx.post(f"{server}/api/predict", content=data), 415),
        # Pillow opens these too (EPS through Ghostscript when installed); no phone sends them
        "TGA": (post(server, _encode(Image.new("RGB", (64, 64)), "TGA"), "x.tga"), 415),
        "PCX": (post(server, _encode(Image.new("RGB", (64, 64)), "PCX"), "x.pcx"), 415),
        "EPS": (post(server, b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "x.eps"), 415),
    }
    for what, (res, status) in cases.items():
        assert res.status_code == status, (what, res.status_code, res.text)
        msg = res.json()["error"]
        assert msg and "\n" not in msg and "Traceback" not in msg, what
    assert httpx.get(f"{server}/healthz").json()["status"] == "ok"  # still alive
    assert post(server, data).status_code == 200


def test_full_queue_answers_429_and_recovers(model, photos):
    data = photos[0].read_bytes()
    app = create_app(model, ServeSettings(queue_size=1, max_batch=1))

    async def burst(url):
        async with httpx.AsyncClient(timeout=120) as c:
            return await asyncio.gather(
                *[c.post(f"{url}/api/predict", files={"file": ("p.jpg", data)}) for _ in range(12)]
            )

    with Server(app) as url:
        codes = [r.status_code for r in asyncio.run(burst(url))]
        assert 429 in codes and 200 in codes and set(codes) <= {200, 429}, codes
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
        assert post(url, data).status_code == 200


def test_uploads_stay_in_memory_unless_kept(model, photos, tmp_path, monkeypatch):
    import tempfile

    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))  # where a spooled upload would roll over to
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1200, 1200, 3), dtype=np.uint8))
    big = _encode(noisy, "PNG")
    assert len(big) > 3 * 1024 * 1024
    kept = tmp_path / "kept"
    with Server(create_app(model)) as url:
        assert post(url, big, "big.png").status_code == 200
    assert list(spool.iterdir()) == [] and not kept.exists()
    with Server(create_app(model, ServeSettings(keep_uploads=kept))) as url:
        r = post(url, photos[0].read_bytes())
        assert r.status_code == 200
        assert post(url, b"%PDF-1.4 not a photo", "x.pdf").status_code == 415  # refused: not kept
    files = list(kept.iterdir())
    assert len(files) == 1 and files[0].read_bytes() == photos[0].read_bytes() and r.json()["kept_as"] == files[0].name
    assert files[0].stat().st_mode & 0o777 == 0o600 and "photo" not in files[0].name


def test_browser_uploads_a_photo_and_reads_the_result(server, photos):
    """Headless Chromium from Debian: choose a photo, press the button, read P(mpox) off the page."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 800, "height": 1100})
        page.goto(server)
        page.set_input_files("#photo", str(photos[0]))
        page.click("#go")
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        prob = page.inner_text("#prob")
        decision = page.inner_text("#decision")
        page.wait_for_function("document.getElementById('overlay').complete", timeout=10_000)
        assert page.is_visible("#overlay") and page.is_visible("#disclaimer")
        screenshot = shot(page, "serve-page.png", full_page=True)
    body = post(server, photos[0].read_bytes()).json()
    assert prob == f"{100 * body['p_positive']:.1f} %"
    assert decision.startswith("Refer" if body["decision"] == "refer" else "Routine")
    assert screenshot.stat().st_size > 10_000


def test_onnxruntime_and_torch_engines_answer_the_same(server, model, photos):
    """`--engine auto` (onnxruntime, the export-model graph) and `--engine torch`: the same P(mpox) within
    1e-4, the same decision, and both refuse bad uploads."""
    pytest.importorskip("onnxruntime")
    assert httpx.get(f"{server}/healthz").json()["engine"] == "onnxruntime"
    with Server(create_app(model, ServeSettings(engine="torch"))) as torch_url:
        assert httpx.get(f"{torch_url}/healthz").json()["engine"] == "torch"
        for path in photos[:6]:
            data = path.read_bytes()
            ref = model.triage([decode(data, Limits())])[0]
            a, b = post(server, data).json(), post(torch_url, data).json()
            assert b["p_positive"] == pytest.approx(ref.p_calibrated, abs=1e-6)  # torch: the model itself
            assert a["p_positive"] == pytest.approx(b["p_positive"], abs=1e-4)
            assert a["p_uncalibrated"] == pytest.approx(b["p_uncalibrated"], abs=1e-4)
            assert a["decision"] == b["decision"] == ref.decision and a["threshold"] == b["threshold"]
        assert post(torch_url, b"%PDF-1.4 not a photo", "x.pdf").status_code == 415
        assert post(torch_url, data[: len(data) // 2]).status_code == 422


def test_onnxruntime_threads_follow_the_setting(model):
    pytest.importorskip("onnxruntime")
    engine = engines.start_engine(model, "onnxruntime", threads=2)
    assert engine.name == "onnxruntime"
    assert engine.session.get_session_options().intra_op_num_threads == 2


def test_onnxruntime_that_disagrees_with_torch_falls_back_with_one_line(model, monkeypatch, caplog):
    """The start-up check: when onnxruntime and torch differ by more than the tolerance (here: any
    difference, the tolerance set below zero), the server stays on torch and says so once."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(engines, "TOLERANCE", -1.0)
    with caplog.at_level(logging.WARNING, logger="train.serve"):
        app = create_app(model, ServeSettings(engine="onnxruntime"))
    assert app.state.worker.engine.name == "torch"
    lines = [r.getMessage() for r in caplog.records if r.name == "train.serve"]
    assert len(lines) == 1 and "serving with torch" in lines[0] and "differ" in lines[0]


def test_cli_serves_with_the_engine_asked_for(triage_run, photos):
    """`train serve --engine torch` as a user starts it; the start-up line and /healthz name the engine."""
    port = free_port()
    cmd = [sys.executable, "-m", "train.cli", "serve", str(triage_run), "--port", str(port), "--engine", "torch"]
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None and time.time() < deadline, "train serve did not start"
            try:
                health = httpx.get(f"{url}/healthz", timeout=2).json()
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert health["engine"] == "torch"
        r = post(url, photos[0].read_bytes())
        assert r.status_code == 200 and r.json()["decision"] in ("refer", "routine")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "with torch" in err and "Traceback" not in err


def test_answers_are_private_and_errors_have_one_shape(server, photos):
    """No answer is cached or framed; 404, 405 and a bad parameter answer {"error"} without echoing the input; a
    request naming another host (a DNS-rebinding page) is refused; a 1x1 picture is decided with a warning."""
    for r in (httpx.get(server), post(server, photos[0].read_bytes())):
        assert r.headers["cache-control"] == "no-store" and r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    for r, status in [
        (httpx.get(f"{server}/nope"), 404),
        (httpx.get(f"{server}/api/predict"), 405),
        (httpx.post(f"{server}/api/predict?gradcam=maybe"), 422),
    ]:
        assert r.status_code == status and set(r.json()) == {"error"} and "maybe" not in r.text, r.text
    assert r.json()["error"] == "bad query parameter: gradcam"
    foreign = httpx.get(f"{server}/healthz", headers={"Host": "evil.example"})  # before: "Invalid host header", text
    assert foreign.status_code == 400 and "another host" in foreign.json()["error"]
    assert foreign.headers["cache-control"] == "no-store"
    assert httpx.get(f"{server}/healthz", headers={"Host": "localhost"}).status_code == 200
    tiny = post(server, _encode(Image.new("RGB", (1, 1), "pink"), "PNG"), "one.png").json()
    assert tiny["low_resolution"] is True and "1×1 px" in tiny["warning"] and tiny["decision"] in ("refer", "routine")
    assert post(server, photos[0].read_bytes()).json()["warning"] is None


def _raw(port: int, head: bytes, body: bytes, close: bool, wait: float) -> bytes:
    """Send a request's head and part of its body over a plain socket; what the server answers within `wait`."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=wait + 5) as sock:
        sock.sendall(head + body)
        if close:
            return b""
        time.sleep(wait)
        return sock.recv(65536)


def test_a_slow_or_broken_upload_is_answered_not_logged(model, photos, caplog):
    """A body still arriving after `upload_seconds` gets 408; a phone leaving mid-upload leaves no traceback."""
    app = create_app(model, ServeSettings(upload_seconds=1.0))
    with Server(app) as url, caplog.at_level(logging.INFO):
        port = int(url.rsplit(":", 1)[1])
        head = (
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=xx\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        start = b'--xx\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n\r\n'
        answer = _raw(port, head, start + b"\xff\xd8", close=False, wait=2.5)
        assert answer.startswith(b"HTTP/1.1 408") and b"longer than 1 s" in answer, answer[:300]
        _raw(port, head, start + b"\xff\xd8", close=True, wait=0)
        time.sleep(1.0)
        assert post(url, photos[0].read_bytes()).status_code == 200
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "Traceback" not in logged and "Exception in ASGI application" not in logged, logged


def test_onnxruntime_tracking_stays_off(tmp_path):
    """onnxruntime 1.32 writes a device id and an event queue under ~/.cache/Microsoft when a session is made;
    serving switches that off before it imports onnxruntime."""
    pytest.importorskip("onnxruntime")
    code = (
        "from onnx import helper, TensorProto\n"
        "from train.serve.engines import _session\n"
        "g = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], 'g',"
        " [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1])],"
        " [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])])\n"
        "m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]); m.ir_version = 8\n"
        "_session(m.SerializeToString(), 1)\n"
    )
    root = str(Path(__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(tmp_path), PYTHONPATH=root)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    assert not (tmp_path / ".cache" / "Microsoft").exists()


def test_only_loopback_counts_as_this_machine():
    from curate.net import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.10", "::", "clinic.example"))
    # the loopback written as the socket reads it: before, a network address, and any Host was answered
    same = ("127.1", "LOCALHOST", "localhost.", "::ffff:127.0.0.1", "0x7f000001", "2130706433", "[::FFFF:127.0.0.1]")
    assert all(is_loopback(h) for h in same)
    assert all(hosts_for(h) is not None for h in same)
    # as Starlette checks a request's Host: lowercase, an IPv6 address in brackets
    assert "0x7f000001" in hosts_for("0X7F000001") and "[0:0:0:0:0:0:0:1]" in hosts_for("0:0:0:0:0:0:0:1")
    assert not any(
        is_loopback(h)
        for h in ("10.1", "0x0a000001", "::ffff:10.0.0.1", "localhost.example", "127.0.0.1.x", "127.0.0.1 x")
    )


def test_a_malformed_form_is_answered_and_not_logged(server, caplog):
    """Before: python-multipart logged its own line for each malformed form ("Did not find CR at end of boundary
    (42)") below the server's, with no request or time to tie it to; the client's 400 says it already."""
    with caplog.at_level(logging.INFO):
        for body in (b"--xxJUNK\r\n", b"garbage before --xx\r\n", b"--xx\r\nBadHeader\r\n\r\nabc\r\n--xx--\r\n"):
            r = httpx.post(
                f"{server}/api/predict",
                content=body,
                headers={"Content-Type": "multipart/form-data; boundary=xx"},
                timeout=30,
            )
            assert 400 <= r.status_code < 500 and "\n" not in r.json()["error"], r.text
    assert not [x.getMessage() for x in caplog.records if x.name.startswith(("python_multipart", "multipart"))]
