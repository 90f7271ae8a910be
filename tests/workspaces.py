"""Helpers for tests that drive a real workspace through the CLI: a deduped workspace copied for each test to decide
in, and each arrival's image id by its file's name."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlmodel import select

from curate.workspace import Workspace
from db.models import Provenance


def copied(root: Path, tmp_path: Path) -> Path:
    """A copy of the workspace at `root`, under `tmp_path`: a module's deduped workspace, each test's to change."""
    copy = tmp_path / "ws"
    shutil.copytree(root, copy)
    return copy


def ids_by_name(root: Path) -> dict[str, int]:
    """Image id of each arrival, by its file's name."""
    with Workspace.open(root).session() as s:
        return {Path(loc).name: i for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all()}
