"""A workspace: catalogue, content-addressed image store and exports, in one folder.

Layout::

    <root>/curate.toml      marker + settings (never secrets): db_url, and [labels], the study's
                            diagnosis list (curate/label/diagnoses.py; README "Workspace settings")
    <root>/catalogue.db     SQLite catalogue (unless --db / CURATE_DB_URL points elsewhere)
    <root>/objects/ab/…     originals by SHA-256
    <root>/exports/         dataset versions
    <root>/reports/         HTML review sheets and reports
    <root>/tmp/             partial files, renamed into place when complete
"""
from __future__ import annotations

import os
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterator

from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session

from curate.errors import WorkspaceError
from curate.intake.store import ImageStore
from curate.label.diagnoses import DiagnosisList
from db.engine import make_engine, session_scope
from db.migrate import upgrade

MARKER = "curate.toml"
DB_ENV = "CURATE_DB_URL"
WORKSPACE_ENV = "CURATE_WORKSPACE"


def _redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@dataclass
class Workspace:
    root: Path
    db_url: str
    settings: dict = field(default_factory=dict)
    diagnoses: DiagnosisList = field(default_factory=DiagnosisList)

    # --- construction -------------------------------------------------------------
    @classmethod
    def init(cls, root: Path | str = ".", db_url: str | None = None) -> "Workspace":
        """Create (or complete) a workspace at `root`; safe to re-run."""
        root = Path(root).resolve()
        try:
            root.mkdir(parents=True, exist_ok=True)
            for sub in ("objects", "exports", "reports", "tmp"):
                (root / sub).mkdir(mode=0o700, exist_ok=True)
            os.chmod(root / "objects", 0o700)
            marker = root / MARKER
            if not marker.exists():
                # The URL is stored only when it carries no password.
                lines = ["# mpox-curate workspace\n"]
                if db_url and make_url(db_url).password is None:
                    lines.append(f'db_url = "{db_url}"\n')
                marker.write_text("".join(lines))
        except OSError as exc:
            raise WorkspaceError(f"cannot create workspace at {root}: {exc.strerror}") from exc
        ws = cls.open(root, db_url=db_url)
        ws.migrate()
        return ws

    @classmethod
    def open(cls, root: Path | str | None = None, db_url: str | None = None) -> "Workspace":
        """Open the workspace at `root` (default: $CURATE_WORKSPACE or the current folder)."""
        root = Path(root or os.environ.get(WORKSPACE_ENV) or ".").resolve()
        marker = root / MARKER
        if not marker.is_file():
            raise WorkspaceError(f"no workspace at {root} (run `curate init {root}` first)")
        try:
            settings = tomllib.loads(marker.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise WorkspaceError(f"{marker}: unreadable workspace settings ({exc})") from exc
        url = db_url or os.environ.get(DB_ENV) or settings.get("db_url") or f"sqlite:///{root / 'catalogue.db'}"
        diagnoses = DiagnosisList.from_settings(settings, where=str(marker))  # a bad list stops every command, before any write
        return cls(root=root, db_url=url, settings=settings, diagnoses=diagnoses)

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

    @cached_property
    def store(self) -> ImageStore:
        return ImageStore(self.objects, tmp=self.tmp)

    @cached_property
    def engine(self) -> Engine:
        engine = make_engine(self.db_url)
        try:
            upgrade(engine)
        except OperationalError as exc:
            raise WorkspaceError(f"cannot open catalogue {_redact(self.db_url)}: {exc.orig}") from exc
        return engine

    def migrate(self) -> None:
        self.engine  # noqa: B018 - building the engine migrates it

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One catalogue transaction (committed on success, rolled back on error)."""
        try:
            with session_scope(self.engine) as s:
                yield s
        except OperationalError as exc:
            raise WorkspaceError(f"catalogue error ({_redact(self.db_url)}): {exc.orig}") from exc

    def describe_db(self) -> str:
        return _redact(self.db_url)


__all__ = ["Workspace", "SQLAlchemyError"]
