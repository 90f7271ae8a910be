"""Fixtures shared by the suite: workspaces on real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# pytest-xdist's workers (scripts/test-all.sh) find COLUMNS=80 and LINES=24 in their environment (seen with xdist
# 3.8 and execnet 2.1), as if they wrote to an 80-column terminal, and rich reads them as a console is made: dropped
# here, before anything imports curate (so the fixtures import it where they use it), as the suite's output tests
# are about output that is not a terminal.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)

if TYPE_CHECKING:
    from curate.workspace import Workspace

# Fixture modules: the suite's local search-engine server and its real Label Studio server.
pytest_plugins = ["engine_server", "studio_server"]

PG_BIN = Path(os.environ.get("CURATE_PG_BIN", "/usr/lib/postgresql/15/bin"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """A throwaway PostgreSQL server on 127.0.0.1; yields a URL without a database name."""
    if not (PG_BIN / "initdb").exists():
        if IN_CI:
            pytest.fail(f"PostgreSQL binaries not found in {PG_BIN}")
        pytest.skip("PostgreSQL server binaries not installed")
    # outside pytest's own temp root: a second pytest session (another checkout) resets that root to 0700,
    # which would lock the postgres user out of its data directory mid-run
    base = Path(tempfile.mkdtemp(prefix="curate-test-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
        os.chmod(base, 0o700)
    subprocess.run(
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]),
        check=True,
        capture_output=True,
    )
    from curate.net import free_port

    port = free_port()
    log = base / "pg.log"
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-o",
                f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
            ]
            + ["start"]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database on the suite's PostgreSQL server."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return f"{pg_server}/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """Catalogue URL: each catalogue test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalogue.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def ws(tmp_path, db_url) -> Workspace:
    """A fresh workspace whose catalogue lives on the parametrised backend."""
    from curate.workspace import Workspace

    return Workspace.init(tmp_path / "ws", db_url=db_url)


@pytest.fixture
def sqlite_ws(tmp_path) -> Workspace:
    """A fresh workspace on SQLite only (for tests about files and processes, not the backend)."""
    from curate.workspace import Workspace

    return Workspace.init(tmp_path / "ws")


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


@pytest.fixture(scope="session")
def triage_run(tmp_path_factory):
    """One finished `train run` (ResNet-18, random weights, 32 px) shared by the triage, export and serve tests."""
    pytest.importorskip("torch")
    from train_fixtures import tiny_run

    return tiny_run(tmp_path_factory.mktemp("triage"))
