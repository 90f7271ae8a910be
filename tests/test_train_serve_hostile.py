"""`train serve` against what a hostile page, a mistyped option or a stalled phone does (a probe's findings).

Before: any web page the clinician had open could post photos (filling `--keep-uploads`); a server on
127.0.0.2 refused its own URL; a file given as `--keep-uploads` was found only by a 500 after each photo; a stop
waited 120 s for a stalled upload, past a service manager's 90 s before SIGKILL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
from test_train_serve import Server, post
from train_fixtures import new_jpeg, write_export

from curate.net import free_port
from train.ensemble import Ensemble
from train.serve.app import ServeSettings, create_app, hosts_for

pytestmark = [pytest.mark.torch, pytest.mark.slow]
ROOT = str(Path(__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def model(triage_run):
    return Ensemble.load(triage_run)


def test_a_page_of_another_site_cannot_post_photos(model, tmp_path):
    kept = tmp_path / "kept"
    photo = new_jpeg("mpox")
    with Server(create_app(model, ServeSettings(keep_uploads=kept))) as url:

        def with_headers(headers):
            return httpx.post(
                f"{url}/api/predict?gradcam=false", files={"file": ("p.jpg", photo)}, headers=headers, timeout=60
            )

        for headers in (
            {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
            {"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:8080"},  # another local app's page
            {"Origin": "http://evil.example"},  # a browser without Sec-Fetch-*
            {"Origin": "null"},  # a sandboxed frame or a file:// page
            {"Origin": "https://evil.example", "X-Forwarded-Host": "clinic.example"},
        ):
            r = with_headers(headers)
            assert r.status_code == 403 and set(r.json()) == {"error"}, (headers, r.text)
            assert r.headers["cache-control"] == "no-store"
        assert not kept.exists() or not list(kept.iterdir())
        for headers in (
            {"Sec-Fetch-Site": "same-origin", "Origin": url},  # the page
            {"Origin": url},  # the page, in a browser without Sec-Fetch-*
            {"Origin": "https://clinic.example", "X-Forwarded-Host": "clinic.example"},  # behind the clinic's proxy
            {},  # curl, a script
        ):
            r = with_headers(headers)
            assert r.status_code == 200 and r.json()["decision"] in ("refer", "routine"), (headers, r.text)
        assert len(list(kept.iterdir())) == 4
        assert httpx.get(f"{url}/healthz", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


def test_a_server_on_another_loopback_address_answers_its_own_url(model):
    assert hosts_for("0.0.0.0") is None and hosts_for("127.0.0.1") == hosts_for("localhost")
    with Server(create_app(model, ServeSettings(allowed_hosts=hosts_for("127.0.0.2")))) as url:
        assert httpx.get(f"{url}/healthz", headers={"Host": "127.0.0.2"}).status_code == 200
        assert httpx.get(f"{url}/healthz", headers={"Host": "evil.example"}).status_code == 400
        assert post(url, new_jpeg("mpox")).status_code == 200


def _serve(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": ROOT}
    cmd = [sys.executable, "-c", "from train.cli import main; main()", "serve", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("place", ["a-file", "in-a-dataset-version"])
def test_keep_uploads_that_is_a_file_or_inside_a_dataset_version_is_refused_at_start(triage_run, tmp_path, place):
    """A probe: `--keep-uploads exports/mpox/1.0.0/uploads` was taken, and the first photo kept there made the
    version fail its checksums for `train run` ("1 extra (uploads/…upload)"), with a patient's photo inside it."""
    if place == "a-file":
        (keep := tmp_path / "notadir").write_text("")
        said = "not a folder"
    else:
        keep, said = write_export(tmp_path) / "uploads", "inside the dataset version"
    proc = _serve(str(triage_run), "--port", str(free_port()), "--keep-uploads", str(keep))
    try:
        _, err = proc.communicate(timeout=120)
    finally:  # were the check to regress, the server would run on: never left behind
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1 and len(err.strip().splitlines()) == 1, err
    assert "--keep-uploads" in err and said in err
    assert place == "a-file" or not keep.exists()


@pytest.mark.parametrize("signals", [(signal.SIGTERM,), (signal.SIGINT, signal.SIGINT)], ids=["term", "ctrl-c-twice"])
def test_a_stop_does_not_wait_for_a_stalled_upload(triage_run, signals):
    """A stop cuts a stalled upload off after the grace period, and a second Ctrl-C at once; either way the
    command ends in its one line (before: 30 lines of uvicorn's "Exception in ASGI application … CancelledError"
    for each request cut off, and the lifespan's traceback after a second Ctrl-C)."""
    port = free_port()
    proc = _serve(str(triage_run), "--port", str(port), "--engine", "torch")
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "train serve did not start"
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port)) as sock:  # a phone whose upload stalls half-way
            body = b"--b\r\nContent-Disposition: form-data; name=file; filename=p.jpg\r\n\r\n" + b"x" * 1000
            sock.sendall(
                b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                b"Content-Length: 100000\r\n\r\n" + body
            )
            time.sleep(1)
            stopped = time.monotonic()
            for sig in signals:
                proc.send_signal(sig)
                time.sleep(1)
            try:
                _, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                pytest.fail("train serve still waits for the stalled upload a minute after its stop")
            assert time.monotonic() - stopped < 30
            assert "Traceback" not in err and "CancelledError" not in err, err
            # a server told to stop has done its job: exit 0, as README says (before: "error: terminated (SIGTERM);
            # re-run the same command to continue", exit 143, a failure to a service manager)
            assert err.strip().splitlines()[-1] == (
                "stopped (SIGTERM)" if signals == (signal.SIGTERM,) else "stopped (Ctrl-C)"
            ), err
            assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _stalled_upload(port: int, sent: bytes = b"x" * 1000) -> socket.socket:
    """A phone whose 19 MB upload stalls after its first bytes."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = b"--b\r\nContent-Disposition: form-data; name=file; filename=p.jpg\r\n\r\n"
    sock.sendall(
        b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: 19000000\r\n\r\n" + head + sent
    )
    return sock


def test_a_busy_server_refuses_an_upload_before_reading_it(model):
    """Before: the 429 came after the body had been read, so 40 uploads of 19 MB sat in memory at once with
    --queue 8 (1.9 GB). Now uploads in progress count against the queue: a third, with two stalled, is
    answered 429 before it sends its photo."""
    with Server(create_app(model, ServeSettings(queue_size=2))) as url:
        port = int(url.rsplit(":", 1)[1])
        stalled = [_stalled_upload(port) for _ in range(2)]
        try:
            time.sleep(0.5)
            with _stalled_upload(port, sent=b"") as third:  # headers only: its photo is never sent
                third.settimeout(10)
                answer = b""
                while b"}" not in answer and (chunk := third.recv(4096)):  # the status, then the JSON body
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 429"), answer[:80]
            assert b"server busy" in answer
        finally:
            for s in stalled:
                s.close()
        deadline = time.monotonic() + 10  # the stalled ones gone, the server takes photos again
        while (r := post(url, new_jpeg("mpox"))).status_code == 429 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert r.status_code == 200, r.text


def test_headers_sent_a_byte_at_a_time_are_cut_off(model):
    """Before: uvicorn cancels its keep-alive timer on every byte and gives headers no limit, so a client
    sending a header byte every few seconds held its connection for good (slowloris)."""
    with Server(create_app(model), headers_s=1.5) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.settimeout(0.3)
            start, closed = time.monotonic(), False
            for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
                try:
                    sock.sendall(bytes([byte]))
                    closed = sock.recv(1) == b""
                except TimeoutError:
                    continue
                except OSError:
                    closed = True
                if closed or time.monotonic() - start > 8:
                    break
            assert closed and time.monotonic() - start < 5, "the slow headers still held the connection"
        with socket.create_connection(("127.0.0.1", port)) as idle:  # a connection that never sends a byte
            idle.settimeout(5)
            assert idle.recv(1) == b""
        # a request whose headers arrive in time, and the next on the same connection, are answered
        with httpx.Client() as client:
            for _ in range(2):
                assert client.get(f"{url}/healthz").status_code == 200
                time.sleep(1)


def test_a_busy_port_is_one_line_before_the_model_loads(triage_run):
    """Before: "serving … on" was printed, then uvicorn's [Errno 98] after the ~10 s model load."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _serve(str(triage_run), "--port", str(port))
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 1 and len(err.strip().splitlines()) == 1, err
    assert f"127.0.0.1:{port}" in err and "in use" in err and "serving" not in err


def test_a_name_with_two_addresses_is_listened_on_at_both(monkeypatch):
    """`--host localhost` where /etc/hosts names ::1 first: uvicorn listened on ::1 and 127.0.0.1, and binding
    the first address alone would refuse http://127.0.0.1/."""
    from train.serve import listen

    real = socket.getaddrinfo

    def both(host, port, *args, **kwargs):
        if host != "localhost":
            return real(host, port, *args, **kwargs)
        return real("::1", port, *args, **kwargs) + real("127.0.0.1", port, *args, **kwargs)

    monkeypatch.setattr(listen.socket, "getaddrinfo", both)
    socks = listen.bind("localhost", 0)
    try:
        assert [s.getsockname()[0] for s in socks] == ["::1", "127.0.0.1"]
        port = socks[0].getsockname()[1]
        assert socks[1].getsockname()[1] == port
        for address in ("::1", "127.0.0.1"):
            socket.create_connection((address, port), timeout=5).close()
    finally:
        for s in socks:
            s.close()
