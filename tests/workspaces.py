"""Helpers for tests that drive a real workspace through the CLI: a deduped workspace copied for each test to decide
in, each arrival's image id by its file's name, and a workspace mounted read-only."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
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


@contextmanager
def read_only_view(root: Path, seen: Path) -> Iterator[Path]:
    """`root` mounted read-only at `seen` (a bind mount; the test is skipped where none can be made)."""
    seen.mkdir()
    bind = subprocess.run(["mount", "--bind", str(root), str(seen)], capture_output=True, text=True)
    if bind.returncode != 0:
        pytest.skip(f"no bind mount here: {bind.stderr.strip()}")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(seen)], capture_output=True).returncode != 0:
            pytest.skip("no read-only remount here")
        yield seen
    finally:
        subprocess.run(["umount", str(seen)], check=False)
