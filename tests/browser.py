"""Debian's Chromium driven by Playwright, for the tests that read a page as a person would.

One launcher for every browser test: the system browser (downloads from elsewhere fail here), the same
flags, and one rule — in CI a missing browser fails the test, elsewhere it skips it. Screenshots go to
`test-artifacts/` and are kept by CI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = os.environ.get("CURATE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator:
    """A launched headless Chromium (Playwright's Browser), closed on exit."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).is_file():
        why = f"{CHROMIUM} missing (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def login(browser, url: str, email: str, password: str):
    """A fresh browser profile (cookies do not separate ports on 127.0.0.1), logged in to Label Studio at `url`."""
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    page = ctx.new_page()
    page.set_default_timeout(90_000)
    page.goto(url + "/user/login/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/user/login" not in u)
    return ctx, page


def shot(page, name: str, full_page: bool = False) -> Path:
    """Save a screenshot under test-artifacts/ (`name` may hold a sub-folder) and say where."""
    path = ARTIFACTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")
    return path


def task_page(browser, url: str, email: str, password: str, project: int, task: int, ready: str, name: str):
    """(context, page, text): `email` logged in at `url`, one task of `project` opened as its user sees it,
    waited for `ready` (a text on the page) and for the labelling pane to settle, screenshot `name` saved."""
    ctx, page = login(browser, url, email, password)
    page.goto(f"{url}/projects/{project}/data?task={task}")
    page.wait_for_selector(f"text={ready}")
    page.wait_for_timeout(2000)
    shot(page, name)
    return ctx, page, page.inner_text("body")
