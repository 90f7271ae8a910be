"""A real Label Studio server for the test suite (pytest plugin; register in conftest `pytest_plugins`).

Fixtures: `studio_server` (session) -> StudioFixture with a running server, an admin
token and three clinician accounts with their own tokens; `studio_workspace` -> a fresh
workspace whose images that server can serve.

`label-studio init` takes ~20 s, so one initialised data dir is cached per Label Studio
install under the system temp folder and copied per session (start-up then ~3-5 s).
When the executable is missing the tests skip, except under CI=true where they fail.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from curate.label.client import add_user
from curate.studio.server import EmbeddedServer, find_executable, free_port, init_data_dir

ADMIN_EMAIL = "steward@curate.test"
ADMIN_PASSWORD = "steward-Pa55word!"
ADMIN_TOKEN = "curate-test-admin-token-0123456789abcdef"
RATERS = ("a@clinic.test", "b@clinic.test", "c@clinic.test")


@dataclass
class StudioFixture:
    url: str
    admin_token: str
    base: Path  # the server's local-files document root; workspaces live under it
    server: EmbeddedServer
    tokens: dict[str, str] = field(default_factory=dict)  # rater email -> their own API token


def _require_executable() -> Path:
    exe = find_executable()
    if exe is None:
        msg = "Label Studio not installed: set CURATE_LABEL_STUDIO to its label-studio executable"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


def _template(exe: Path) -> Path:
    real = exe.resolve()
    key = hashlib.sha256(f"{real}:{real.stat().st_mtime_ns}".encode()).hexdigest()[:16]
    tpl = Path(tempfile.gettempdir()) / f"mpox-curate-ls-template-{key}"
    lock = tpl.with_suffix(".lock")
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if not (tpl / "label_studio.sqlite3").exists():
            shutil.rmtree(tpl, ignore_errors=True)
            work = Path(tempfile.mkdtemp(prefix="mpox-curate-ls-init-"))
            init_data_dir(work / "data", work, ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_TOKEN)
            shutil.move(str(work / "data"), tpl)
            shutil.rmtree(work, ignore_errors=True)
    return tpl


@pytest.fixture(scope="session")
def studio_server(tmp_path_factory) -> StudioFixture:
    exe = _require_executable()
    tpl = _template(exe)
    base = tmp_path_factory.mktemp("studio")
    home = base / "server"
    shutil.copytree(tpl, home / "studio" / "data")
    server = EmbeddedServer(home, files_root=base)
    info = server.start(port=free_port(), timeout=120)
    fx = StudioFixture(url=info.url, admin_token=ADMIN_TOKEN, base=base, server=server)
    try:
        for email in RATERS:
            fx.tokens[email] = add_user(info.url, ADMIN_TOKEN, email, f"{email.split('@')[0]}-Pa55word!")
        yield fx
    finally:
        server.stop()


@pytest.fixture
def studio_workspace(studio_server, monkeypatch, request):
    """A fresh workspace under the server's document root, with the admin key in the environment."""
    from curate.workspace import Workspace

    name = "ws-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", studio_server.admin_token)
    monkeypatch.setenv("CURATE_STUDIO_DOCUMENT_ROOT", str(studio_server.base))
    return Workspace.init(studio_server.base / name)
