"""The embedded Label Studio servers' document root: one link to the raters' copies, made safely.

`curate studio start` starts every clinician's server at once, in threads, and each makes the root if it is
missing: two of them once raced on one temporary name and a server failed to start (FileExistsError).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from curate.studio.server import COPIES, make_served_root, served_root


def test_made_by_many_threads_at_once_it_is_one_link_to_the_copies(tmp_path):
    ws = tmp_path / "ws"
    with ThreadPoolExecutor(max_workers=8) as pool:
        roots = list(pool.map(lambda _: make_served_root(ws), range(32)))
    root = served_root(ws)
    assert set(roots) == {root}
    link = root / COPIES
    assert link.is_symlink() and link.resolve() == (ws / COPIES).resolve()
    assert sorted(p.name for p in link.parent.iterdir()) == ["files"]  # no temporary link left beside it
    assert sorted(p.name for p in root.iterdir()) == ["studio"]  # nothing else under the document root
    assert (root.stat().st_mode & 0o077) == 0 and (os.stat(ws / COPIES).st_mode & 0o077) == 0
