"""A real Label Studio server for the test suite (pytest plugin; register in conftest `pytest_plugins`).

Fixtures: `studio_server` (session) -> StudioFixture: three clinicians, each with a server
of their own (as `curate studio add-user` makes them), the steward's admin token that opens
all three, and each clinician's own token; `studio_workspace` -> a fresh workspace whose
images those servers can serve.

`label-studio init` takes ~20 s, so one initialised data dir is cached per Label Studio
install under the system temp folder and adopted as the fleet's template; the three servers
are copies of it started in parallel (~5-10 s).
When the executable is missing the tests skip, except under CI=true where they fail.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from curate.label.client import StudioClient, add_user
from curate.label.servers import Servers, reset_invite
from curate.net import free_port
from curate.studio.fleet import Fleet
from curate.studio.server import find_executable, init_data_dir

ADMIN_EMAIL = "steward@curate.test"
ADMIN_PASSWORD = "steward-Pa55word!"
ADMIN_TOKEN = "curate-test-admin-token-0123456789abcdef"
RATERS = ("a@clinic.test", "b@clinic.test", "c@clinic.test")


@dataclass
class StudioFixture:
    """Three clinicians, each on a Label Studio server of their own (curate.studio.fleet),
    as `curate studio` runs them."""

    urls: dict[str, str]  # clinician email -> their server
    admin_token: str  # the steward's key: opens every server
    base: Path  # the servers' local-files document root; workspaces live under it
    fleet: Fleet
    tokens: dict[str, str] = field(default_factory=dict)  # clinician email -> their own API token
    passwords: dict[str, str] = field(default_factory=dict)

    def servers(self) -> Servers:
        return Servers(self.admin_token, dict(self.urls), explicit=True)

    def client(self, email: str) -> StudioClient:
        """The steward on `email`'s server."""
        return StudioClient(self.urls[email], self.admin_token)

    def url_args(self) -> list[str]:
        return [a for e, u in self.urls.items() for a in ("--url", f"{e}={u}")]


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


def password_of(email: str) -> str:
    return f"{email.split('@')[0]}-Pa55word!"


@contextmanager
def studio_fleet(exe: Path, base: Path) -> Iterator[StudioFixture]:
    """Three clinicians' servers under `base`, started and with accounts; stopped on exit
    (also used by bench/faults.py)."""
    tpl = _template(exe)
    fleet = Fleet(base / "server", files_root=base)
    fleet.adopt_template(tpl)
    clinicians = [fleet.add(email, port=free_port()) for email in RATERS]
    try:
        fleet.start_all(timeout=180)
        fx = StudioFixture(urls={c.email: c.url for c in clinicians}, admin_token=ADMIN_TOKEN, base=base, fleet=fleet)
        for c in clinicians:
            fx.passwords[c.email] = password_of(c.email)
            fx.tokens[c.email] = add_user(c.url, ADMIN_TOKEN, c.email, fx.passwords[c.email])
            reset_invite(c.url, ADMIN_TOKEN)
        yield fx
    finally:
        fleet.stop_all()


@pytest.fixture(scope="session")
def studio_server(tmp_path_factory) -> StudioFixture:
    with studio_fleet(_require_executable(), tmp_path_factory.mktemp("studio")) as fx:
        yield fx


@pytest.fixture
def studio_workspace(studio_server, monkeypatch, request):
    """A fresh workspace under the server's document root, with the admin key in the environment."""
    from curate.workspace import Workspace

    name = "ws-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", studio_server.admin_token)
    monkeypatch.setenv("CURATE_STUDIO_DOCUMENT_ROOT", str(studio_server.base))
    monkeypatch.delenv("CURATE_WORKSPACE", raising=False)
    return Workspace.init(studio_server.base / name)
