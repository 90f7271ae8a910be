"""`curate studio` from a bare start: steward set-up, a clinician's own server, status, stop.

Runs the real `label-studio init` once (~20-60 s), as a first-time steward would.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from studio_server import _require_executable
from typer.testing import CliRunner

from curate.cli import app
from curate.net import free_port
from curate.studio.fleet import Fleet, slug_for

pytestmark = [pytest.mark.studio, pytest.mark.slow]
TOKEN = "cli-steward-token-0123456789abcdef0123"


def test_bare_start_then_a_clinician_server(sqlite_ws, monkeypatch):
    _require_executable()
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", TOKEN)
    monkeypatch.delenv("CURATE_STEWARD_EMAIL", raising=False)
    # the privacy probe's case: the steward's other secrets reached every Label Studio server's environment
    monkeypatch.setenv("PGPASSWORD", "pg-env-secret")
    monkeypatch.setenv("FLICKR_API_KEY", "flickr-env-secret")
    monkeypatch.setenv("DJANGO_DB", "postgresql")  # Label Studio would have taken its own database elsewhere
    w = ["-w", str(sqlite_ws.root)]
    fleet = Fleet(sqlite_ws.root)
    try:
        # the steward is an admin on every clinician's server: before, a password "a" and a key "abc" were taken (Label
        # Studio kept a random key of its own for "abc", and the steward had none that worked)
        weak = [("abc", "steward-Pa55word!", "needs 20 or more"), (TOKEN, "a", "must be 8 to 64 characters")]
        for key, password, said in weak:
            monkeypatch.setenv("LABEL_STUDIO_API_KEY", key)
            out = CliRunner().invoke(app, ["studio", "start", *w], input=f"Steward@Clinic.test\n{password}\n")
            assert out.exit_code == 1 and said in " ".join(out.output.split()), out.output
            assert not fleet.initialised
        monkeypatch.delenv("LABEL_STUDIO_API_KEY")
        # bare start: the steward's email is asked for, the password read from piped stdin without a getpass warning;
        # no key in the environment: one is made and given once, here in --json's object for a script to keep
        start = ["studio", "start", "--json", *w]
        out = CliRunner().invoke(app, start, input="Steward@Clinic.test\nsteward-Pa55word!\n")
        assert out.exit_code == 0, out.output
        assert "GetPassWarning" not in out.output and fleet.initialised
        started = json.loads(out.stdout[out.stdout.index("{") :])  # after CliRunner's echo of the typed email
        token = started["api_key"]
        assert started["servers"] == [] and len(token) >= 40 and "Steward API key" not in out.output
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
        port = free_port()
        add = ["studio", "add-user", "a@clinic.test", "--generate", "--port", str(port), "--json", *w]
        out = CliRunner().invoke(app, add)
        assert out.exit_code == 0, out.output
        url = f"http://127.0.0.1:{port}"
        made = json.loads(out.stdout)  # the generated password, once, for a script to hand over
        assert made["email"] == "a@clinic.test" and made["url"] == url and len(made["password"]) >= 12
        # the clinician's server: its own folder (no email in any name), its own secret key, two accounts only
        names = [p.name for p in (sqlite_ws.root / "studio").rglob("*")]
        assert slug_for("a@clinic.test") in names and not any("@" in n for n in names)
        env = (sqlite_ws.root / "studio" / slug_for("a@clinic.test") / "data" / ".env").read_text()
        template_env = fleet.template / ".env"
        assert "SECRET_KEY" in env and (not template_env.exists() or env != template_env.read_text())
        users = httpx.get(url + "/api/users/", headers={"Authorization": f"Token {token}"}).json()
        assert sorted(u["email"] for u in users) == ["a@clinic.test", "steward@clinic.test"]
        (running,) = [s.running for s in fleet.status() if s.running]
        environ = Path(f"/proc/{running.pid}/environ").read_bytes()
        assert b"env-secret" not in environ and b"DJANGO_DB" not in environ and b"\0PATH=" in b"\0" + environ
        status = json.loads(CliRunner().invoke(app, ["studio", "status", "--json", *w]).stdout)
        assert [(s["clinician"], s["url"], s["healthy"]) for s in status["servers"]] == [("a@clinic.test", url, True)]
        # a key lost: shown again, from the template (no password, no server) and from a server's login
        monkeypatch.delenv("LABEL_STUDIO_API_KEY")
        out = CliRunner().invoke(app, ["studio", "key", "--json", *w])
        assert out.exit_code == 0 and json.loads(out.stdout) == {"api_key": token}, out.output
        out = CliRunner().invoke(app, ["studio", "key", *w])
        assert out.exit_code == 0 and f"export LABEL_STUDIO_API_KEY={token}" in out.stdout, out.output
        login = ["studio", "key", "--url", url, "--admin-email", "Steward@Clinic.test", "--json"]  # no workspace
        out = CliRunner().invoke(app, login, input="steward-Pa55word!\n")
        assert out.exit_code == 0 and json.loads(out.stdout) == {"api_key": token}, out.output
        out = CliRunner().invoke(app, login, input="not-the-Pa55word!\n")
        assert out.exit_code == 1 and token not in out.output, out.output
        assert f"Label Studio at {url} refused the email or password of steward@clinic.test" in " ".join(
            out.output.split()
        )
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", "x" * 40)  # a wrong key: the refusal says where the right one is
        out = CliRunner().invoke(app, ["studio", "add-user", "z@clinic.test", "--generate", "--url", url, *w])
        assert out.exit_code == 1 and "refused the API key" in out.output, out.output
        assert "`curate studio key` shows the steward's key again" in " ".join(out.output.split())
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
        again = CliRunner().invoke(app, ["studio", "add-user", "a@clinic.test", "--generate", *w])
        assert again.exit_code == 1 and "already has an account" in again.output
        # another clinician is never put on a's server (before: --url did, and b could read a's labels)
        onto_a = CliRunner().invoke(app, ["studio", "add-user", "b@clinic.test", "--generate", "--url", url, *w])
        assert onto_a.exit_code == 1 and "already holds 1 account(s) besides the steward's" in onto_a.output, (
            onto_a.output
        )
        users = httpx.get(url + "/api/users/", headers={"Authorization": f"Token {token}"}).json()
        assert sorted(u["email"] for u in users) == ["a@clinic.test", "steward@clinic.test"]
        # before: each became a registered clinician with a running server, and Label Studio's refusal spoke of
        # passwords; the steward's own address got a "clinician" server too
        for bad, said in [
            ("a@b", "is not an email address"),
            ("x y@clinic.org", "is not an email address"),
            ("a@clinic.org,b@clinic.org", "is not an email address"),
            ("Steward@Clinic.test", "is the steward's own account"),
        ]:
            out = CliRunner().invoke(app, ["studio", "add-user", bad, "--generate", *w])
            assert out.exit_code == 1 and said in " ".join(out.output.split()), out.output
        assert [c.email for c in fleet.clinicians()] == ["a@clinic.test"]
        assert [s.name for s in fleet.status() if s.running] == ["a@clinic.test"]
        # stop stops all; start starts all again on the same port
        assert "stopped 1 server(s)" in CliRunner().invoke(app, ["studio", "stop", *w]).output
        out = CliRunner().invoke(app, ["studio", "start", *w])
        assert out.exit_code == 0 and f"a@clinic.test: {url}" in out.output, out.output
        assert json.loads(CliRunner().invoke(app, ["studio", "stop", "--json", *w]).stdout) == {
            "stopped": ["a@clinic.test"]
        }
        out = CliRunner().invoke(app, ["studio", "start", "--json", *w])
        assert out.exit_code == 0, out.output
        started = json.loads(out.stdout)  # the key was set in the environment: none made, none shown
        assert started["api_key"] is None and [(s["clinician"], s["url"]) for s in started["servers"]] == [
            ("a@clinic.test", url)
        ]
        assert started["servers"][0]["pid"] == next(s.running.pid for s in fleet.status() if s.running)
    finally:
        fleet.stop_all()


def test_key_before_any_set_up_says_how(sqlite_ws):
    out = CliRunner().invoke(app, ["studio", "key", "-w", str(sqlite_ws.root)])
    assert out.exit_code == 1 and "no Label Studio set up" in out.output and "curate studio start" in out.output
