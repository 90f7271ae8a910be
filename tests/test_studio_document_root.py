"""Label Studio's document root holds the raters' copies and nothing else.

Any account of an open-source Label Studio server may add a local-files storage anywhere under the server's
document root, and then read what lies there. When the embedded servers were rooted at the workspace, rater A,
with her own token on her own server, added one over `studio/` and downloaded rater B's database (B's
annotations, the steward's key), the catalogue and the originals. Here the servers run as `curate studio start`
runs them (the workspace's own fleet, no $CURATE_STUDIO_DOCUMENT_ROOT), and A tries again.
"""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from studio_server import ADMIN_TOKEN, RATERS, _require_executable, _template, password_of
from test_studio_round import add_images, task_of

from curate.label.client import add_user
from curate.label.rounds import DOCUMENT_ROOT_ENV, push, rater_copy
from curate.label.servers import Servers
from curate.net import free_port
from curate.studio.fleet import Fleet, slug_for
from curate.studio.server import document_root_of, served_root
from db.models import Image

pytestmark = [pytest.mark.studio, pytest.mark.slow]
A, B, _ = RATERS


@pytest.fixture
def ws(sqlite_ws, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", ADMIN_TOKEN)
    monkeypatch.delenv(DOCUMENT_ROOT_ENV, raising=False)
    return sqlite_ws


def start(ws, files_root=None) -> Fleet:
    """The workspace's own servers for A and B (made once, started again on the same ports)."""
    fleet = Fleet(ws.root, files_root=files_root)
    if not fleet.initialised:
        fleet.adopt_template(_template(_require_executable()))
    for email in (A, B):
        if fleet.find(email) is None:
            fleet.add(email, port=free_port())
    fleet.start_all(timeout=180)
    return fleet


def tokens_of(fleet: Fleet) -> dict[str, str]:
    return {email: add_user(url, ADMIN_TOKEN, email, password_of(email)) for email, url in fleet.urls().items()}


def served_image(url: str, token: str, task: int) -> httpx.Response:
    """The picture a rater's browser loads for `task`: the URL in the task's data, fetched with her token."""
    mine = {"Authorization": f"Token {token}"}
    link = httpx.get(f"{url}/api/tasks/{task}", headers=mine, timeout=30).json()["data"]["image"]
    return httpx.get(url + link, headers=mine, timeout=30)


def copy_bytes(ws, image_id: int) -> bytes:
    with ws.session() as s:
        return rater_copy(ws, s.get(Image, image_id)).read_bytes()


def test_a_rater_reaches_the_copies_and_nothing_else(ws):
    fleet = start(ws)
    try:
        tokens = tokens_of(fleet)
        (image,) = add_images(ws, 1)
        res = push(ws, Servers(ADMIN_TOKEN, fleet.urls(), explicit=True), [A, B])
        url, mine = fleet.urls()[A], {"Authorization": f"Token {tokens[A]}"}
        served = served_image(url, tokens[A], task_of(ws, A, image))
        assert served.status_code == 200 and served.content == copy_bytes(ws, image)

        def add_storage(path) -> httpx.Response:
            body = {"project": res.projects[A], "path": str(path), "title": "mine", "use_blob_urls": False}
            return httpx.post(f"{url}/api/storages/localfiles/", headers=mine, json=body, timeout=30)

        # a storage over what holds the databases, the catalogue or the originals: refused
        for path in (ws.root, ws.root / "studio", ws.root / "objects", ws.root / "studio" / slug_for(B)):
            assert add_storage(path).status_code == 400, path
        # one inside the document root is allowed, and reaches the copies alone
        assert add_storage(served_root(ws.root) / "studio").status_code == 201
        for d in (
            f"studio/{slug_for(B)}/data/label_studio.sqlite3",
            f"studio/files/../{slug_for(B)}/data/label_studio.sqlite3",
            "studio/clinicians.json",
            "catalogue.db",
            "../catalogue.db",
            "../../catalogue.db",
            f"../../studio/{slug_for(B)}/data/label_studio.sqlite3",
        ):
            got = httpx.get(f"{url}/data/local-files/", params={"d": d}, headers=mine, timeout=30)
            assert got.status_code != 200 and b"SQLite format" not in got.content, d
    finally:
        fleet.stop_all()


def test_rounds_pushed_under_the_old_root_are_still_served(ws, monkeypatch):
    """A workspace whose servers served the whole workspace: at the first start under the new root, the
    storages of its projects move to the copies, so the tasks raters already have still show their photo."""
    old = start(ws, files_root=ws.root)  # as curate ran the servers before
    try:
        tokens = tokens_of(old)
        (image,) = add_images(ws, 1)
        monkeypatch.setenv(DOCUMENT_ROOT_ENV, str(ws.root))  # and made storages: the workspace's studio/files
        push(ws, Servers(ADMIN_TOKEN, old.urls(), explicit=True), [A, B])
        monkeypatch.delenv(DOCUMENT_ROOT_ENV)
    finally:
        old.stop_all()
    db = ws.root / "studio" / slug_for(A) / "data" / "label_studio.sqlite3"
    storages = "SELECT path FROM io_storages_localfilesmixin"
    with sqlite3.connect(db) as con:
        assert con.execute(storages).fetchall() == [(str(ws.root / "studio" / "files"),)]
    fleet = start(ws)
    try:
        served = served_image(fleet.urls()[A], tokens[A], task_of(ws, A, image))
        assert served.status_code == 200 and served.content == copy_bytes(ws, image)
        with sqlite3.connect(db) as con:
            assert con.execute(storages).fetchall() == [(str(served_root(ws.root) / "studio" / "files"),)]
    finally:
        fleet.stop_all()


def test_a_server_left_running_under_the_old_root_is_started_again_under_the_new_one(ws):
    """`curate studio start` used to keep a running server as it was: one started when the servers served the
    whole workspace went on serving it, to every account, until the steward stopped it by hand."""
    old = start(ws, files_root=ws.root)
    try:
        before = {s.name: s.running.pid for s in old.status()}
        assert all(document_root_of(pid) == ws.root for pid in before.values())
        marked = {s.name: s.stale_root for s in Fleet(ws.root).status()}
        assert marked == dict.fromkeys(before, ws.root), "status does not mark the server serving the workspace"
        fleet = Fleet(ws.root)
        states = fleet.start_all(timeout=180)
        assert {s.name: s.stale_root for s in states} == dict.fromkeys(before, ws.root)
        after = {s.name: s.running.pid for s in fleet.status()}
        assert set(after) == set(before) and not set(after.values()) & set(before.values())
        assert all(document_root_of(pid) == served_root(ws.root) for pid in after.values())
        assert all(s.stale_root is None for s in fleet.status())
        again = fleet.start_all(timeout=180)  # now as it should be: left running
        assert {s.name: s.running.pid for s in again} == after and all(s.stale_root is None for s in again)
    finally:
        Fleet(ws.root).stop_all()
