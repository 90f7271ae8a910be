"""Local users, concurrent stewards, killed runs, secrets and odd input: every case a clear outcome."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import images as I
import pytest
from conftest import wait_for
from sqlmodel import select
from train_fixtures import write_export
from workspaces import read_only_view

from curate.errors import WorkspaceError
from curate.lock import workspace_lock
from curate.redact import redact_text
from curate.workspace import Workspace
from db.models import CommandRun, Image, Provenance, Rejection

REPO = Path(__file__).resolve().parents[1]


def curate(*args, env=None, check=False, timeout=120, **kw) -> subprocess.CompletedProcess:
    """The real command line in a child process (umask 022, as a steward's shell has it)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "300"}
    full_env.pop("CURATE_DB_URL", None)  # the caller's own, not one a test passes in `env`
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "curate", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        preexec_fn=lambda: os.umask(0o022),
        **kw,
    )
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def photos(folder: Path, n: int, start: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        (folder / f"p{i:03d}.jpg").write_bytes(I.jpeg(i))
    return folder


def modes(root: Path) -> dict[str, int]:
    out = {}
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink():
            out[p.relative_to(root).as_posix() or "."] = stat.S_IMODE(p.lstat().st_mode)
    return out


# --- privacy on disk --------------------------------------------------------------------------


def test_everything_the_cli_writes_is_private_and_init_tightens_what_exists(tmp_path):
    root = tmp_path / "ws"
    root.mkdir(mode=0o755)
    (root / "exports").mkdir(mode=0o755)
    (root / "exports" / "old-notes.txt").write_text("x")
    os.chmod(root / "exports" / "old-notes.txt", 0o644)
    curate("init", root, check=True)
    curate("ingest", photos(tmp_path / "in", 3), "--source", "clinic", "-w", root, check=True)
    curate("dedupe", "--min-side", "1", "--no-review", "-w", root, check=True)  # its local features kept on disk
    found = modes(root)
    assert {"catalogue.db", "exports/old-notes.txt", "curate.toml", ".curate.lock"} <= set(found)
    assert "cache/dedupe-features/cache.db" in found
    leaky = {p: oct(m) for p, m in found.items() if m & 0o077}
    assert not leaky, leaky
    assert found["."] == 0o700 and found["exports"] == 0o700

    status = curate("status", "-w", root, check=True)
    assert "readable by other local users" not in status.stdout
    os.chmod(root / "catalogue.db", 0o644)
    os.chmod(root / "reports", 0o755)
    status = curate("status", "-w", root, check=True)
    assert "warning: readable by other local users" in status.stdout and "catalogue.db" in status.stdout
    assert {"reports/", "catalogue.db"} <= {
        e["path"] for e in json.loads(curate("status", "-w", root, "--json", check=True).stdout)["exposed_paths"]
    }
    curate("init", root, check=True)
    assert "readable by other local users" not in curate("status", "-w", root, check=True).stdout


def test_a_workspace_left_open_is_closed_before_a_command_writes_into_it(tmp_path):
    """A probe's workspace made by an older version stayed 0755 with its catalogue 0644 while ingest, dedupe and
    export wrote photos into it; only `curate status` warned, only `curate init` closed it. Now a writing command
    closes it first, in one line, and status has nothing to say."""
    root = tmp_path / "ws"
    curate("init", root, check=True)
    for p in [root, *root.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    done = curate("ingest", photos(tmp_path / "in", 2), "--source", "clinic", "-w", root, check=True)
    assert "made this workspace private" in done.stderr
    leaky = {p: oct(m) for p, m in modes(root).items() if m & 0o077}
    assert not leaky, leaky
    assert "readable by other local users" not in curate("status", "-w", root, check=True).stdout
    again = curate("ingest", photos(tmp_path / "in2", 1, start=7), "--source", "clinic", "-w", root, check=True)
    assert "made this workspace private" not in again.stderr  # said once, when it changed something


def test_the_permissions_warning_names_top_level_entries_with_counts_never_a_patients_folder(tmp_path):
    """What status prints ends up in CI and terminal logs: a source under incoming/ at most, never the patient
    folders or file names inside it, each entry with how many files and folders in it are open."""
    root = tmp_path / "ws"
    curate("init", root, check=True)
    patient = root / "incoming" / "msh-clinic" / "healthy_skin" / "P12362_Eve_Patient2_folder"
    photos(patient, 3)
    (root / "incoming" / "P12399_Loose_Name.jpg").write_bytes(I.jpeg(9))
    for p in [root / "incoming", *(root / "incoming").rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    os.chmod(root / "reports", 0o755)
    os.chmod(root / "curate.toml", 0o644)

    status = curate("status", "-w", root, check=True)
    out = " ".join(status.stdout.split())
    assert (
        "warning: readable by other local users: curate.toml (1 file), incoming/ (1 file, 1 folder), "
        "incoming/msh-clinic/ (3 files, 3 folders), reports/ (1 folder); run `curate init"
    ) in out
    data = json.loads(curate("status", "-w", root, "--json", check=True).stdout)
    assert data["exposed_paths"] == [
        {"path": "curate.toml", "files": 1, "folders": 0},
        {"path": "incoming/", "files": 1, "folders": 1},
        {"path": "incoming/msh-clinic/", "files": 3, "folders": 3},
        {"path": "reports/", "files": 0, "folders": 1},
    ]
    everything = status.stdout + status.stderr + json.dumps(data)
    for name in ("healthy_skin", "P12362", "Eve_Patient2", "P12399", "Loose_Name", "p000.jpg"):
        assert name not in everything, name
    curate("init", root, check=True)
    assert "readable by other local users" not in curate("status", "-w", root, check=True).stdout


def test_export_folders_files_and_archive_are_owner_only_whatever_the_umask(tmp_path):
    from test_export_fixtures import build_catalogue

    from curate.export import ExportOptions, ImageSpec, export_version

    old = os.umask(0o022)  # a library caller that did not set the CLI's umask
    try:
        cat = build_catalogue(tmp_path)
        result = export_version(
            cat.ws, ExportOptions(name="mpox", version="1.0.0", spec=ImageSpec(size=(48, 48)), archive=True, workers=1)
        )
    finally:
        os.umask(old)
    for p, m in modes(cat.ws.exports).items():
        assert m & 0o077 == 0, (p, oct(m))
    assert stat.S_IMODE(result.archive.stat().st_mode) == 0o400
    with tarfile.open(result.archive) as tar:
        assert {m.mode for m in tar.getmembers()} == {0o700, 0o400}


# --- the catalogue URL ------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_postgres_role_without_a_privilege_gets_one_line_naming_the_catalogue(tmp_path, pg_url):
    """The probe's case: a role without CREATE on the schema (init) or with SELECT only (ingest) got "unexpected
    ProgrammingError: (psycopg.errors.InsufficientPrivilege) …" with the SQL statement and its parameters (a
    folder's digest among them). Now one line names the catalogue and the grants; reading commands still work."""
    import psycopg

    admin = pg_url.replace("postgresql+psycopg", "postgresql")
    reader = "reader_" + pg_url.rsplit("/", 1)[1]
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"CREATE ROLE {reader} LOGIN")  # a name of this test's own: roles are the server's, not the db's
    reader_url = pg_url.replace("postgres@", f"{reader}@")
    denied = curate("init", tmp_path / "by-reader", "--db", reader_url)
    said = " ".join(denied.stderr.split())
    assert denied.returncode == 1 and denied.stderr.strip().count("\n") == 0, denied.stderr
    assert "the database role may not do this (permission denied for schema public)" in said
    assert "CREATE TABLE" not in said and "Traceback" not in said and "sqlalche.me" not in said

    curate("init", tmp_path / "ws", "--db", pg_url, check=True)
    curate("ingest", photos(tmp_path / "in", 2), "--source", "clinic", "-w", tmp_path / "ws", check=True)
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader}")
    curate("init", tmp_path / "ro", "--db", reader_url, check=True)  # the schema is there: nothing to create
    proc = curate("ingest", photos(tmp_path / "more", 2, start=50), "--source", "clinic", "-w", tmp_path / "ro")
    said = " ".join(proc.stderr.split())
    assert proc.returncode == 1 and "permission denied for table command_runs" in said, proc.stderr
    assert "grant it SELECT, INSERT, UPDATE and DELETE" in said and "INSERT INTO" not in said
    assert "folder_digest" not in said and "[SQL" not in said
    assert json.loads(curate("status", "--json", "-w", tmp_path / "ro", check=True).stdout)["images"] == 2


@pytest.mark.postgres
def test_postgres_url_is_remembered_without_its_password_and_never_falls_back(tmp_path, pg_url):
    secret_url = pg_url.replace("postgres@", "postgres:s3cret-pw@")
    root = tmp_path / "ws"
    typed = curate("init", root, "--db", secret_url)  # a command line is readable by every local user
    assert typed.returncode == 2 and "'--db'" in typed.stderr and "holds a password" in typed.stderr
    assert "s3cret-pw" not in typed.stderr and not (root / "curate.toml").exists()
    made = curate("init", root, env={"CURATE_DB_URL": secret_url}, check=True)  # from the environment: taken
    marker = (root / "curate.toml").read_text()
    assert "s3cret-pw" not in marker + made.stdout and pg_url.split("@")[1] in marker
    # libpq's other spelling, ?password=, is neither remembered nor shown
    other = tmp_path / "ws-query"
    made = curate("init", other, env={"CURATE_DB_URL": f"{pg_url}?password=s3cret-pw&connect_timeout=5"}, check=True)
    assert "s3cret-pw" not in made.stdout and "password=***" in made.stdout
    assert (
        "s3cret-pw" not in (other / "curate.toml").read_text()
        and "connect_timeout=5" in (other / "curate.toml").read_text()
    )
    curate("ingest", photos(tmp_path / "in", 2), "--source", "clinic", "-w", root, check=True)
    data = json.loads(curate("status", "-w", root, "--json", check=True).stdout)
    assert data["images"] == 2 and not (root / "catalogue.db").exists()


def test_a_workspace_whose_catalogue_url_was_not_recorded_refuses_to_guess(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "curate.toml").write_text("# mpox-curate workspace\n")  # as main wrote it for a URL with a password
    with pytest.raises(WorkspaceError, match="pass --db or set CURATE_DB_URL"):
        Workspace.open(root)
    proc = curate("status", "-w", root)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "--db" in proc.stderr
    assert not (root / "catalogue.db").exists()


def test_init_refuses_to_point_a_workspace_at_another_catalogue(tmp_path):
    """`curate init WS --db OTHER` on a workspace used to say "ready (catalogue: OTHER)" while curate.toml and
    every later command kept the old catalogue; a switch would hide the old rows, so it is refused."""
    root = tmp_path / "ws"
    curate("init", root, check=True)
    curate("ingest", photos(tmp_path / "in", 2), "--source", "clinic", "-w", root, check=True)
    marker = (root / "curate.toml").read_text()
    other = tmp_path / "other.db"
    proc = curate("init", root, "--db", f"sqlite:///{other}")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"already uses catalogue sqlite:///{root / 'catalogue.db'}" in proc.stderr and "--db" in proc.stderr
    assert not other.exists() and (root / "curate.toml").read_text() == marker
    curate("init", root, "--db", f"sqlite:///{root / 'catalogue.db'}", check=True)  # the same one: fine
    curate("init", root, check=True)
    assert json.loads(curate("status", "-w", root, "--json", check=True).stdout)["images"] == 2

    # A relative SQLite path is recorded absolute: another folder's commands must not get a new, empty catalogue.
    curate("init", "ws2", "--db", "sqlite:///rel.db", cwd=tmp_path, check=True)
    assert f'db_url = "sqlite:///{tmp_path / "rel.db"}"' in (tmp_path / "ws2" / "curate.toml").read_text()


def test_init_with_an_unreachable_catalogue_leaves_no_workspace_pointing_at_it(tmp_path):
    root = tmp_path / "ws"
    proc = curate("init", root, env={"CURATE_DB_URL": "postgresql+psycopg://steward:hunter2@127.0.0.1:1/study"})
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "cannot open catalogue" in proc.stderr
    assert "hunter2" not in proc.stdout + proc.stderr and "steward:***@127.0.0.1:1" in proc.stderr
    assert not (root / "curate.toml").exists()
    proc = curate("status", "-w", root)
    assert proc.returncode == 1 and "no workspace at" in proc.stderr  # not wedged on the dead URL
    curate("init", root, check=True)
    assert 'backend = "sqlite"' in (root / "curate.toml").read_text()


# --- concurrency ------------------------------------------------------------------------------

_RACE = """
import os, sys, time
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace
ws = Workspace.open(sys.argv[1], db_url=sys.argv[2])
ws.migrate()
while not os.path.exists(sys.argv[5]):  # all start together
    time.sleep(0.005)
r = ingest_folder(ws, sys.argv[3], IngestOptions(source=sys.argv[4], workers=1, batch=1))
print(r.added, r.provenance)
"""


def test_two_ingests_of_the_same_photos_at_once_both_succeed(tmp_path, db_url):
    """The unique-key race itself (library level, no workspace lock): no IntegrityError, nothing duplicated."""
    ws = Workspace.init(tmp_path / "ws", db_url=db_url)
    a = photos(tmp_path / "a", 30)
    b = photos(tmp_path / "b", 30)  # the same bytes under another folder
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACE, str(ws.root), db_url, str(folder), source, str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folder, source in ((a, "clinic-a"), (b, "clinic-b"), (a, "clinic-a"))
    ]
    time.sleep(8)  # imports done
    go.touch()
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    with ws.session() as s:
        assert len(s.exec(select(Image)).all()) == 30
        assert len(s.exec(select(Provenance)).all()) == 60
    assert sum(int(o[0].split()[0]) for o in outs) == 30  # each image added exactly once


@pytest.mark.parametrize("lock_file", ["kept", "deleted"])
def test_a_second_writer_waits_for_the_first_and_says_so(tmp_path, lock_file):
    """Deleted: before, `rm ws/.curate.lock` while a command wrote let the next writer make a new lock file, lock it
    at once and write beside the first. The workspace folder's own lock still holds it back; `curate status` says
    someone writes."""
    from curate.lock import holder

    root = tmp_path / "ws"
    Workspace.init(root)
    folder = photos(tmp_path / "in", 3)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("CURATE_DB_URL", None)
    with workspace_lock(root, "export"):
        if lock_file == "deleted":
            (root / ".curate.lock").unlink()
            assert holder(root) == {}  # someone writes, who is no longer written down
        proc = subprocess.Popen(
            [sys.executable, "-m", "curate", "ingest", str(folder), "-s", "c", "-w", str(root)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # until the child blocks on the lock (a waiting flock shows as "->" in /proc/locks)
        wait_for(lambda: proc.poll() is not None or "->" in Path("/proc/locks").read_text(), timeout=60)
        assert proc.poll() is None, "the second writer must wait, not write beside the first"
        with Workspace.open(root).session() as s:
            assert s.exec(select(Image)).all() == []
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    who = f"`curate export` (pid {os.getpid()}" if lock_file == "kept" else "another curate command"
    assert f"waiting for {who}" in " ".join(err.split())
    assert holder(root) is None


def test_two_exports_of_one_version_one_wins_the_other_says_so(tmp_path):
    from test_export_fixtures import build_catalogue

    cat = build_catalogue(tmp_path)
    args = ["export", "--name", "mpox", "--version", "1.0.0", "--size", "48", "-w", str(cat.ws.root)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("CURATE_DB_URL", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "curate", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    assert not any("Traceback" in o[1] for o in outs)
    said = [o[0] for o in outs if "was already written" in o[0]]
    assert len(said) == 1, [o[0] for o in outs]
    assert "(written)" in "".join(o[0] for o in outs)


# --- killed runs ------------------------------------------------------------------------------

_KILLED = """
import os, signal, sys
from curate.audit import audited
from curate.workspace import Workspace
ws = Workspace.open(sys.argv[1])
with audited(ws, "ingest", {}):
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_run_is_marked_when_the_next_command_starts(tmp_path):
    root = tmp_path / "ws"
    Workspace.init(root)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(2):
        assert subprocess.run([sys.executable, "-c", _KILLED, str(root)], env=env).returncode == -signal.SIGKILL
    # (the second killed run already marked the first)
    assert "did not finish: `curate ingest` (killed" in curate("status", "-w", root, check=True).stdout
    curate("ingest", photos(tmp_path / "in", 2), "-s", "c", "-w", root, check=True)  # other work: still listed
    assert "did not finish: `curate ingest` (killed" in curate("status", "-w", root, check=True).stdout
    from curate.audit import audited

    ws = Workspace.open(root)
    with audited(ws, "ingest", {}):  # the same work, to the end
        pass
    assert "did not finish" not in curate("status", "-w", root, check=True).stdout
    with ws.session() as s:
        statuses = [r.status for r in s.exec(select(CommandRun).order_by(CommandRun.id))]
    assert statuses == ["killed", "killed", "ok", "ok"]


def test_a_run_whose_end_the_catalogue_missed_is_recorded_by_the_next_command(tmp_path):
    """Before: a catalogue server that went away during a command (PostgreSQL stopped mid-export) left its run
    "running" for good: `curate status` said a command was still running, with none alive."""
    from curate.audit import audited

    ws = Workspace.init(tmp_path / "ws")

    def gone():
        raise ConnectionError("the catalogue's server went away")

    with pytest.raises(RuntimeError), audited(ws, "export", {}):
        ws.session = gone  # the run's row is written; its outcome cannot be
        raise RuntimeError("the export failed")
    ws.session = gone  # still down: a retry cannot record it either, and must not forget it
    with pytest.raises(ConnectionError), audited(ws, "export", {}):
        pass
    del ws.session
    with audited(ws, "ingest", {}):
        pass
    assert _runs(ws) == [("export", "aborted"), ("ingest", "ok")]  # a fault mid-work, not a refusal of its input

    # a SIGTERM while the catalogue's server hung waited on the connect that records the run's end; a second
    # SIGTERM stopped that wait and nothing was left behind: the run stayed "running" for good
    def stopped_again():
        raise KeyboardInterrupt  # the second signal, while the connect still waits

    with pytest.raises(KeyboardInterrupt), audited(ws, "export", {}):
        ws.session = stopped_again
        raise KeyboardInterrupt
    del ws.session
    with audited(ws, "ingest", {}):
        pass
    assert _runs(ws)[2:] == [("export", "interrupted"), ("ingest", "ok")]


def _runs(ws) -> list[tuple[str, str]]:
    with ws.session() as s:
        return [(r.command, r.status) for r in s.exec(select(CommandRun).order_by(CommandRun.id))]


def test_a_postgresql_catalogue_gives_up_connecting_to_a_hung_server(monkeypatch):
    """Before: no limit on connecting; a server that takes the connection and never answers (stopped with
    SIGSTOP, a half-dead proxy) held the command, and then its Ctrl-C, for good."""
    import socket

    from sqlalchemy.exc import OperationalError

    import db.engine

    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)  # the kernel completes the handshake; nobody ever answers
    port = hung.getsockname()[1]
    monkeypatch.setattr(db.engine, "CONNECT_TIMEOUT_S", 2)
    try:
        for url in (
            f"postgresql+psycopg://u@127.0.0.1:{port}/c",
            f"postgresql+psycopg://u@127.0.0.1:{port}/c?connect_timeout=1",
        ):
            started = time.monotonic()
            with pytest.raises(OperationalError):
                db.engine.make_engine(url).connect()
            assert time.monotonic() - started < 8, url
    finally:
        hung.close()


def test_status_reads_an_outcome_the_catalogue_missed_before_the_next_writer_records_it(tmp_path):
    """Before: an export that ended "ok" but could not record it (the disk full at its last write) was "did not
    finish: curate export (killed …)" in `curate status` until some other writer ran."""
    from curate.audit import audited
    from curate.status import workspace_status

    ws = Workspace.init(tmp_path / "ws")

    def gone():
        raise ConnectionError("the catalogue could not be written")

    with audited(ws, "export", {"name": "mpox"}):
        ws.session = gone  # the run's row is written; its "ok" lands in the lock file only
    del ws.session
    assert workspace_status(ws)["unfinished"] == []
    with pytest.raises(KeyboardInterrupt), audited(ws, "ingest", {"folder": "x"}):
        ws.session = gone
        raise KeyboardInterrupt
    del ws.session
    assert [(u["command"], u["status"]) for u in workspace_status(ws)["unfinished"]] == [("ingest", "interrupted")]


def test_status_names_a_stopped_command_until_it_runs_again_to_the_end(tmp_path):
    """Before: an ingest stopped with Ctrl-C or SIGTERM (status "interrupted") left half its folder in and status
    said nothing; a killed one was mentioned only until the next writer of any kind marked it "killed"."""
    from curate.audit import audited

    root = tmp_path / "ws"
    ws = Workspace.init(root)
    with pytest.raises(KeyboardInterrupt), audited(ws, "ingest", {}):
        raise KeyboardInterrupt
    curate("dedupe", "-w", root, check=True)  # another writer: the ingest is still not finished
    shown = curate("status", "-w", root, check=True).stdout
    assert "did not finish: `curate ingest` (interrupted, started " in " ".join(shown.split())
    data = json.loads(curate("status", "-w", root, "--json", check=True).stdout)
    assert data["unfinished_runs"] == 1 and data["unfinished"][0]["command"] == "ingest"
    with audited(ws, "ingest", {"source": "other"}):  # an ingest of another source does not finish this one
        pass
    assert "did not finish: `curate ingest` (interrupted" in " ".join(curate("status", "-w", root).stdout.split())
    with audited(ws, "ingest", {"workers": 2}):  # the same work, other --workers: finished
        pass
    assert "did not finish" not in curate("status", "-w", root, check=True).stdout
    # before: an ingest of another folder into the same source passed for the re-run that finished a stopped one
    for name in ("a", "b"):
        photos(tmp_path / name, 2, start=10 * len(name) + ord(name))
    curate("ingest", tmp_path / "a", "-s", "clinic", "-w", root, check=True)
    with ws.session() as s:  # as a SIGTERM halfway leaves it
        run = s.exec(select(CommandRun).order_by(CommandRun.id.desc())).first()
        run.status = "interrupted"
        s.add(run)
    curate("ingest", tmp_path / "b", "-s", "clinic", "-w", root, check=True)
    said = " ".join(curate("status", "-w", root, check=True).stdout.split())
    assert "did not finish: `curate ingest` into source clinic (interrupted, started " in said
    curate("ingest", tmp_path / "a", "-s", "clinic", "-w", root, check=True)
    assert "did not finish" not in curate("status", "-w", root, check=True).stdout
    # a dedupe redoes the whole catalogue's clusters: one stopped at another --similarity is finished by any later
    # dedupe run to the end (before: listed until a dedupe with its own options ran)
    with pytest.raises(KeyboardInterrupt), audited(ws, "dedupe", {"similarity": 0.85, "method": "phash"}):
        raise KeyboardInterrupt
    assert "did not finish: `curate dedupe" in " ".join(curate("status", "-w", root).stdout.split())
    with pytest.raises(WorkspaceError), audited(ws, "dedupe", {}):  # refused before any work ("failed"): no finish
        raise WorkspaceError("its input refused")
    assert "did not finish: `curate dedupe" in " ".join(curate("status", "-w", root).stdout.split())
    curate("dedupe", "-w", root, check=True)
    assert "did not finish" not in curate("status", "-w", root, check=True).stdout


# --- errors and secrets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, field, code",
    [
        (["label", "pull", "--url", "http://[::1"], "--url", 2),
        (["label", "pull", "--url", "ftp://example.org"], "--url", 2),
        (["status", "--db", "postgresql+psycopg://u@127.0.0.1:notaport/x"], "--db", 1),
        (["status", "--db", "postgresql+psycopg://u:hunter2@127.0.0.1/x"], "--db", 2),
        (["status", "--db", "postgresql+psycopg://u@127.0.0.1/x?sslpassword=hunter2"], "--db", 2),
        (["label", "pull", "--url", "http://127.0.0.1:9/?api_key=hunter2"], "--url", 2),
        (["label", "pull", "--url", "a@clinic.org=http://u:hunter2@127.0.0.1:9/"], "--url", 2),
        (["status", "--db", "nosuchdialect://x"], "--db", 1),
    ],
)
def test_bad_values_end_in_one_line_naming_the_field(tmp_path, args, field, code):
    Workspace.init(tmp_path / "ws")
    proc = curate(*args, "-w", tmp_path / "ws")
    assert proc.returncode == code, proc.stderr
    assert field in proc.stderr and "hunter2" not in proc.stderr


def test_passwords_in_urls_never_reach_the_audit_table_or_the_screen(tmp_path):
    root = tmp_path / "ws"
    Workspace.init(root)
    proc = curate(
        "label", "pull", "--url", "http://steward:hunter2@127.0.0.1:9/", "-w", root, env={"LABEL_STUDIO_API_KEY": "k"}
    )
    assert proc.returncode == 2 and "holds a password" in proc.stderr and "hunter2" not in proc.stderr + proc.stdout
    lst = tmp_path / "urls.txt"
    lst.write_text("http://user:hunter2@127.0.0.1:9/x.jpg\nhttp://user:hunter2@127.0.0.1:9/y\x01.jpg\n")
    proc = curate("scrape", lst, "--engine", "urls", "--json", "-w", root, "--timeout", "2")
    assert proc.returncode == 0 and "hunter2" not in proc.stderr + proc.stdout
    ws = Workspace.open(root)
    with ws.session() as s:
        stored = json.dumps([(r.arguments, r.summary) for r in s.exec(select(CommandRun))])
        rejected = [r.locator for r in s.exec(select(Rejection))]
    assert rejected == ["http://user:***@127.0.0.1:9/y%01.jpg"]
    stored += json.dumps(rejected)
    assert "hunter2" not in stored


def test_pre_signed_urls_lose_their_signatures_in_the_catalogue(tmp_path):
    """The privacy probe's case: a pre-signed image URL (S3, Google, CloudFront, Azure) grants access as a token
    does; its signature went into the rejections and the run's record as it was. Only the signature goes."""
    import functools
    import http.server
    import threading

    from curate.redact import redact_text

    site = tmp_path / "site"
    site.mkdir()
    (site / "a.jpg").write_bytes(I.jpeg(7, size=(400, 300)))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    root = tmp_path / "ws"
    Workspace.init(root)
    lst = tmp_path / "urls.txt"
    lst.write_text(
        f"{base}/a.jpg?X-Amz-Credential=AKIAQ&X-Amz-Signature=AmzSig123&sig=AzureSig123\n"
        f"{base}/b.jpg?Signature=CfSig2&Key-Pair-Id=K&X-Goog-Signature=GoogSig3&design=kept\n"
    )
    try:
        proc = curate(
            "scrape", lst, "--engine", "urls", "--json", "-w", root, "--timeout", "5", "--allow-private-hosts"
        )
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr
    ws = Workspace.open(root)
    with ws.session() as s:
        stored = json.dumps([(r.arguments, r.summary) for r in s.exec(select(CommandRun))])
        rejected = [r.locator for r in s.exec(select(Rejection))]
        kept = [(p.locator, p.image_url, p.final_url) for p in s.exec(select(Provenance))]
    assert len(kept) == 1 and all(
        url.endswith("/a.jpg?X-Amz-Credential=***&X-Amz-Signature=***&sig=***") for url in kept[0] if url
    ), kept
    assert rejected == [f"{base}/b.jpg?Signature=***&Key-Pair-Id=K&X-Goog-Signature=***&design=kept"]
    for secret in ("AKIAQ", "AmzSig123", "AzureSig123", "CfSig2", "GoogSig3"):
        assert secret not in stored + json.dumps(kept) + proc.stdout + proc.stderr
    for said in ("design=a signal=b assign: c", "invalid signature: the file is damaged", "signatures: 3 checked"):
        assert redact_text(said) == said  # a bare signature is masked as a URL's query parameter only


def test_redaction_of_a_long_run_of_letters_comes_back():
    """Before: the patterns tried every start and split of a run of name characters. "token" 1,000 times held a
    scrape (a result's title, a server's error line) at 100 % CPU for 240 s; 12,000 letters took 14 s. Each string
    here must come back within 30 s (today: milliseconds), masked where it carries a secret."""
    import threading

    from curate.redact import redact_text

    texts = ["token" * 1000, "A" * 12000, "a-" * 6000, "x-" * 5000 + "signature", "http" * 3000, "a1" * 6000]
    out: list[str] = []
    worker = threading.Thread(target=lambda: out.extend(redact_text(t) for t in texts), daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive() and out == texts  # none carries a secret: each comes back whole
    assert redact_text("token" * 1000 + "=hunter2") == "token" * 1000 + "=***"


def test_server_replies_echoing_authorization_are_redacted():
    from curate.output import one_line

    reply = 'HTTP 401 {"detail": "bad token", "request": {"headers": {"Authorization": "Token abc123def"}}}\nmore'
    shown = one_line(reply)
    assert "abc123def" not in shown and "\n" not in shown and "Authorization" in shown


def test_a_path_ending_in_a_secret_word_keeps_the_error_whole():
    """A file named `token` or `/etc/passwd` before ": cannot read …" is a path, not a key: the message kept
    "*** read …" instead of "cannot read …". Keys in front of a value are still masked."""
    from curate.redact import redact_text

    for path in ("/tmp/x/token", "../../etc/passwd", "C:\\keys\\secret"):
        said = f"{path}: cannot read label mapping ([Errno 2] No such file or directory)"
        assert redact_text(said) == said
    assert redact_text("/etc/passwd: Permission denied") == "/etc/passwd: Permission denied"
    for keyed in ("a/b/password: hunter2", "config/db/password: letmein", "C:\\creds\\token: t0k3n"):
        assert redact_text(keyed).endswith(": ***"), keyed  # a key under a path, then its value: still a secret
    for text, hidden in (
        ("token: abc123", "abc123"),
        ("db_password=hunter2", "hunter2"),
        ('{"api_key": "k-42"}', "k-42"),
        ("url?a=1&token=t0k", "t0k"),
        ("bad config (password: s3cret)", "s3cret"),
        ("studio.api_key = k9", "k9"),  # a dotted key
        ("https://example.org/feed/api_key=abcd1234/images", "abcd1234"),  # in a URL's path
        ("s3://bucket/token=s3cr3t", "s3cr3t"),
        ("C:\\creds\\secret=abc", "abc"),
        ("x-api-key: k-77", "k-77"),
        ("--api-key=k-78", "k-78"),
        ("cannot open postgresql+psycopg://u:Pw6:Sec@ret@127.0.0.1:5433/cat (refused)", "ret@127"),  # "@" unencoded
    ):
        assert hidden not in redact_text(text) and "***" in redact_text(text), text


def test_a_source_name_with_a_newline_or_pipe_keeps_the_card_table_intact(tmp_path):
    from curate.export.card import _table

    lines = _table(["source", "kind"], [["evil\nsource | <script>x</script>", "web"]])
    assert len(lines) == 3 and lines[2].count(" | ") == 1 and "<script>" not in lines[2]


def test_init_inside_a_workspace_is_refused(tmp_path):
    """Before: `curate init ws/exports/mpox` and `curate init ws/objects` said "workspace ready" and put a
    catalogue, curate.toml and four folders beside the versions and inside the image store."""
    from curate.errors import WorkspaceError
    from curate.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws")
    for inside in (ws.exports / "mpox", ws.root / "objects", ws.root / "objects" / "ab"):
        with pytest.raises(WorkspaceError, match=f"is inside the workspace {ws.root}"):
            Workspace.init(inside)
        assert not (inside / "curate.toml").exists() and not (inside / "catalogue.db").exists()
    assert Workspace.init(ws.root).root == ws.root  # the workspace itself: re-run as before


@pytest.mark.parametrize(
    "url, said",
    [
        ("mysql://u@127.0.0.1/x", "a catalogue is SQLite or PostgreSQL, not mysql"),
        (
            "postgresql+psycopg2://u@127.0.0.1/x",
            "the psycopg2 driver is not installed (postgresql+psycopg2://u@127.0.0.1/x): use postgresql+psycopg://",
        ),
        ("sqlite:////nonexistent/dir/x.db", "cannot open catalogue"),
    ],
)
def test_an_init_that_cannot_open_its_catalogue_says_why_and_leaves_no_folders(tmp_path, url, said):
    """Before: a MySQL URL or a driver not installed ended in "unexpected ModuleNotFoundError", and every failed
    init left a folder with objects/, exports/, reports/ and tmp/ that looked like a workspace."""
    proc = curate("init", tmp_path / "new" / "ws", "--db", url)
    assert proc.returncode == 1 and said in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "mine"
    (kept / "notes.txt").parent.mkdir()
    (kept / "notes.txt").write_text("mine")
    assert curate("init", kept, "--db", url).returncode == 1
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]  # a folder that was there keeps what it had


def test_a_catalogue_url_that_is_not_text_names_curate_toml(tmp_path):
    """Before: `db_url = 5` in curate.toml was reported as a bad --db, which the steward never gave."""
    root = tmp_path / "ws"
    curate("init", root, check=True)
    marker = root / "curate.toml"
    marker.write_text(marker.read_text() + "db_url = 5\n")
    for args in (["status", "-w", root], ["init", root, "--db", f"sqlite:///{tmp_path / 'x.db'}"]):
        proc = curate(*args)  # init --db too: before, "unexpected ArgumentError: Expected string or URL object"
        assert proc.returncode == 1 and f"{marker}: db_url: the catalogue URL must be a string" in proc.stderr


def test_an_environment_catalogue_other_than_the_workspaces_is_refused(tmp_path):
    """Before: $CURATE_DB_URL (or --db) quietly put a workspace's rows into another study's catalogue, its originals
    staying in this store; `curate init` already refused such a switch."""
    Workspace.init(tmp_path / "a")
    Workspace.init(tmp_path / "b")
    other = f"sqlite:///{tmp_path / 'b' / 'catalogue.db'}"
    proc = curate("status", "-w", tmp_path / "a", env={"CURATE_DB_URL": other})
    assert proc.returncode == 1 and "--db / $CURATE_DB_URL names another catalogue" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    own = f"sqlite:///{tmp_path / 'a' / 'catalogue.db'}"
    assert curate("status", "-w", tmp_path / "a", env={"CURATE_DB_URL": own}).returncode == 0


@pytest.mark.parametrize("password", ["S3cure@2024!", "Pa:ss@wd", "P@ss#w?rd", "a@b:c/d?e#f"])
def test_a_password_a_url_cannot_hold_as_typed_is_never_shown_in_part(tmp_path, password):
    """Before: `…odd:S3cure@2024!@127.0.0.1…` gave "failed to resolve host '2024!@127.0.0.1'"."""
    Workspace.init(tmp_path / "ws")
    url = f"postgresql+psycopg://odd:{password}@127.0.0.1:9/cat4"
    proc = curate("init", tmp_path / "pg", env={"CURATE_DB_URL": url})
    said = proc.stderr + proc.stdout
    assert proc.returncode != 0 and "percent-encode" in said, said
    pieces = {password[i : i + 3] for i in range(len(password) - 2)}
    assert not any(p in said for p in pieces if p.strip("@:/?#")), said


def test_a_workspace_on_a_read_only_mount_can_be_read(tmp_path):
    """Before: `curate status` and `curate versions` on a workspace mounted read-only (a backup, a reviewer's
    share) failed with "unable to open database file": SQLite makes its -shm beside a WAL catalogue. Readers now
    open it read-only; a writer says in one line that it cannot write there."""
    root = tmp_path / "ws"
    Workspace.init(root)
    curate("ingest", photos(tmp_path / "in", 3), "-s", "clinic", "-w", root, check=True)
    with read_only_view(root, tmp_path / "mounted") as seen:
        for companions in (True, False):  # as a writer left it (-wal and -shm), and checkpointed (the file alone)
            if not companions:
                _catalogue_file_alone(root)
            assert (root / "catalogue.db-wal").exists() == companions
            for args in (("status", "--json"), ("versions",)):
                proc = curate(*args, "-w", seen)
                assert proc.returncode == 0, proc.stderr
            assert json.loads(curate("status", "--json", "-w", seen).stdout)["images"] == 3
        proc = curate("ingest", photos(tmp_path / "more", 1, start=9), "-s", "clinic", "-w", seen)
        assert proc.returncode == 1 and "Read-only file system" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_a_workspace_on_a_full_disk_can_be_read_and_a_writer_names_the_file_it_could_not_write(tmp_path):
    """Before: on a full disk `curate status` and `curate versions` failed with "disk I/O error" (SQLite could not
    make its -shm), which reads as a broken disk; a writer said "the disk being written to is full … or choose another
    output folder", naming no file, of a command with no output folder."""
    disk = tmp_path / "disk"
    disk.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"no tmpfs mount here: {made.stderr.strip()}")
    try:
        root = disk / "ws"
        Workspace.init(root)
        curate("ingest", photos(tmp_path / "in", 3), "-s", "clinic", "-w", root, check=True)
        with contextlib.suppress(OSError), open(disk / "filler", "wb", buffering=0) as fh:  # to its last block
            while True:
                fh.write(b"\0" * 65536)
        for args in (("status", "--json"), ("versions",)):
            proc = curate(*args, "-w", root)
            assert proc.returncode == 0, proc.stderr
        # a reading command's page: skipped with a warning, its --json given (before: the command failed)
        proc = curate("dedupe", "review", "--json", "-w", root)
        assert proc.returncode == 0 and json.loads(proc.stdout)["review_sheet"] is None, proc.stderr
        assert "page not written" in proc.stderr and "full disk" in proc.stderr, proc.stderr
        assert json.loads(curate("status", "--json", "-w", root).stdout)["images"] == 3
        with open(disk / "filler", "r+b") as fh:  # nearly full: 16 KiB free, under the 32 KiB SQLite's -shm takes
            fh.truncate(os.path.getsize(disk / "filler") - 16384)
        assert json.loads(curate("status", "--json", "-w", root, check=True).stdout)["images"] == 3
        proc = curate("dedupe", "-w", root)
        assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
        said = proc.stderr  # the file it could not write, and why: the lock file's block or the catalogue's page
        assert ("No space left" in said or "disk is full" in said) and "output folder" not in said
        assert ".curate.lock" in said or "catalogue.db" in said
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_lock_file_the_disk_cannot_take_is_named(tmp_path, monkeypatch):
    """The write that failed on a full disk was the lock file's: before, "the disk being written to is full" named
    no file (an OSError without one)."""
    import errno

    import curate.lock as lock

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    Workspace.init(tmp_path / "ws")
    monkeypatch.setattr(lock.os, "write", full)
    with pytest.raises(OSError) as caught, workspace_lock(tmp_path / "ws", "dedupe"):
        pass
    assert caught.value.filename == str((tmp_path / "ws" / ".curate.lock").resolve())
    assert caught.value.errno == errno.ENOSPC


def test_a_postgresql_url_the_driver_refuses_or_a_wrong_password_is_one_line(tmp_path, monkeypatch):
    """Before: a bad option in the URL (`connect_timeout=abc`, psycopg's ProgrammingError) ended in "unexpected
    ProgrammingError … (Background on this error at: https://sqlalche.me/…)"; a wrong $PGPASSWORD was said to be a
    missing one; and a masked `?password=` value took the ": " after it."""
    proc = curate("init", tmp_path / "ws", "--db", "postgresql+psycopg://steward@127.0.0.1:1/cat?connect_timeout=abc")
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1
    assert "cannot open catalogue" in proc.stderr and "bad value for connect_timeout" in proc.stderr
    assert "unexpected" not in proc.stderr and "sqlalche.me" not in proc.stderr
    import sqlalchemy.exc

    import curate.workspace as workspace

    said = 'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication '
    for reason, expected in [
        (said + 'failed for user "steward"', "refused the password from $PGPASSWORD or ~/.pgpass"),
        ("connection failed: fe_sendauth: no password supplied", "needs a password, from $PGPASSWORD or ~/.pgpass"),
    ]:

        def refused(engine, reason=reason):  # libpq's own words, as psycopg raises them
            raise sqlalchemy.exc.OperationalError("connect", {}, Exception(reason))

        monkeypatch.setattr(workspace, "current_revision", refused)  # its first query
        with pytest.raises(WorkspaceError, match=re.escape(expected)):
            Workspace.init(tmp_path / "pg", db_url="postgresql+psycopg://steward@127.0.0.1:5432/cat")
    assert redact_text("cat?password=hunter2: connection failed") == "cat?password=***: connection failed"
    for secret, masked in [
        ("password=:", "password=***"),
        ('password="pa:"', 'password="***"'),
        ("token=a:b c", "token=*** c"),
    ]:
        assert redact_text(secret) == masked  # a colon inside a secret, or all of it, stays masked


def test_reading_commands_on_a_read_only_mount_give_their_results_and_write_pages_elsewhere(tmp_path):
    """Before: `audit leakage`, `dedupe review` and `label report` on a workspace mounted read-only (an auditor's
    copy of a version) did all their work and then failed with "Read-only file system" for their HTML page, even
    with --json or a --html elsewhere. Now the results come, the page is skipped with a warning naming --html,
    and --html PATH writes it there."""
    root = tmp_path / "ws"
    write_export(Workspace.init(root).root, size=32)
    out = tmp_path / "pages"
    out.mkdir()
    with read_only_view(root, tmp_path / "mounted") as seen:
        for args, key in (
            (("audit", "leakage", "mpox@1.0.0"), "report"),
            (("dedupe", "review"), "review_sheet"),
            (("label", "report"), "html"),
        ):
            proc = curate(*args, "--json", "-w", seen)
            assert proc.returncode == 0, proc.stderr
            assert json.loads(proc.stdout)[key] is None
            assert "page not written" in proc.stderr and "--html PATH" in proc.stderr, proc.stderr
            page = out / f"{args[0]}-{args[1]}.html"
            proc = curate(*args, "--json", "--html", page, "-w", seen)
            assert proc.returncode == 0, proc.stderr
            assert json.loads(proc.stdout)[key] == str(page) and "</html>" in page.read_text()
            assert stat.S_IMODE(page.stat().st_mode) == 0o600 and "page not written" not in proc.stderr
        leak = curate("audit", "leakage", "mpox@1.0.0", "-w", seen)
        assert leak.returncode == 0 and "no suspect pairs" in leak.stdout and "page not written" in leak.stderr


def test_a_catalogue_this_user_may_not_write_is_opened_read_only(tmp_path, monkeypatch):
    """Before: `curate status` on a copy made read-only with `chmod -R a-w`, run by a user the mode binds (not
    root), failed with "attempt to write a readonly database". Such a catalogue is opened read-only, as on a
    read-only mount: SQLite then makes no -shm beside it. (Root may write anyway, so the access check is what this
    test turns.)"""
    from typer.testing import CliRunner

    from curate.cli import app

    root = tmp_path / "ws"
    Workspace.init(root)
    curate("ingest", photos(tmp_path / "in", 2), "-s", "clinic", "-w", root, check=True)
    _catalogue_file_alone(root)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if mode & os.W_OK else real(p, mode, **kw))
    r = CliRunner().invoke(app, ["status", "--json", "-w", str(root)])
    assert r.exit_code == 0 and json.loads(r.stdout)["images"] == 2, r.output
    assert not (root / "catalogue.db-shm").exists() and not (root / "catalogue.db-wal").exists()


def _catalogue_file_alone(root: Path) -> None:
    """The SQLite catalogue as a backup of the file alone: everything checkpointed into it, no -wal or -shm."""
    last = sqlite3.connect(root / "catalogue.db")
    last.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    last.close()
    for companion in ("catalogue.db-wal", "catalogue.db-shm"):
        (root / companion).unlink()


def test_a_writer_known_by_its_lock_file_alone_is_running_now(tmp_path):
    """The folder's flock holds on one machine only over NFS, and a writer of an earlier version takes the lock
    file's alone: `curate status` asks the lock file too when the folder is free here (the review of this change:
    status on a second machine said "did not finish … re-run it" of an ingest still running on the first)."""
    import fcntl

    from curate.lock import holder

    root = tmp_path / "ws"
    Workspace.init(root)
    fd = os.open(root / ".curate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"pid": 4711, "command": "ingest", "runs": []}).encode())
        assert holder(root) == {"pid": 4711, "command": "ingest", "runs": []}
    finally:
        os.close(fd)
    assert holder(root) is None


def test_status_of_a_writer_whose_lock_file_was_deleted_calls_no_run_killed(tmp_path):
    """With the lock file gone, who writes is not known: its "running" run was listed as "did not finish (killed)"
    beside "running now"."""
    from curate.audit import audited
    from curate.status import workspace_status

    root = tmp_path / "ws"
    ws = Workspace.init(root)
    with audited(ws, "ingest", {"source": "clinic"}):
        (root / ".curate.lock").unlink()
        data = workspace_status(ws)
        assert data["running_now"] == {"command": None, "pid": None, "since": None} and data["unfinished"] == []


def test_an_ingest_stopped_before_folders_were_recorded_is_finished_by_a_re_run(tmp_path):
    """A run recorded before ingest kept its folder's digest has none: any later finished ingest into the same
    source finishes it, as before (else it was listed for good)."""
    from curate.audit import audited

    root = tmp_path / "ws"
    ws = Workspace.init(root)
    before = {"source": "clinic", "kind": None, "licence": None, "label_from_folders": False}  # as ingest recorded
    with (
        pytest.raises(KeyboardInterrupt),
        audited(ws, "ingest", before | {"case_id_pattern": None, "follow_symlinks": False}),
    ):
        raise KeyboardInterrupt
    assert "did not finish" in curate("status", "-w", root).stdout
    curate("ingest", photos(tmp_path / "in", 1), "-s", "clinic", "-w", root, check=True)
    assert "did not finish" not in curate("status", "-w", root, check=True).stdout


def test_an_export_killed_is_finished_by_a_later_export_of_its_version(tmp_path):
    """Before: an export killed at --size 2048, then the same version exported at the default size, left status
    asking to re-run the killed command, which the version then refused ("already exists with different
    content"). An export's work is its NAME@VERSION."""
    from curate.audit import audited

    root = tmp_path / "ws"
    ws = Workspace.init(root)
    with pytest.raises(KeyboardInterrupt), audited(ws, "export", {"name": "mpox", "version": "5.0.0", "size": 2048}):
        raise KeyboardInterrupt
    killed = f"did not finish: `curate export --name mpox --version 5.0.0 --size 2048 -w {root}`"  # what finishes it
    assert killed in " ".join(curate("status", "-w", root).stdout.split())
    with audited(ws, "export", {"name": "mpox", "version": "5.0.1", "size": 320}):  # another version: not that one
        pass
    assert killed in " ".join(curate("status", "-w", root).stdout.split())
    with audited(ws, "export", {"name": "mpox", "version": "5.0.0", "size": 320}):
        pass
    assert "did not finish" not in curate("status", "-w", root, check=True).stdout


def test_a_command_run_inside_a_workspaces_folder_names_the_workspace(tmp_path):
    """The probe's case: `curate status` in ws/exports said "run `curate init ws/exports` first", which init then
    refuses (a workspace never nests). It names the workspace and -w now."""
    root = tmp_path / "ws"
    Workspace.init(root)
    proc = curate("status", cwd=root / "exports")
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert f"is inside the workspace {root}: run from there, or pass -w {root}" in proc.stderr
    assert "curate init" not in proc.stderr


def test_a_command_run_one_folder_above_a_workspace_names_it_and_init_there_is_refused(tmp_path):
    """A newcomer's case: `curate status` in the folder above the study said "run `curate init <here>` first", and
    init then made an empty workspace wrapped around the study. Both name the study now, and nothing is made."""
    root = tmp_path / "projects" / "study"
    Workspace.init(root)
    above = tmp_path / "projects"
    proc = curate("status", cwd=above)
    assert proc.returncode == 1 and f"no workspace at {above}, but {root} is one: cd {root}" in proc.stderr
    made = curate("init", tmp_path)
    assert made.returncode == 1 and f"{tmp_path} holds the workspace {root}: a workspace never nests" in made.stderr
    assert not (tmp_path / "curate.toml").exists() and not (tmp_path / "catalogue.db").exists()


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(tmp_path):
    """The probe's case: `.curate.lock` a symbolic link (kept by a restore, or planted): every writer wrote its lock
    JSON into the link's target and emptied it at the end; as root, any file (the catalogue) could be wiped."""
    root = Workspace.init(tmp_path / "ws").root
    victim = tmp_path / "victim.txt"
    victim.write_text("precious data")
    (root / ".curate.lock").unlink(missing_ok=True)
    (root / ".curate.lock").symlink_to(victim)
    proc = curate("ingest", photos(tmp_path / "in", 2), "-s", "clinic", "-w", root)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert ".curate.lock is a symbolic link" in proc.stderr and "Traceback" not in proc.stderr
    assert victim.read_text() == "precious data"
    assert curate("status", "--json", "-w", root).returncode == 0  # a reader reads past it
    (root / ".curate.lock").unlink()
    assert curate("ingest", tmp_path / "in", "-s", "clinic", "-w", root).returncode == 0


def test_the_privacy_hint_can_be_pasted_for_a_folder_with_a_space(tmp_path):
    """Before: "run `curate init /tmp/…/sp ace/ws`", unquoted: pasted, init got two arguments."""
    import shlex

    root = Workspace.init(tmp_path / "sp ace" / "ws").root
    root.chmod(0o755)
    shown = " ".join(curate("status", "-w", root).stdout.split())
    assert "readable by other local users" in shown and f"`curate init {shlex.quote(str(root))}`" in shown, shown
