"""Blinding is a property, proved with real servers, real accounts and a real browser.

A round is pushed to raters A and B, both label (B with a telltale comment), the dispute
goes to reviewer C. Then rater A, with A's own token and in headless Chromium, tries every
route that would show B's tasks, annotations or exports, or C's review project.
Screenshots of the labelling and adjudication views are kept under test-artifacts/.
"""

from __future__ import annotations

import httpx
import pytest
from browser import chromium, login, shot, task_page
from sqlmodel import select
from studio_server import RATERS
from test_studio_round import DERM, MPOX, add_images, annotate, result, task_of

from curate.label.diagnoses import NEITHER_CHOICE, PAPER
from curate.label.pull import pull
from curate.label.rounds import adjudicate, push
from db.models.label import LabelAnnotation, LabelProject, LabelTask

pytestmark = [pytest.mark.studio, pytest.mark.slow]
A, B, C = RATERS
SECRET = "B-ONLY-COMMENT-7f3a"


@pytest.fixture(scope="module")
def round_(studio_server, tmp_path_factory):
    """One disputed image: A says Mpox with a box, B says Dermatosis with another box and a comment."""
    from curate.workspace import Workspace

    fx = studio_server
    mp = pytest.MonkeyPatch()
    mp.setenv("LABEL_STUDIO_API_KEY", fx.admin_token)
    mp.setenv("CURATE_STUDIO_DOCUMENT_ROOT", str(fx.base))
    ws = Workspace.init(fx.base / "ws-blinding")
    (image,) = add_images(ws, 1)
    servers = fx.servers()
    rnd = push(ws, servers, [A, B])
    annotate(fx, ws, A, image, result(MPOX, [(10, 10, 30, 40)]))
    annotate(fx, ws, B, image, result(DERM, [(55, 20, 30, 50)], comment=SECRET))
    pull(ws, servers)
    review = adjudicate(ws, servers, C)
    with ws.session() as s:
        b_ann = s.exec(
            select(LabelAnnotation.ls_annotation_id).join(LabelTask).join(LabelProject).where(LabelProject.rater == B)
        ).one()
    yield fx, ws, image, rnd.projects, review.projects[C], b_ann
    mp.undo()


def test_rater_token_reaches_nothing_of_other_clinicians(round_):
    fx, ws, image, projects, review_project, b_ann = round_
    b_task, c_task = task_of(ws, B, image), task_of(ws, C, image)
    mine = {"Authorization": f"Token {fx.tokens[A]}"}
    # on B's and C's servers A has no account: every route is refused
    for owner, project, task, ann in ((B, projects[B], b_task, b_ann), (C, review_project, c_task, None)):
        routes = [
            "/api/projects/",
            f"/api/projects/{project}/",
            f"/api/projects/{project}/tasks/",
            f"/api/tasks/?project={project}",
            f"/api/tasks/{task}/",
            f"/api/tasks/{task}/annotations/",
            f"/api/projects/{project}/export?exportType=JSON",
            f"/api/projects/{project}/exports/",
            f"/api/dm/views/?project={project}",
            "/api/users/",
            f"/projects/{project}/data",
        ]
        if ann is not None:
            routes.append(f"/api/annotations/{ann}/")
        for route in routes:
            r = httpx.get(fx.urls[owner] + route, headers=mine, follow_redirects=False)
            assert r.status_code in (302, 401, 403, 404), (owner, route, r.status_code)
            assert SECRET not in r.text and "Dermatosis" not in r.text
    # on A's own server the same ids name A's own things at most: B's answer and C's project are not there
    projects_seen = httpx.get(fx.urls[A] + "/api/projects/", headers=mine).json()
    # A's server is shared by the suite's other rounds with A, so A may see more projects, but only A's own
    assert projects[A] in [p["id"] for p in projects_seen["results"]]
    assert all(p["title"].endswith(f"· {A}") for p in projects_seen["results"]), projects_seen["results"]
    users = httpx.get(fx.urls[A] + "/api/users/", headers=mine).json()
    assert {u["email"] for u in users} <= {A, "steward@curate.test"}
    for route in [
        f"/api/tasks/{b_task}/annotations/",
        f"/api/annotations/{b_ann}/",
        f"/api/tasks/{c_task}/",
        f"/api/projects/{projects[A]}/export?exportType=JSON",
    ]:
        r = httpx.get(fx.urls[A] + route, headers=mine)
        assert SECRET not in r.text and B not in r.text and "Rater 2" not in r.text, route


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def test_browser_rater_view(round_, browser):
    fx, ws, image, projects, review_project, _ = round_
    ctx, page = login(browser, fx.urls[A], A, fx.passwords[A])
    page.goto(fx.urls[A] + "/projects/")
    page.wait_for_selector("text=mpox Round")
    assert B not in page.content() and "review" not in page.inner_text("body").lower()
    # the labelling view: every diagnosis visible without scrolling at 1366x768
    page.goto(f"{fx.urls[A]}/projects/{projects[A]}/data?task={task_of(ws, A, image)}")
    page.wait_for_selector("text=Molluscum contagiosum")
    page.wait_for_timeout(1500)
    shot(page, "blinding/labelling-view-1366x768.png")
    visible = [page.locator(f'label.lsf-choice__checkbox:has(input[name="{v}"])') for v in PAPER.names.values()]
    visible.append(page.locator(".lsf-label", has_text="Lesion").first)  # the box tool, hotkey B
    for loc in visible:
        box = loc.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 768, (loc, box)
        assert box["x"] > 640  # beside the photo, not under it
    assert page.locator(".lsf-label__hotkey").first.inner_text() == "b"
    # single choice rendered as radio buttons, one per diagnosis
    assert page.locator("input.ant-radio-input").count() == len(PAPER.names)
    assert "Keys: 1-9, A diagnosis · B box · I, Q flags" in page.inner_text("body")
    # B's server: A's session means nothing there, and A's password opens nothing either
    page.goto(f"{fx.urls[B]}/projects/{projects[B]}/data")
    assert "/user/login" in page.url
    page.fill("input[name=email]", A)
    page.fill("input[name=password]", fx.passwords[A])
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/user/login" in page.url and SECRET not in page.content()
    page.goto(f"{fx.urls[C]}/projects/{review_project}/data")
    assert "/user/login" in page.url
    ctx.close()


def test_browser_adjudication_view(round_, browser):
    fx, ws, image, projects, review_project, _ = round_
    ctx, page, text = task_page(
        browser,
        fx.urls[C],
        C,
        fx.passwords[C],
        review_project,
        task_of(ws, C, image),
        "Neither (discard this image)",
        "blinding/adjudication-view-1366x768.png",
    )
    assert "Rater 1: Mpox" in text and "Rater 2: Dermatosis" in text and SECRET in text
    assert A not in page.content() and B not in page.content()
    # offered: the two disputed diagnoses and Neither, nothing else
    offered = page.locator("input.ant-radio-input")
    assert [offered.nth(i).get_attribute("name") for i in range(offered.count())] == [MPOX, DERM, NEITHER_CHOICE]
    # both raters' boxes are drawn on the photo, listed as regions labelled by rater, locked
    regions = page.locator(".lsf-outliner-item__title")
    assert sorted(regions.nth(i).inner_text().strip() for i in range(regions.count())) == ["Rater 1", "Rater 2"]
    ctx.close()
