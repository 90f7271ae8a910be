"""One Label Studio server per clinician: the blinding that one open-source server cannot give.

The open-source edition lets every account of a server read every project, so a rater
with an account next to another rater's project can read that rater's labels. Here each
clinician (each rater and the reviewer) gets a server of their own: its own data folder
`<workspace>/studio/<slug>/data` (slug = a hash of the email, so no name appears on disk),
its own port, and two accounts only: the steward's admin and that clinician.

New servers are copies of `<workspace>/studio/template/data`, initialised once with the
steward's account (`label-studio init` takes ~20 s, a copy well under a second). The copy
leaves out the template's `.env`, so every server generates its own Django SECRET_KEY;
the steward's admin token is the steward's own and is the same everywhere.
`<workspace>/studio/clinicians.json` (owner-only) maps each email to its slug and port.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

from curate.errors import StudioError
from curate.files import write_atomic
from curate.net import LOOPBACK
from curate.studio.server import (
    DB_FILE,
    DEFAULT_PORT,
    START_TIMEOUT_S,
    EmbeddedServer,
    ServerInfo,
    init_data_dir,
    make_served_root,
    port_free,
    served_root,
)

FIRST_CLINICIAN_PORT = DEFAULT_PORT + 1  # 8080 stays with the shared server of catalogues made before
PRIVATE_FILES = (".env",)  # SECRET_KEY: never copied from the template


# local@domain.tld: no spaces, commas or brackets (before, "a@b", "x y@clinic.org" and "a@x.org,b@y.org" became
# clinicians, each with a server, and Label Studio then refused the account with a message about passwords); no
# "=" either, which `--url EMAIL=URL` splits at (an account "a=b@clinic.org" could never be given a server)
_EMAIL = re.compile(r"[^@\s,;<>()\[\]\"'=]+@[^@\s,;<>()\[\]\"'.=]+(\.[^@\s,;<>()\[\]\"'.=]+)+")


def check_email(email: str) -> str:
    """`email` stripped and lowercased, or a StudioError saying it is not an address."""
    email = email.strip().lower()
    if not _EMAIL.fullmatch(email):
        raise StudioError(f"{email!r} is not an email address (name@clinic.org, one at a time)")
    return email


@dataclass(frozen=True)
class Clinician:
    email: str
    slug: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def slug_for(email: str) -> str:
    """A folder name that says nothing about the person."""
    return "clinician-" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:10]


@dataclass
class ServerState:
    name: str  # an email, or "shared" for the one server of catalogues made before
    url: str
    running: ServerInfo | None
    stale_root: Path | None = None  # the other document root it ran under (`EmbeddedServer.stale_root`)


class Fleet:
    """Every Label Studio server of one workspace: one per clinician, plus the shared one of old catalogues."""

    def __init__(self, workspace_root: Path, files_root: Path | None = None):
        self.root = Path(workspace_root)
        self.files_root = Path(files_root) if files_root else served_root(self.root)
        self.dir = self.root / "studio"
        self.template = self.dir / "template" / "data"
        self.registry = self.dir / "clinicians.json"

    # --- registry -----------------------------------------------------------------
    def clinicians(self) -> list[Clinician]:
        try:
            rows = json.loads(self.registry.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise StudioError(
                f"{self.registry} is unreadable ({exc}); restore it or remove it and re-add the clinicians"
            ) from exc
        return [Clinician(**r) for r in rows]

    def find(self, email: str) -> Clinician | None:
        email = email.strip().lower()
        return next((c for c in self.clinicians() if c.email == email), None)

    def urls(self) -> dict[str, str]:
        return {c.email: c.url for c in self.clinicians()}

    def server(self, c: Clinician) -> EmbeddedServer:
        return EmbeddedServer(self.root, self.files_root, home=self.dir / c.slug)

    def shared(self) -> EmbeddedServer | None:
        """The single server `curate studio start` ran before per-clinician servers
        (kept so old projects still pull)."""
        legacy = EmbeddedServer(self.root, self.files_root)
        return legacy if legacy.initialised else None

    def steward_key(self) -> str | None:
        """The steward's API key as the template holds it (every clinician's server is a copy of it), or None
        where there is no template. Read from the template's Label Studio database, opened read-only: the key is
        shown once and not stored by curate, a key lost had no way back, and a server's own API gives a token
        only to a session opened by a password. Whoever can read this folder (the workspace's owner alone) can
        read the key there anyway. A key reset in one server's web page is that server's alone."""
        for data in (self.template, *([s.data_dir] if (s := self.shared()) else [])):
            db = data / DB_FILE
            if not db.is_file():
                continue
            try:
                with closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as con:
                    row = con.execute(
                        "SELECT t.key FROM authtoken_token t JOIN htx_user u ON u.id = t.user_id "
                        "WHERE u.is_superuser ORDER BY u.id LIMIT 1"
                    ).fetchone()
            except sqlite3.Error as exc:
                raise StudioError(f"cannot read the steward's key from {db}: {exc}") from None
            if row:
                return row[0]
        return None

    # --- set-up -------------------------------------------------------------------
    @property
    def initialised(self) -> bool:
        return (self.template / DB_FILE).exists()

    def init(self, admin_email: str, admin_password: str, admin_token: str) -> None:
        """Create the template every clinician's server is copied from (the steward's account only)."""
        if self.initialised:
            raise StudioError(f"the Label Studio template in {self.template} is already initialised")
        tmp = self.dir / "template" / "data.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if self.files_root == served_root(self.root):
            make_served_root(self.root)
        init_data_dir(tmp, self.files_root, admin_email, admin_password, admin_token)
        tmp.rename(self.template)

    def adopt_template(self, data_dir: Path) -> None:
        """Use an initialised data dir (the test suite's cache) as the template."""
        tmp = self.dir / "template" / "data.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(data_dir, tmp, ignore=shutil.ignore_patterns(*PRIVATE_FILES))
        tmp.rename(self.template)

    def add(self, email: str, port: int | None = None) -> Clinician:
        """Register `email` and give it a server of its own (idempotent: an existing one is returned)."""
        email = check_email(email)
        have = self.find(email)
        if have is not None:
            return have
        if not self.initialised:
            raise StudioError("Label Studio is not set up in this workspace yet: run `curate studio start` first")
        c = Clinician(email, slug_for(email), port or self._next_port())
        data = self.dir / c.slug / "data"
        if not (data / DB_FILE).exists():
            tmp = data.with_name("data.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(self.template, tmp, ignore=shutil.ignore_patterns(*PRIVATE_FILES))
            tmp.rename(data)
        self._save(self.clinicians() + [c])
        return c

    def remove(self, c: Clinician) -> None:
        """Stop `c`'s server and forget it, its folder too: what a failed `add-user` had made."""
        self.server(c).stop()
        self._save([x for x in self.clinicians() if x.email != c.email])
        shutil.rmtree(self.dir / c.slug, ignore_errors=True)

    def _next_port(self) -> int:
        used = {c.port for c in self.clinicians()}
        port = FIRST_CLINICIAN_PORT
        while port in used or not port_free(LOOPBACK, port):
            port += 1
        return port

    def _save(self, rows: list[Clinician]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.registry, json.dumps([asdict(c) for c in rows], indent=1))
        self.registry.chmod(0o600)

    # --- run ----------------------------------------------------------------------
    def _all(self) -> list[tuple[str, EmbeddedServer, int]]:
        out = [(c.email, self.server(c), c.port) for c in self.clinicians()]
        legacy = self.shared()
        if legacy is not None:
            out.append(("shared", legacy, DEFAULT_PORT))
        return out

    def start_all(self, host: str = LOOPBACK, timeout: float = START_TIMEOUT_S) -> list[ServerState]:
        """Start every server at once (each takes a few seconds; in parallel they take about as long as one)."""
        todo = self._all()
        cancel = threading.Event()  # Ctrl-C or SIGTERM reaches this thread only: it tells the starts still waiting

        def one(item):
            name, server, port = item
            info = server.start(port=port, host=host, timeout=timeout, cancel=cancel)
            return ServerState(name, info.url, info, server.restarted_from)

        with ThreadPoolExecutor(max_workers=max(1, len(todo))) as pool:
            futures = [pool.submit(one, item) for item in todo]
            results, errors = [], []
            try:
                for f in futures:
                    try:
                        results.append(f.result())
                    except StudioError as exc:
                        errors.append(exc)
            except BaseException:  # each start still waiting ends its server (those up stay recorded)
                cancel.set()
                raise
        if errors:
            raise errors[0]
        return results

    def start_one(self, c: Clinician, host: str = LOOPBACK, timeout: float = START_TIMEOUT_S) -> ServerInfo:
        return self.server(c).start(port=c.port, host=host, timeout=timeout)

    def stop_all(self) -> list[str]:
        return [name for name, server, _ in self._all() if server.stop()]

    def status(self) -> list[ServerState]:
        out = []
        for name, server, port in self._all():
            info = server.status()
            stale = server.stale_root(info) if info else None
            out.append(ServerState(name, info.url if info else f"http://{LOOPBACK}:{port}", info, stale))
        return out
