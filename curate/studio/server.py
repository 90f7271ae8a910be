"""Start, stop and inspect one Label Studio server (curate.studio.fleet runs one per clinician).

Label Studio runs from its own virtualenv (its pins conflict with ours), keeps its
data in `<home>/data` (home: `<workspace>/studio/<clinician slug>`, or `<workspace>/studio`
for the single shared server of catalogues made before), serves the raters' copies through a
local-files storage under `served_root` (a folder holding nothing else), and has telemetry,
Sentry and version checks switched off. The pid file `<home>/server.json` holds pid, host and port, never secrets.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from curate.errors import StudioError
from curate.files import write_atomic
from curate.net import LOOPBACK
from curate.parallel import alive

EXECUTABLE_ENV = "CURATE_LABEL_STUDIO"
DEFAULT_PORT = 8080
START_TIMEOUT_S = 180
DB_FILE = "label_studio.sqlite3"
COPIES = Path("studio") / "files"  # the raters' copies, relative to the workspace and to `served_root`


def served_root(workspace_root: Path) -> Path:
    """The embedded servers' LOCAL_FILES_DOCUMENT_ROOT: `<workspace>/studio/served`, whose one entry,
    `studio/files`, links to the raters' copies (so task URLs keep their `studio/files/...` path).

    Why not the workspace: any Label Studio account may add a local-files storage anywhere under the document
    root and then read what lies there. Rooted at the workspace, a rater read every other clinician's
    database (their annotations, the steward's key), the catalogue and the originals with their EXIF."""
    return Path(workspace_root) / "studio" / "served"


def make_served_root(workspace_root: Path) -> Path:
    """`served_root`, made (owner-only) if missing; idempotent, safe to kill (the link is renamed in) and to run
    from several threads at once (`Fleet.start_all`)."""
    root = served_root(workspace_root)
    link = root / COPIES
    if not link.is_symlink():
        (Path(workspace_root) / COPIES).mkdir(mode=0o700, parents=True, exist_ok=True)
        for folder in (root, link.parent):  # each owner-only (`parents=True` gives parents the umask's mode)
            folder.mkdir(mode=0o700, exist_ok=True)
        tmp = link.with_name(f".files.{uuid.uuid4().hex}")  # servers start in threads: one name each
        os.symlink(os.path.relpath(Path(workspace_root) / COPIES, link.parent), tmp)
        os.replace(tmp, link)  # a link another start put there meanwhile is the same link
    return root


def move_storages(db: Path, workspace_root: Path, files_root: Path) -> int:
    """Point the local-files storages that projects made while this server served the whole workspace
    (`<workspace>/studio/files`) at the copies under `files_root`; return how many moved.

    Done in the server's own database while it is stopped, because it must happen before the first
    request under the new document root and curate holds no key to the server then (Label Studio has
    no command for it). Storages elsewhere are left alone."""
    old = Path(workspace_root) / COPIES
    olds = sorted({str(old), str(old.resolve())})
    new = str(Path(files_root) / COPIES)
    if not db.is_file() or str(old) == new:
        return 0
    try:
        with contextlib.closing(sqlite3.connect(db)) as con, con:
            cur = con.execute(
                "UPDATE io_storages_localfilesmixin SET path = ? "  # the import storages' common part
                "WHERE id IN (SELECT localfilesmixin_ptr_id FROM io_storages_localfilesimportstorage) "
                f"AND rtrim(path, '/') IN ({', '.join('?' * len(olds))})",
                (new, *olds),
            )
            return cur.rowcount
    except sqlite3.Error as exc:
        raise StudioError(f"Label Studio's database {db} could not be updated ({exc})") from exc


def user_install_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("mpox-curate")) / "label-studio"


def find_executable() -> Path | None:
    """$CURATE_LABEL_STUDIO, else `label-studio` on PATH, else the one `curate studio install` made."""
    env = os.environ.get(EXECUTABLE_ENV)
    if env:
        return Path(env) if Path(env).is_file() else None
    on_path = shutil.which("label-studio")
    if on_path:
        return Path(on_path)
    own = user_install_dir() / "bin" / "label-studio"
    return own if own.is_file() else None


def require_executable() -> Path:
    exe = find_executable()
    if exe is None:
        hint = (
            f"${EXECUTABLE_ENV} points to a missing file"
            if os.environ.get(EXECUTABLE_ENV)
            else f"run `curate studio install`, or set ${EXECUTABLE_ENV} to a label-studio executable"
        )
        raise StudioError(f"Label Studio is not installed ({hint})")
    return exe


# Label Studio 1.23 asks for sentry-sdk>=2.16 with no upper bound, and sentry-sdk 3 (2026-12) refuses the options it
# passes: `label-studio` run by hand (its Sentry on) stopped with a TypeError at start (our servers run with it off)
LABEL_STUDIO = ("label-studio>=1.23,<1.24", "sentry-sdk>=2.16,<3")


def install(requirements: tuple[str, ...] = LABEL_STUDIO, target: Path | None = None) -> Path:
    """Create a separate virtualenv with Label Studio in it (never in the toolkit's own). pip's lines go to stderr:
    stdout is for the command's own answer (`--json`)."""
    target = target or user_install_dir()
    try:
        if not (target / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(target)], check=True, stdout=2)
        pip = [str(target / "bin" / "python"), "-m", "pip", "install", "--upgrade", *requirements]
        subprocess.run(pip, check=True, stdout=2)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise StudioError(f"installing Label Studio into {target} failed: {exc}") from exc
    return target / "bin" / "label-studio"


# what a Label Studio process inherits from the steward's environment: where programs, home, locale, time zone and
# temporary files are. Nothing else: the catalogue's PGPASSWORD or CURATE_DB_URL, an engine's API key, a proxy's
# credentials have no business in a web server clinicians log into, and Django reads settings from the environment
# (DJANGO_DB, POSTGRE_*, USERNAME, PASSWORD, SECRET_KEY …): each server keeps its own key in <data>/.env.
_INHERITED = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SYSTEMROOT"}
    | {"LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR"}  # a Python built elsewhere (conda, HPC modules) needs these
)


def server_env(data_dir: Path, files_root: Path) -> dict[str, str]:
    """Environment for every Label Studio process we run: private data dir, no phoning home, and of the
    caller's environment only `_INHERITED` and the locale (LC_*)."""
    env = {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith("LC_")}
    env.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "LOCAL_FILES_SERVING_ENABLED": "true",
            "LOCAL_FILES_DOCUMENT_ROOT": str(files_root),
            "COLLECT_ANALYTICS": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "LATEST_VERSION_CHECK": "false",
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def init_data_dir(data_dir: Path, files_root: Path, admin_email: str, admin_password: str, admin_token: str) -> None:
    """`label-studio init`: create the database and the steward's admin account (slow: ~20 s).

    Credentials travel in the child's environment, never on its command line.
    """
    exe = require_executable()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = server_env(data_dir, files_root)
    env.update(
        {
            "LABEL_STUDIO_USERNAME": admin_email,
            "LABEL_STUDIO_PASSWORD": admin_password,
            "LABEL_STUDIO_USER_TOKEN": admin_token,
        }
    )
    r = subprocess.run(
        [str(exe), "init", "--data-dir", str(data_dir), "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if r.returncode != 0 or not (data_dir / "label_studio.sqlite3").exists():
        last = (r.stdout or "").strip().splitlines()[-1:] or [""]
        raise StudioError(f"label-studio init failed (exit {r.returncode}): {last[0][:300]}")


@dataclass
class ServerInfo:
    pid: int
    host: str
    port: int
    url: str


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    # Label Studio itself probes 'localhost'; a listener there would make it move silently.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((LOOPBACK, port)) != 0


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(url.rstrip("/") + "/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def document_root_of(pid: int) -> Path | None:
    """The LOCAL_FILES_DOCUMENT_ROOT a running server was started with, from its environment (`/proc`), or None
    when that cannot be read (not Linux, another user's process, gone). Nothing we keep can tell it: a server
    started before the root moved to `served_root` keeps serving the whole workspace until it restarts."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for item in environ.split(b"\0"):
        name, _, value = item.partition(b"=")
        if name == b"LOCAL_FILES_DOCUMENT_ROOT":
            return Path(os.fsdecode(value))
    return None


class EmbeddedServer:
    """One Label Studio server living in `home` (default <workspace>/studio): `start()`, `stop()`, `status()`."""

    def __init__(self, workspace_root: Path, files_root: Path | None = None, home: Path | None = None):
        self.root = Path(workspace_root)
        # Label Studio serves local files only under this folder (`served_root`, unless told otherwise).
        self.files_root = Path(files_root) if files_root else served_root(self.root)
        self.dir = Path(home) if home else self.root / "studio"
        self.data_dir = self.dir / "data"
        self.pid_file = self.dir / "server.json"
        self.log_file = self.dir / "server.log"
        self.restarted_from: Path | None = None  # the other document root `start` found the server running under

    @property
    def initialised(self) -> bool:
        return (self.data_dir / DB_FILE).exists()

    def status(self) -> ServerInfo | None:
        """The running server, or None (a stale pid file is removed)."""
        try:
            info = ServerInfo(**json.loads(self.pid_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if not alive(info.pid) or not _is_label_studio(info.pid):
            self.pid_file.unlink(missing_ok=True)
            return None
        return info

    def init(self, admin_email: str, admin_password: str, admin_token: str) -> None:
        if self.initialised:
            raise StudioError(f"the embedded server in {self.data_dir} is already initialised")
        self._make_files_root()
        init_data_dir(self.data_dir, self.files_root, admin_email, admin_password, admin_token)

    def start(
        self,
        port: int = DEFAULT_PORT,
        host: str = LOOPBACK,
        timeout: float = START_TIMEOUT_S,
        cancel: threading.Event | None = None,
    ) -> ServerInfo:
        """The running server, or a new one, once it answers; a server running under another document root
        (`stale_root`) is stopped and started again under this one (`restarted_from` says which it was): every
        account of it could read what lies under that root. `cancel` set (another thread's Ctrl-C) ends the wait.

        The pid file is written as soon as the server is started, not once it answers: a start stopped at any
        moment, even by kill -9, leaves a server that `status` finds and `stop` ends, never one nobody knows of
        holding the port. A start stopped here (Ctrl-C, SIGTERM, a timeout) ends the server it started.

        Starts of one server wait for each other (an flock on `start.lock`): two within the same moment both
        found no server and both started one; the later pid file won, and when that server failed (its port
        taken by the first) the first ran unrecorded."""
        if not self.dir.is_dir():
            return self._start(port, host, timeout, cancel)  # nothing here to start: refused in one line
        fd = os.open(self.dir / "start.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # the other start's whole wait, at most its `timeout`
            return self._start(port, host, timeout, cancel)
        finally:
            os.close(fd)  # releases the lock

    def _start(self, port: int, host: str, timeout: float, cancel: threading.Event | None) -> ServerInfo:
        running = self.status()
        if running and (old := self.stale_root(running)) is None:
            self._wait_until_healthy(running, timeout, cancel)  # started by a command killed before it answered
            return running
        if running:
            self.stop()
            self.restarted_from = old
        if not self.initialised:
            raise StudioError(
                f"the Label Studio data in {self.data_dir} is not initialised (run `curate studio start`)"
            )
        if not port_free(host, port):
            raise StudioError(
                f"port {port} on {host} is busy (another program, or a server of another workspace): "
                "stop that program; this server's URL, which clinicians and the catalogue know, stays"
            )
        exe = require_executable()
        self._make_files_root()
        move_storages(self.data_dir / DB_FILE, self.root, self.files_root)
        env = server_env(self.data_dir, self.files_root)
        url = f"http://{LOOPBACK if host in ('0.0.0.0', '::') else host}:{port}"
        env["LABEL_STUDIO_HOST"] = url
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                [
                    str(exe),
                    "start",
                    "--data-dir",
                    str(self.data_dir),
                    "--internal-host",
                    host,
                    "--port",
                    str(port),
                    "--no-browser",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        info = ServerInfo(pid=proc.pid, host=host, port=port, url=url)
        try:
            write_atomic(self.pid_file, json.dumps(asdict(info)))
            self._wait_until_healthy(info, timeout, cancel, exited=proc.poll)
        except BaseException:
            _terminate(proc.pid)
            self.pid_file.unlink(missing_ok=True)
            raise
        return info

    def _wait_until_healthy(
        self,
        info: ServerInfo,
        timeout: float,
        cancel: threading.Event | None,
        exited: Callable[[], int | None] | None = None,
    ) -> None:
        """Wait until the server `info` answers; `exited()` gives its exit code once it has ended (a server this
        process did not start: whether its pid still runs)."""
        stop = cancel or threading.Event()  # never set: its wait is a sleep
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = exited() if exited else (None if alive(info.pid) else "unknown")
            if code is not None:
                raise StudioError(f"Label Studio exited during start-up (code {code}); see {self.log_file}")
            if healthy(info.url, timeout=1):
                return
            if stop.wait(0.3):
                raise StudioError("the start was cancelled")
        raise StudioError(f"Label Studio did not answer on {info.url} within {timeout:.0f} s; see {self.log_file}")

    def stale_root(self, info: ServerInfo) -> Path | None:
        """The document root the running server `info` serves, when it is not this server's (`files_root`);
        else None, as when it cannot be read."""
        root = document_root_of(info.pid)
        return None if root is None or root.resolve() == self.files_root.resolve() else root

    def _make_files_root(self) -> None:
        (self.root / COPIES).mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.files_root == served_root(self.root):
            make_served_root(self.root)

    def stop(self, timeout: float = 20) -> bool:
        info = self.status()
        if info is None:
            return False
        _terminate(info.pid, timeout)
        self.pid_file.unlink(missing_ok=True)
        return True


def _is_label_studio(pid: int) -> bool:
    """Whether process `pid` runs Label Studio, as far as this system tells (no /proc: assumed so). A pid file
    that outlived its server (a reboot) may name a pid another program has since: it is neither waited for
    nor stopped."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return b"label-studio" in command or b"label_studio" in command


def _terminate(pid: int, timeout: float = 20) -> None:
    """SIGTERM the server's process group (it was started in its own session), then SIGKILL."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            if not alive(pid):
                return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
