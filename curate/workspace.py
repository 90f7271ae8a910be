"""A workspace: catalogue, content-addressed image store and exports, in one folder.

Layout::

    <root>/curate.toml      marker + settings (never secrets): db_url, and [labels], the study's
                            diagnosis list (curate/label/diagnoses.py; README "Workspace settings")
    <root>/catalogue.db     SQLite catalogue (unless --db / CURATE_DB_URL points elsewhere)
    <root>/objects/ab/…     originals by SHA-256
    <root>/exports/         dataset versions
    <root>/reports/         HTML review sheets and reports
    <root>/tmp/             partial files, renamed into place when complete

Everything in it is private to the owner (folders 0700, files 0600/0400; see `curate.privacy`).
The catalogue URL is remembered in `curate.toml` without its password (libpq takes it from
$PGPASSWORD or ~/.pgpass), and a workspace created on PostgreSQL never falls back to SQLite.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import sqlite3
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, unquote

from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DatabaseError, DataError, IntegrityError, OperationalError, SQLAlchemyError
from sqlmodel import Session

from curate.errors import CatalogueFault, WorkspaceError
from curate.files import write_atomic
from curate.intake.store import ImageStore
from curate.label.diagnoses import SETTINGS_TABLE, DiagnosisList
from curate.lock import LOCK_NAME, holding
from curate.privacy import tighten
from curate.redact import ambiguous_userinfo, redact_text, secret_name, url_secret
from db.engine import SQLITE_BUSY_TIMEOUT_MS, make_engine, session_scope
from db.migrate import CatalogueMismatch, current_revision, taken_names, upgrade_from

MARKER = "curate.toml"
DB_ENV = "CURATE_DB_URL"
WORKSPACE_ENV = "CURATE_WORKSPACE"
INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL's SQLSTATE for "permission denied"
PASSWORD_REFUSED = "password authentication failed"  # libpq's words for a wrong password (not a missing one)
FULL_BYTES = 1 << 20  # free space under which a reader opens the catalogue read-only: SQLite's -shm alone takes 32 KiB
T = TypeVar("T")


def _redact(url: str) -> str:
    """The URL as it may be shown: user:***@, and ***  for a secret in its query (`?password=`)."""
    try:
        return redact_text(make_url(url).render_as_string(hide_password=True))
    except Exception:  # an unparsable URL is shown without anything that looks like a password
        return redact_text(url)


def _without_password(url: str) -> str:
    """The URL as curate.toml remembers it: no user:password@ password, no `?password=` or other secret key."""
    u = make_url(url)
    query = {k: v for k, v in u.query.items() if not secret_name(k)}
    return URL.create(u.drivername, u.username, None, u.host, u.port, u.database, query).render_as_string(
        hide_password=False
    )


def _backend(url: str) -> str:
    return make_url(url).get_backend_name()


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _settings_text(db_url: str | None) -> str:
    """curate.toml for a new workspace: the URL without its password, and the backend, so it is never guessed."""
    lines = ["# mpox-curate workspace (never holds secrets)\n"]
    if db_url and _backend(db_url) != "sqlite":
        lines.append(f"db_url = {_toml_str(_without_password(db_url))}\n")
        lines.append(f"backend = {_toml_str(_backend(db_url))}\n")
    else:
        lines.append('backend = "sqlite"\n')
        if db_url:
            lines.append(f"db_url = {_toml_str(db_url)}\n")
    return "".join(lines)


def _absolute(url: str) -> str:
    """A SQLite URL with its file's absolute path: a relative one would be a new, empty catalogue for every
    command run from another folder."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:" or Path(u.database).is_absolute():
        return url
    return u.set(database=str(Path(u.database).resolve())).render_as_string(hide_password=False)


def _recorded_catalogue(root: Path, settings: dict) -> str | None:
    """The catalogue URL curate.toml points at (None when it does not say: see `Workspace._at`)."""
    if settings.get("db_url"):
        return settings["db_url"]
    backend = settings.get("backend")
    if backend == "sqlite" or (backend is None and (root / "catalogue.db").exists()):
        return f"sqlite:///{root / 'catalogue.db'}"
    return None


def _catalogue_key(url: str) -> tuple:
    """What makes two URLs the same catalogue: not the password or the driver, and a SQLite file by its path."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return ("sqlite", str(Path(u.database).resolve()) if u.database and u.database != ":memory:" else u.database)
    return (u.get_backend_name(), u.username, u.host, u.port, u.database)


@dataclass
class Workspace:
    root: Path
    db_url: str
    settings: dict = field(default_factory=dict)
    diagnoses: DiagnosisList = field(default_factory=DiagnosisList)
    recorded: bool = field(default=False, repr=False)  # opened as the catalogue curate.toml records (`_refuse_blank`)

    # --- construction -------------------------------------------------------------
    @classmethod
    def init(cls, root: Path | str = ".", db_url: str | None = None, keep_catalogue: bool = False) -> Workspace:
        """Create (or complete) a workspace at `root`; safe to re-run. Makes everything in it private.
        `keep_catalogue` (`curate pipeline`, which inits on every run): an existing workspace whose SQLite
        catalogue is gone or empty, or whose PostgreSQL one has no schema, is refused as `open` refuses it, instead
        of starting an empty one.

        curate.toml is written only once its catalogue has opened, so an unreachable URL leaves no workspace
        pointing at it. An existing workspace keeps its catalogue: another `db_url` is refused, since curate.toml
        would go on naming the old one (and a switch would hide its rows)."""
        root = Path(root).resolve()
        outer = _enclosing(root)
        if outer is not None:  # its exports/, objects/ or tmp/ would gain a catalogue of their own
            raise WorkspaceError(
                f"{root} is inside the workspace {outer}: init a folder outside it (a workspace never nests)"
            )
        if not (root / MARKER).is_file() and (inner := _nested(root)) is not None:
            # before: `curate status` one folder too high advised `curate init <here>`, and init made an empty
            # workspace around the study
            raise WorkspaceError(
                f"{root} holds the workspace {inner}: a workspace never nests; work in that one (cd {inner}, or "
                f"-w {inner}), or init a folder beside it"
            )
        if db_url:
            _check_url(db_url)
            db_url = _absolute(db_url)
        marker = root / MARKER
        settings = _read_settings(marker) if marker.is_file() else None
        if settings is not None:
            _check_settings(settings, marker)
        recorded = None if settings is None else _recorded_catalogue(root, settings)
        if db_url and recorded and _catalogue_key(db_url) != _catalogue_key(recorded):
            raise WorkspaceError(
                f"{root} already uses catalogue {_redact(recorded)}; init does not switch catalogues (the old one's "
                f"rows would be hidden): drop --db / {DB_ENV}, or init a new folder for {_redact(db_url)}"
            )
        # A marker without db_url or backend (main once wrote one for a URL with a password) is completed.
        fresh = settings is None or (db_url and recorded is None and "backend" not in settings)
        text = _settings_text(db_url) if fresh else None
        folders = [root, *(root / sub for sub in ("objects", "exports", "reports", "tmp"))]
        made = [p for p in [*reversed(root.parents), *folders] if not p.exists()]
        try:
            for folder in folders:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            _remove_empty(made)
            raise WorkspaceError(f"cannot create workspace at {root}: {exc.strerror}") from exc
        try:
            ws = cls._at(root, tomllib.loads(text) if text else settings, db_url)
            if keep_catalogue and settings is not None:
                ws._refuse_lost_catalogue(recorded)
                ws.recorded = recorded is not None
            ws.migrate()
            if text:
                try:
                    write_atomic(marker, text, ws.tmp, mode=0o600)
                except OSError as exc:
                    raise WorkspaceError(f"cannot write {marker}: {exc.strerror}") from exc
        except BaseException:
            _remove_empty(made)  # before: an unreachable catalogue left a folder that looked like a workspace
            raise
        tighten(ws.private_paths())
        return ws

    @classmethod
    def open(cls, root: Path | str | None = None, db_url: str | None = None) -> Workspace:
        """Open the workspace at `root` (default: $CURATE_WORKSPACE or the current folder)."""
        root = Path(root or os.environ.get(WORKSPACE_ENV) or ".").resolve()
        marker = root / MARKER
        if not marker.is_file():
            outer = _enclosing(root)
            if outer is not None:  # before: "run `curate init <here>`", which init then refuses (no nesting)
                raise WorkspaceError(f"{root} is inside the workspace {outer}: run from there, or pass -w {outer}")
            if (inner := _nested(root)) is not None:
                raise WorkspaceError(f"no workspace at {root}, but {inner} is one: cd {inner}, or pass -w {inner}")
            raise WorkspaceError(f"no workspace at {root} (run `curate init {root}` first)")
        settings = _read_settings(marker)
        ws = cls._at(root, settings, db_url)
        recorded = _recorded_catalogue(root, settings)
        if recorded is not None and _catalogue_key(ws.db_url) != _catalogue_key(recorded):
            # before: --db or $CURATE_DB_URL quietly put this workspace's rows into another study's catalogue (and
            # its originals in this store), which `curate init` refuses
            raise WorkspaceError(
                f"--db / ${DB_ENV} names another catalogue ({_redact(ws.db_url)}) than this workspace's "
                f"({_redact(recorded)}, in {marker.name}): leave it out, or give the one this workspace records"
            )
        ws._refuse_lost_catalogue(recorded)
        ws.recorded = recorded is not None
        return ws

    @classmethod
    def _at(cls, root: Path, settings: dict, db_url: str | None) -> Workspace:
        """The workspace at `root` with these settings: its catalogue `db_url`, $CURATE_DB_URL or the recorded one."""
        marker = root / MARKER
        _check_settings(settings, marker)
        url = db_url or os.environ.get(DB_ENV) or settings.get("db_url")
        where = f"--db / {DB_ENV}" if db_url or os.environ.get(DB_ENV) else f"{marker}: db_url"
        if not url:
            backend = settings.get("backend")
            if backend not in (None, "sqlite") or (backend is None and not (root / "catalogue.db").exists()):
                raise WorkspaceError(
                    f"{marker} does not say where its {backend or 'catalogue'} is (created with a password in the "
                    f"URL?): pass --db or set {DB_ENV} once, password in $PGPASSWORD or ~/.pgpass"
                )
            url = f"sqlite:///{root / 'catalogue.db'}"
        _check_url(url, where)
        diagnoses = DiagnosisList.from_settings(
            settings, where=str(marker)
        )  # a bad list stops every command, before any write
        return cls(root=root, db_url=url, settings=settings, diagnoses=diagnoses)

    def _refuse_lost_catalogue(self, recorded: str | None) -> None:
        """A workspace's own SQLite catalogue gone or 0 bytes (a valid one never is) stops the command: opening it
        would write a fresh, empty schema over the loss while objects/ still holds the originals. Only `init`
        starts an empty catalogue."""
        if (
            recorded is None
            or _backend(self.db_url) != "sqlite"
            or _catalogue_key(self.db_url) != _catalogue_key(recorded)
        ):
            return
        files = self.sqlite_files()
        if not files:
            return
        try:
            state = "empty (0 bytes)" if files[0].stat().st_size == 0 else None
        except FileNotFoundError:
            state = "missing"
        except OSError:
            return  # unreadable: SQLite's own error names it when the catalogue opens
        if state is None:
            return
        held = self.store.count()
        originals = f" but objects/ holds {held} original{'s' if held != 1 else ''}" if held else ""
        raise WorkspaceError(
            f"catalogue {files[0]} is {state}{originals}: restore it from a backup, "
            f"or run `curate init {self.root}` to start an empty catalogue"
        )

    def _refuse_blank(self, engine: Engine, current: str | None) -> None:
        """A workspace's PostgreSQL catalogue with no mpox-curate schema (the database dropped and made again, a
        restore into another one) while objects/ holds originals stops every command but `init`, as a lost SQLite file
        does (`_refuse_lost_catalogue`): opening it wrote a fresh schema, and `status` called the originals
        unrecorded."""
        if not self.recorded or _backend(self.db_url) == "sqlite" or current is not None:
            return
        if taken_names(engine):  # tables of this schema's names: `upgrade` names them
            return
        held = self.store.count()
        if held:
            engine.dispose()
            raise WorkspaceError(
                f"catalogue {_redact(self.db_url)} holds no mpox-curate schema (a database made again?) but "
                f"objects/ holds {held} original{'s' if held != 1 else ''}: restore it from a backup, or run "
                f"`curate init {self.root}` to start an empty catalogue"
            )

    def _refuse_unusable(self, exc: DatabaseError) -> None:
        """A SQLite catalogue whose file is not a database or has malformed pages (SQLite's CORRUPT and NOTADB
        codes; sqlite3 raises them as plain DatabaseError), or a PostgreSQL role without a privilege the command
        needs (SQLSTATE 42501, a ProgrammingError that carried its SQL and parameters): one line naming the
        catalogue, never SQLAlchemy's text."""
        if (getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)) == INSUFFICIENT_PRIVILEGE:
            raise WorkspaceError(
                f"catalogue {_redact(self.db_url)}: the database role may not do this "
                f"({redact_text(_first_line(exc.orig))}): grant it SELECT, INSERT, UPDATE and DELETE on the "
                "catalogue's tables, USAGE and SELECT on its sequences, and CREATE on its schema for `curate init` "
                "and upgrades"
            ) from exc
        if isinstance(exc, DataError) and (width := VARCHAR.search(str(exc.orig))):  # mid-work: "aborted"
            raise CatalogueFault(_too_long(exc, int(width[1]))) from None
        name = getattr(exc.orig, "sqlite_errorname", "") or ""
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            files = self.sqlite_files()
            where = files[0] if files else _redact(self.db_url)
            raise WorkspaceError(
                f"catalogue {where} is damaged ({_first_line(exc.orig)}): restore it from a backup"
            ) from exc

    def _refuse_foreign_wal(self) -> None:
        """A SQLite catalogue with a non-empty -wal beside it is first read as SQLite would read it, the -wal's pages
        over the file's, and checked (`PRAGMA quick_check`) before any read-write connection opens: one that
        does not read as one catalogue stops the command, with nothing written. Before, a catalogue restored from a
        backup (or copied in) while the -wal of a killed command stayed beside it was read with that -wal's pages
        laid over an older file: pages never used, index entries missing (a second ingest took the same photos
        again past the UNIQUE index), and the first connection's close checkpointed the mix into the file for
        good. SQLite cannot tell a -wal of another state: the -wal records no identity of its catalogue.

        The check's connection is read-only (`mode=ro`): it never checkpoints, so catalogue.db and its -wal are
        left byte for byte (it may make or rebuild the -shm, the -wal's index, as every reader does). A -wal
        without a -shm (copied without it) is checked the same way where the folder can be written; where SQLite
        cannot open it so (a read-only folder without the -shm) or another error stops the check (busy past the
        timeout), the command goes on as before: its own open meets the error, and a catalogue opened read-only
        (`_read_only_url`) never checkpoints either. The cost, a read of every page, is paid only with a -wal
        present at open (after a kill, or beside a running command). A -wal of the same catalogue, left by a
        killed writer, reads as one catalogue and is recovered by the command as before."""
        files = self.sqlite_files()
        if not files:
            return
        db, wal, shm = files
        try:
            if not db.is_file() or db.stat().st_size == 0 or not wal.is_file() or wal.stat().st_size == 0:
                return
        except OSError:
            return
        finding = None
        try:
            con = sqlite3.connect(f"file:{quote(str(db))}?mode=ro", uri=True, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error:
            return
        try:
            rows = con.execute("PRAGMA quick_check(1)").fetchall()
            if [tuple(r) for r in rows] != [("ok",)]:
                found = [line for r in rows for line in str(r[0]).splitlines() if not line.startswith("***")]
                finding = found[0] if found else "does not read as one catalogue"
        except sqlite3.DatabaseError as exc:  # its pages are past the file's end, or not pages at all
            name = getattr(exc, "sqlite_errorname", "") or ""
            if not name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
                return
            finding = _first_line(exc)
        finally:
            con.close()
        if finding is None:
            return
        raise WorkspaceError(
            f"catalogue {db} read with the {wal.name} beside it is damaged ({finding}): likely a catalogue restored "
            f"or copied in while a -wal of another state stayed beside it. Nothing was written: once no curate command "
            f"runs here (`curate status`: a writer's -wal holds its work), move {wal.name} and {shm.name} aside (the "
            "-wal holds the changes of the catalogue it belonged to), then run again"
        )

    # --- parts ----------------------------------------------------------------------
    @property
    def objects(self) -> Path:
        return self.root / "objects"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    # what the toolkit writes in a workspace; runs/: `train run`'s default, copies of photos and their Grad-CAMs
    # (an ingest of the workspace's folder took them back in as new photos of a new source)
    OWN = ("objects", "exports", "reports", "tmp", "studio", "cache", "runs")

    @classmethod
    def toolkit_folder(cls, folder: Path) -> bool:
        """Whether `folder` is one a workspace's toolkit writes (`OWN`), of any workspace: one inside a folder
        being ingested holds copies of its photos (and another study's store)."""
        return folder.name in cls.OWN and (folder.parent / MARKER).is_file()

    @classmethod
    def whose(cls, folder: Path) -> str | None:
        """How `folder` belongs to a workspace (any), said for a refusal: a workspace itself, or in one of its
        toolkit folders (`toolkit_folder`); None for a folder of photos, one inside a workspace (`incoming/`)
        included. Before, `curate ingest ../other/objects` and `pipeline --incoming ../other` took another study's
        store in as a new source, `walk.iter_files` looking only below the folder given."""
        resolved = Path(folder).resolve()
        if (resolved / MARKER).is_file():
            return "a workspace, whose folders hold copies of its photos"
        if place := next((f for f in (resolved, *resolved.parents) if cls.toolkit_folder(f)), None):
            return f"in the workspace {place.parent}'s {place.name}/ folder, which holds copies of its photos"
        return None

    PARTS = {  # what a file written at a path inside would overwrite (`part_at`); reports/ is for pages
        "objects": "its image store",
        "exports": "its dataset versions",
        "tmp": "its partial files",
        "studio": "its Label Studio data",
        "cache": "its caches",
    }

    def part_at(self, path: Path) -> str | None:
        """What of this workspace a file written at `path` would overwrite or land in: its catalogue (or the
        -wal/-shm beside it), its settings, or a folder of `PARTS`; None elsewhere. Before, `--html catalogue.db`
        replaced the catalogue with a page, and `--html exports/mpox/1.0.0/README.md` broke a sealed version."""
        where = Path(path).resolve()
        if where in self.sqlite_files():
            return "its catalogue"
        if where == (self.root / MARKER).resolve():
            return "its settings"
        if where == (self.root / LOCK_NAME).resolve():
            return "its writers' lock file"
        for name, what in self.PARTS.items():
            folder = (self.root / name).resolve()
            if where == folder or folder in where.parents:
                return what
        return None

    def w_option(self) -> list[str]:
        """`-w ROOT` (quoted) for a command line printed for the steward to paste (the review sheet's decisions,
        `curate status`'s re-runs), or nothing when the current folder is this workspace: pasted in another
        workspace's folder, a bare `curate dedupe split 15` recorded its decision in that catalogue. A current
        folder that cannot be read (deleted) counts as another."""
        try:
            here = Path.cwd().resolve() == self.root.resolve()
        except OSError:
            here = False
        return [] if here else ["-w", shlex.quote(str(self.root))]

    def own_folders(self) -> list[Path]:
        """The folders the toolkit writes (resolved): the store, exports, reports, partial files, the raters'
        copies and Label Studio's data, caches. Photos there are copies of stored ones, never a source."""
        return [(self.root / name).resolve() for name in self.OWN]  # one may be a link to another disk

    @cached_property
    def store(self) -> ImageStore:
        return ImageStore(self.objects, tmp=self.tmp)

    @cached_property
    def engine(self) -> Engine:
        self._refuse_foreign_wal()  # before SQLAlchemy's first connection, whose close checkpoints the -wal
        engine = make_engine(self._read_only_url() or self.db_url)
        try:
            current = current_revision(engine)  # the catalogue's schema revision, None where it has none
            self._refuse_blank(engine, current)
            upgrade_from(engine, current)
        except CatalogueMismatch as exc:
            engine.dispose()
            raise WorkspaceError(f"catalogue {_redact(self.db_url)}: {exc}") from None
        except DatabaseError as exc:
            engine.dispose()  # no pooled connection keeps the file open
            self._refuse_unusable(exc)
            server = _backend(self.db_url) != "sqlite"
            if not isinstance(exc, OperationalError) and not server:
                raise
            # a server's refusal of the URL itself (psycopg's ProgrammingError: "bad value for connect_timeout") is
            # one line naming the catalogue, as its OperationalErrors are; before, "unexpected ProgrammingError"
            reason = redact_text(_first_line(exc.orig))
            if server and url_secret(self.db_url) is None and "password" in reason:
                if PASSWORD_REFUSED in reason:  # one was given, and it is wrong: not "needs a password"
                    raise WorkspaceError(
                        f"catalogue {_redact(self.db_url)} refused the password from $PGPASSWORD or ~/.pgpass "
                        f"({reason})"
                    ) from exc
                raise WorkspaceError(  # no "password: word" here: the redaction would take the word for a secret
                    f"catalogue {_redact(self.db_url)} needs a password, from $PGPASSWORD or ~/.pgpass "
                    f"(host:port:database:user:password), never from curate.toml ({reason})"
                ) from exc
            raise WorkspaceError(f"cannot open catalogue {_redact(self.db_url)}: {reason}") from exc
        return engine

    def _read_only_url(self) -> str | None:
        """A SQLite catalogue on a read-only file system (a backup mounted read-only, a reviewer's share), on a full
        one, or in a folder this user may not write (a copy made read-only with chmod), opened read-only: SQLite
        otherwise makes its -shm beside the file, and `curate status` or `curate versions` failed ("unable to open
        database file", "attempt to write a readonly database", on a full disk "disk I/O error"; full: under
        `FULL_BYTES` free, unless this process holds the writer lock). With a -wal beside it (a writer at work, or one
        that left it), SQLite reads both. Without one the file is all there is, read as it stands (`immutable`:
        SQLite cannot make the -shm a WAL reader needs there); a writer that starts meanwhile (another user's, on a
        shared folder) is not seen by that read. None for a writable place or PostgreSQL."""
        files = self.sqlite_files()
        try:
            if not files or not files[0].is_file():
                return None
            disk = os.statvfs(files[0].parent)
            mounted = disk.f_flag & os.ST_RDONLY
            free = (disk.f_bfree if os.geteuid() == 0 else disk.f_bavail) * disk.f_frsize  # root may use the reserve
            full = free < FULL_BYTES and not holding(self.root)  # a writer meets the disk's own error
            if not (mounted or full) and os.access(files[0].parent, os.W_OK) and os.access(files[0], os.W_OK):
                return None
            wal = files[1].exists() and files[1].stat().st_size > 0  # a 0-byte one (a failed open's) holds nothing
        except OSError:
            return None
        frozen = "" if wal else "&immutable=1"
        return f"sqlite:///file:{quote(str(files[0]))}?mode=ro{frozen}&uri=true"

    def sqlite_files(self) -> list[Path]:
        """The SQLite catalogue and its -wal/-shm companions (empty for PostgreSQL)."""
        url = make_url(self.db_url)
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return []
        db = Path(url.database).resolve()
        return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]

    def private_paths(self) -> list[Path]:
        """Everything that must be the owner's alone: the workspace and a SQLite catalogue kept outside it."""
        return [self.root, *(p for p in self.sqlite_files() if self.root not in p.parents)]

    def migrate(self) -> None:
        self.engine  # noqa: B018 - building the engine migrates it

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One catalogue transaction (committed on success, rolled back on error)."""
        try:
            with session_scope(self.engine) as s:
                yield s
        except DatabaseError as exc:
            self._refuse_unusable(exc)  # else a unique key taken, or a bug's error: raised as it is
            if not isinstance(exc, OperationalError):
                raise
            raise CatalogueFault(f"catalogue error ({_redact(self.db_url)}): {exc.orig}") from exc

    def transact(self, work: Callable[[Session], T], attempts: int = 8) -> T:
        """`work(session)` in one transaction, run again from the start when a concurrent writer got in
        first: a unique key taken meanwhile (two ingests of the same photos) or, on SQLite, a snapshot
        gone stale. `work` must be safe to repeat (look before insert) and touch nothing outside `session`."""
        for attempt in range(1, attempts + 1):
            try:
                with session_scope(self.engine) as s:
                    return work(s)
            except IntegrityError as exc:
                if attempt == attempts:
                    raise CatalogueFault(f"catalogue write kept colliding with another writer: {exc.orig}") from exc
            except DatabaseError as exc:
                self._refuse_unusable(exc)
                if not isinstance(exc, OperationalError):
                    raise
                if attempt == attempts or "locked" not in str(exc.orig).lower():
                    raise CatalogueFault(f"catalogue error ({_redact(self.db_url)}): {exc.orig}") from exc
            time.sleep(random.uniform(0.01, 0.05) * attempt)
        raise AssertionError("unreachable")

    def describe_db(self) -> str:
        """The catalogue's URL as said to the steward: a SQLite file's path as typed (its URL's percent-encoding
        undone: "ünï côde" was "%C3%BCn%C3%AF c%C3%B4de"), any other's with its password masked."""
        if _backend(self.db_url) == "sqlite":
            return unquote(self.db_url)
        return _redact(self.db_url)


VARCHAR = re.compile(r"character varying\((\d+)\)")  # PostgreSQL's "value too long for type character varying(200)"


def _too_long(exc: DataError, most: int) -> str:
    """A value longer than its column, which PostgreSQL refuses (SQLite takes it), named by its column and never
    shown (a case id, a folder). The statement's parameters are named after their columns. Before: "unexpected
    DataError", then the whole INSERT with a clinic's file path and case id among its values."""
    from sqlmodel import SQLModel

    import db.models  # noqa: F401 - registers every table

    sized = {
        c.name for t in SQLModel.metadata.tables.values() for c in t.columns if getattr(c.type, "length", 0) == most
    }
    rows = exc.params if isinstance(exc.params, list | tuple) else [exc.params]
    columns = sorted(
        {
            name
            for row in rows
            if isinstance(row, dict)
            for key, value in row.items()
            if isinstance(value, str)
            and len(value) > most
            # SQLAlchemy's suffix of one row's parameters in a many-row INSERT
            and (name := re.sub(r"(__\d+|_m\d+|_\d+)$", "", key)) in sized
        }
    )
    where = ", ".join(columns) or "one of its fields"
    return f"the catalogue takes at most {most} characters in {where}: give a shorter value, then re-run"


def _first_line(err: BaseException) -> str:
    """A driver error's first line, or its type's name when it says nothing."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _read_settings(marker: Path) -> dict:
    try:
        return tomllib.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise WorkspaceError(f"{marker}: unreadable workspace settings ({exc})") from exc


SETTINGS = ("backend", "db_url", SETTINGS_TABLE)  # what curate.toml may hold at its top level


def _check_settings(settings: dict, marker: Path) -> None:
    """One line naming an unknown top-level key or table, or a backend this toolkit does not have. Before, a
    misspelled `[lables]` was ignored and the study's diagnosis list silently became the paper's eight."""
    unknown = [k for k in settings if k not in SETTINGS]
    if unknown:
        raise WorkspaceError(
            f"{marker}: {unknown[0]!r} is not a setting (curate.toml holds {', '.join(SETTINGS[:2])} and "
            f"[{SETTINGS_TABLE}]; is it misspelled?)"
        )
    if "db_url" in settings and not isinstance(settings["db_url"], str):
        _check_url(settings["db_url"], f"{marker}: db_url")
    backend = settings.get("backend")
    if backend is not None and backend not in ("sqlite", "postgresql"):
        raise WorkspaceError(f'{marker}: backend must be "sqlite" or "postgresql", not {backend!r}')


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed `init` made, deepest first, while they are empty (nothing else is touched)."""
    for folder in reversed(folders):
        with suppress(OSError):
            folder.rmdir()


def workspace_holding(path: Path | str) -> Path | None:
    """The workspace a file written at `path` would lie in (its folder, or one above it, holds `MARKER`), or None."""
    folder = Path(path).resolve().parent
    return folder if (folder / MARKER).is_file() else _enclosing(folder)


def _nested(root: Path) -> Path | None:
    """A workspace in a folder one or two levels below `root` (`./study`, `./projects/study`), or None: a cheap look,
    not a search of the whole tree."""
    for pattern in (f"*/{MARKER}", f"*/*/{MARKER}"):
        try:
            found = sorted(p.parent for p in root.glob(pattern) if p.is_file())
        except OSError:
            continue
        if found:
            return found[0]
    return None


def _enclosing(root: Path) -> Path | None:
    """The workspace a folder lies inside (a workspace never nests), or None."""
    return next((p for p in root.parents if (p / MARKER).is_file()), None)


def _check_url(url, where: str = f"--db / {DB_ENV}") -> None:
    """A catalogue URL this toolkit can use (SQLite or PostgreSQL, its driver installed), or one line naming
    where the URL came from (its password never shown). Before, a MySQL URL or a driver not installed ended in
    "unexpected ModuleNotFoundError", and a number in curate.toml blamed --db."""
    if not isinstance(url, str):
        raise WorkspaceError(f"{where}: the catalogue URL must be a string, not {type(url).__name__}")
    if not url.startswith("sqlite") and ambiguous_userinfo(url):  # never echoed: it holds the password
        raise WorkspaceError(  # before: the driver named part of the password as the host it could not resolve
            f"{where}: the catalogue URL's user or password holds a character a URL must percent-encode (@ as %40, "
            ": as %3A, / as %2F, ? as %3F, # as %23): encode it, or give the password in $PGPASSWORD"
        )
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        dialect = parsed.get_dialect()
    except Exception as exc:  # ArgumentError, NoSuchModuleError, ValueError from a bad port
        raise WorkspaceError(
            f"{where}: not a usable catalogue URL ({_redact(url)}): "
            f"{redact_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}"
        ) from exc
    if backend not in ("sqlite", "postgresql"):
        raise WorkspaceError(
            f"{where}: a catalogue is SQLite or PostgreSQL, not {backend} ({_redact(url)}): "
            "use sqlite:///PATH or postgresql+psycopg://HOST/DB"
        )
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise WorkspaceError(
            f"{where}: the {parsed.get_driver_name()} driver is not installed ({_redact(url)}): "
            + ("use postgresql+psycopg://, the driver this toolkit installs" if backend == "postgresql" else "")
        ) from exc


__all__ = ["Workspace", "SQLAlchemyError"]
