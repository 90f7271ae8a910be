"""`train serve --login USER` and `--tls-cert/--tls-key` as a clinic without a proxy starts them: the real
`train serve` process on 127.0.0.1, httpx over HTTP and HTTPS, the hidden password prompt on a terminal, and
the one-line refusals of a wrong start."""

import datetime
import ipaddress
import os
import re
import ssl
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
from browser import chromium
from test_train_serve import model, photos, post  # noqa: F401 - fixtures and the upload helper, shared
from typer.testing import CliRunner

from curate.net import free_port
from train.cli import app
from train.photos import Limits, decode
from train.serve.app import HEADERS
from train.serve.auth import CHALLENGE, PASSWORD_ENV

pytestmark = [pytest.mark.torch, pytest.mark.slow]
USER, PASSWORD = "clinic", "corrëct horse battery"  # not ASCII: browsers send UTF-8, as the challenge asks
ROOT = str(Path(__file__).resolve().parents[1])
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    env.update(PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]), NO_COLOR="1", TERM="dumb")
    env.update(extra)
    return env


class Output:
    """What the process writes, collected by a thread as it comes (a pipe or a terminal left unread blocks it)."""

    def __init__(self, fd: int):
        self.fd, self.chunks = fd, []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            try:
                data = os.read(self.fd, 4096)
            except OSError:  # a terminal's other end closed: EIO
                return
            if not data:
                return
            self.chunks.append(data)

    @property
    def text(self) -> str:
        return ANSI.sub("", b"".join(self.chunks).decode(errors="replace"))

    @property
    def flat(self) -> str:  # lines a terminal's width wrapped, joined again
        return " ".join(self.text.split())

    def wait_for(self, what: str, proc, seconds=120):
        deadline = time.time() + seconds
        while what not in self.text:
            assert proc.poll() is None and time.time() < deadline, f"no {what!r} in {self.text!r}"
            time.sleep(0.05)


@contextmanager
def serving(run, *options, password: str | None = PASSWORD, typed: str | None = None, verify=None):
    """`train serve RUN --port P OPTIONS` on 127.0.0.1: the password in its environment, or `typed` at its prompt on
    a terminal; yields (process, base URL, output) once /healthz answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "train.cli", "serve", str(run), "--port", str(port), *options]
    env = _env() if password is None else _env(**{PASSWORD_ENV: password})
    if typed is None:
        read, write = os.pipe()
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=write, stderr=write)
    else:  # a terminal of its own, in a session of its own: getpass reads it, never the test runner's terminal
        read, write = os.openpty()
        proc = subprocess.Popen(cmd, env=env, stdin=write, stdout=write, stderr=write, start_new_session=True)
    os.close(write)
    out = Output(read)
    scheme = "https" if verify is not None else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        if typed is not None:
            for prompt in (f"password for {USER}: ", "Repeat for confirmation: "):
                out.wait_for(prompt, proc)  # getpass writes the space after switching the echo off
                os.write(read, typed.encode() + b"\n")
        deadline = time.time() + 300
        while True:
            assert proc.poll() is None and time.time() < deadline, f"train serve did not start: {out.text}"
            try:
                if httpx.get(f"{url}/healthz", timeout=2, verify=verify or True).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        yield proc, url, out
    finally:
        proc.terminate()
        proc.wait(30)
        out.thread.join(10)
        os.close(read)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (0600): with `cryptography` when installed, else openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"]
            + ["-addext", "subjectAltName=IP:127.0.0.1"],
            check=True,
            capture_output=True,
        )
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.UTC)
        built = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(private, hashes.SHA256())
        )
        cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    key.chmod(0o600)
    return cert, key


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def login_server(triage_run):
    """`TRAIN_SERVE_PASSWORD=… train serve RUN --login clinic` over plain HTTP on 127.0.0.1."""
    with serving(triage_run, "--login", USER, "--lock-after", "0") as running:  # many wrong logins ahead
        yield running


def _refused(r: httpx.Response) -> None:
    assert r.status_code == 401, (r.status_code, r.text[:300])
    assert r.headers["www-authenticate"] == CHALLENGE
    assert r.json() == {"error": "login required: wrong or missing user name or password"}  # the same for all
    for name, value in HEADERS.items():
        assert r.headers[name] == value, name


def test_every_route_but_healthz_needs_the_login(login_server, model, photos):  # noqa: F811 - the fixtures
    _proc, url, _out = login_server
    data = photos[0].read_bytes()
    wrong = [None, (USER, "wrong"), ("someone", PASSWORD), (USER, PASSWORD + "x"), (USER.upper(), PASSWORD)]
    for auth in wrong:
        with httpx.Client(auth=auth, timeout=60) as c:
            for r in (c.get(url), c.get(f"{url}/api/card"), post(url, data, client=c), c.get(f"{url}/nope")):
                _refused(r)
            head = c.head(url)  # no body to a HEAD
            assert head.status_code == 401 and head.headers["www-authenticate"] == CHALLENGE
            _refused(c.post(f"{url}/healthz"))  # only GET /healthz is open
    for header in ("Basic !!!", "Basic " + "Y2xpbmlj", "Bearer x", "Basic"):  # malformed, no colon, other schemes
        _refused(httpx.get(url, headers={"Authorization": header}))
    health = httpx.get(f"{url}/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert httpx.head(f"{url}/healthz").status_code == 200  # an uptime monitor's probe: before, 405 ("down")
    with httpx.Client(auth=(USER, PASSWORD), timeout=60) as c:
        page = c.get(url)
        assert page.status_code == 200 and 'type="file"' in page.text and page.headers["cache-control"] == "no-store"
        assert c.get(f"{url}/api/card").status_code == 200
        r = post(url, data, gradcam=True, client=c)
        assert r.status_code == 200, r.text
        body, ref = r.json(), model.triage([decode(data, Limits())])[0]
        assert body["p_positive"] == pytest.approx(ref.p_calibrated, abs=1e-4) and body["decision"] == ref.decision
        assert body["gradcam_jpeg"].startswith("data:image/jpeg;base64,")
        assert c.get(f"{url}/nope").status_code == 404  # past the login, the app's own answers


def test_an_address_that_guesses_is_locked_out_but_a_browsers_first_request_is_not_a_guess(triage_run):
    """`--lock-after 3`: requests without credentials (how a browser fetches the challenge) never count; a right
    login clears the count; the third wrong one in 5 minutes locks the address: 429 with Retry-After, the
    right password included, nothing said about the credentials; /healthz stays open."""
    with serving(triage_run, "--login", USER, "--lock-after", "3") as (_proc, url, _out):
        for _ in range(5):
            assert httpx.get(url).status_code == 401
        assert httpx.get(url, auth=(USER, PASSWORD)).status_code == 200
        for _ in range(2):
            assert httpx.get(url, auth=(USER, "guess")).status_code == 401
        assert httpx.get(url, auth=(USER, PASSWORD)).status_code == 200  # the count starts again
        for _ in range(3):
            assert httpx.get(url, auth=(USER, "guess")).status_code == 401
        for auth in ((USER, PASSWORD), (USER, "guess"), None):
            r = httpx.get(f"{url}/api/card", auth=auth)
            assert r.status_code == 429, (auth, r.status_code)
            assert 290 <= int(r.headers["retry-after"]) <= 300
            assert r.json() == {
                "error": f"too many wrong logins from this address: try again in {r.headers['retry-after']} s"
            }
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_a_lockout_ends_when_its_oldest_wrong_login_is_old_enough():
    from train.serve.auth import Lockout

    now = [1000.0]
    lock = Lockout(3, 300.0, clock=lambda: now[0])
    for t in (0, 100, 200):
        now[0] = 1000.0 + t
        assert lock.wait("a") == 0
        lock.failed("a")
    assert lock.wait("a") == pytest.approx(100.0) and lock.wait("b") == 0  # until the first is 300 s old
    now[0] = 1300.0
    assert lock.wait("a") == 0  # two left in the window
    lock.failed("a")
    assert lock.wait("a") == pytest.approx(100.0)  # 100 s: the wrong login of t = 100 is the oldest now
    lock.passed("a")
    assert lock.wait("a") == 0 and not Lockout(0, 300.0).wait("a")


def test_the_password_is_neither_on_the_command_line_nor_in_the_output(login_server):
    proc, url, out = login_server
    for _ in range(3):
        assert httpx.get(url, auth=(USER, "guess")).status_code == 401
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
    assert b"--login" in cmdline and USER.encode() in cmdline
    assert not any(PASSWORD.encode() in arg or b"guess" in arg for arg in cmdline)
    assert "login required" in out.flat and f"on {url}/" in out.flat
    assert PASSWORD not in out.text and "guess" not in out.text and "401" not in out.text


def test_the_page_works_in_a_browser_given_the_login(login_server, photos):  # noqa: F811
    """Chromium answers the Basic challenge; the page's own fetch to /api/predict then passes too."""
    _proc, url, _out = login_server
    with chromium() as browser:
        with pytest.raises(pytest.importorskip("playwright.sync_api").Error, match="AUTH"):  # no one to ask: refused
            browser.new_context().new_page().goto(url)
        page = browser.new_context(http_credentials={"username": USER, "password": PASSWORD}).new_page()
        assert page.goto(url).status == 200
        page.set_input_files("#photo", str(photos[0]))
        page.click("#go")
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        assert page.inner_text("#prob").endswith(" %")


def test_https_with_a_typed_password(triage_run, tls_files, photos):  # noqa: F811
    """`--tls-cert/--tls-key` with the password typed at the hidden prompt (asked twice, never echoed): HTTPS
    answers with that certificate and password, plain HTTP to the same port gets nothing."""
    cert, key = tls_files
    trusted = ssl.create_default_context(cafile=str(cert))
    options = ["--login", USER, "--tls-cert", str(cert), "--tls-key", str(key), "--engine", "torch"]
    with serving(triage_run, *options, password=None, typed=PASSWORD, verify=trusted) as (_proc, url, out):
        assert url.startswith("https://") and f"on {url}/" in out.flat
        assert httpx.get(f"{url}/healthz", verify=trusted).json()["engine"] == "torch"
        _refused(httpx.get(url, verify=trusted))
        with httpx.Client(verify=trusted, auth=(USER, PASSWORD), timeout=60) as c:
            r = post(url, photos[0].read_bytes(), client=c)
            assert r.status_code == 200 and r.json()["decision"] in ("refer", "routine"), r.text
        with pytest.raises(httpx.ConnectError):  # not a certificate the system trusts: it is this one
            httpx.get(f"{url}/healthz")
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https://", "http://") + "/healthz", timeout=10)
        text = out.text
    assert PASSWORD not in text and "warning" not in text and "Traceback" not in text, text


def _start(run, *options, env=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "train.cli", "serve", str(run), *map(str, options)]
    return subprocess.run(cmd, env=env or _env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)


def test_a_wrong_start_is_one_line(triage_run, tls_files, tmp_path):
    """Each refused before torch is imported or a port opened: exit 2 for a lone TLS option, else one red line
    naming the file or the variable, exit 1, never a traceback."""
    cert, key = tls_files
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    other_cert, other_key = self_signed(tmp_path)
    with_password = _env(**{PASSWORD_ENV: PASSWORD})
    for options, code, words in [
        (["--tls-cert", cert], 2, "--tls-key"),
        (["--tls-key", key], 2, "--tls-cert"),
        (["--tls-cert", tmp_path / "missing.pem", "--tls-key", key], 1, f"{tmp_path / 'missing.pem'}: cannot read"),
        (["--tls-cert", tmp_path, "--tls-key", key], 1, f"--tls-cert {tmp_path}: cannot read"),
        (["--tls-cert", junk, "--tls-key", key], 1, f"--tls-cert {junk}: not a PEM certificate"),
        (["--tls-cert", cert, "--tls-key", junk], 1, f"--tls-key {junk}: not a PEM private key"),
        (["--tls-cert", cert, "--tls-key", other_key], 1, f"--tls-key {other_key}: not the private key of"),
        (["--login", USER], 1, f"no password; put it in {PASSWORD_ENV}"),  # no password and no terminal to ask on
        (["--login", "a:b"], 1, "--login: give a user name without ':'"),
    ]:
        res = _start(triage_run, *options, env=with_password if "a:b" in options else None)
        text = " ".join(res.stderr.split())
        assert res.returncode == code and words in text, (options, res.returncode, res.stderr)
        assert "Traceback" not in res.stderr + res.stdout and PASSWORD not in res.stderr
        if code == 1:
            assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("error:"), res.stderr
    res = _start(triage_run, "--login", USER, env=_env(**{PASSWORD_ENV: ""}))
    assert res.returncode == 1 and res.stderr.strip().splitlines() == [
        f"error: --login: the password is empty; set {PASSWORD_ENV} to a password"
    ]
    other_key.chmod(0o644)  # readable by others: a warning, then (here) the missing password stops it
    res = _start(triage_run, "--tls-cert", other_cert, "--tls-key", other_key, "--login", USER)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 2, res.stderr
    assert lines[0] == f"warning: --tls-key {other_key} can be read by other users (mode 0644): chmod 600 it"


def test_the_warning_for_other_machines_names_what_is_missing(tls_files, tmp_path):
    """Listening beyond loopback: no warning with a login and HTTPS, the unencrypted password without TLS, the
    built-in alternative to a proxy without either (each stopped by a missing run before a port opens)."""
    cert, key = tls_files
    tls = ["--tls-cert", str(cert), "--tls-key", str(key)]
    runner = CliRunner()
    threads = ["--threads", str(torch.get_num_threads())]  # in this process: leave torch's setting as it is
    said = {}
    for name, options in {"both": ["--login", USER, *tls], "login": ["--login", USER], "neither": []}.items():
        res = runner.invoke(
            app,
            ["serve", str(tmp_path / "no-run"), "--host", "0.0.0.0", *threads, *options],
            env={PASSWORD_ENV: PASSWORD},
        )
        assert res.exit_code == 1 and "is not a run folder" in res.output, res.output
        said[name] = [line for line in res.output.splitlines() if line.startswith("warning:")]
    assert said["both"] == []
    assert len(said["login"]) == 1 and "password and the photos cross the network unencrypted" in said["login"][0]
    assert "--tls-cert and --tls-key" in said["login"][0]
    assert len(said["neither"]) == 1 and "without a login" in said["neither"][0]
    assert "--login and --tls-cert/--tls-key" in said["neither"][0] and "reverse proxy" in said["neither"][0]


def test_an_address_not_of_this_machine_is_refused_without_the_exposure_warning(tmp_path):
    """Before: `--host 999.1.1.1` warned that anyone reaching it could upload photos, then said the address is
    not this machine's; the warning is for a server that listens."""
    threads = ["--threads", str(torch.get_num_threads())]
    res = CliRunner().invoke(app, ["serve", str(tmp_path / "no-run"), "--host", "999.1.1.1", *threads])
    assert res.exit_code == 1, res.output
    assert "warning:" not in res.output and "--host 999.1.1.1: not an address of this machine" in res.output


def test_a_guesser_cannot_name_another_address_to_escape_the_lockout(triage_run):
    """Before: uvicorn took a loopback client's X-Forwarded-For as its address, so a guesser who named a new one
    each time got 401 eight times and never 429."""
    with serving(triage_run, "--login", USER, "--lock-after", "3") as (_proc, url, _out):
        codes = [
            httpx.get(
                f"{url}/api/card", auth=(USER, f"guess{i}"), headers={"X-Forwarded-For": f"10.0.0.{i}"}
            ).status_code
            for i in range(5)
        ]
        assert codes == [401, 401, 401, 429, 429], codes
