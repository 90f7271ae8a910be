"""Which image a Label Studio task is, against what a hostile probe did with a real Label Studio.

Before: an answer counted for the image the task's editable `data.image_id` named, not the photo it showed: a
rater who PATCHed their task for image 6 to say image 5 (or imported a task of image 6's photo saying image 5)
made image 5 "agreed" from a photo they never saw, and image 6 waited for good. And a task deleted in Label
Studio was never made again once the project also held one task added by hand (the numbers were equal).
"""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from sqlmodel import select
from studio_server import RATERS
from test_label_flow_hostile import _dispute_changed_after_adjudicate, _images_in
from test_studio_round import MPOX, add_images, annotate, result, task_of

from curate.label.client import StudioClient
from curate.label.pull import pull
from curate.label.rounds import adjudicate, push
from db.models.label import Consensus, LabelProject, LabelTask

pytestmark = pytest.mark.studio
A, B, C = RATERS


def _statuses(ws) -> dict[int, str]:
    with ws.session() as s:
        return {c.image_id: c.status for c in s.exec(select(Consensus)).all()}


def _both_answer_b(fx, ws, ids) -> None:
    for image_id in ids:
        annotate(fx, ws, B, image_id, result(MPOX))


def test_a_task_edited_to_name_another_image_counts_for_the_photo_it_shows(studio_server, studio_workspace):
    fx, ws = studio_server, studio_workspace
    five, six = add_images(ws, 2, seed=2100)
    push(ws, fx.servers(), [A, B])
    task = task_of(ws, A, six)
    link = StudioClient(fx.urls[A], fx.admin_token).task_data(project_of_task(ws, A, task))[task]["image"]
    edited = httpx.patch(  # the rater's own key, as the probe did
        f"{fx.urls[A]}/api/tasks/{task}",
        json={"data": {"image": link, "image_id": five}},
        headers={"Authorization": f"Token {fx.tokens[A]}"},
        timeout=30,
    )
    assert edited.status_code == 200, edited.text
    annotate(fx, ws, A, six, result(MPOX))  # A answers the photo of image 6, the only one A has seen
    _both_answer_b(fx, ws, [five, six])
    res = pull(ws, fx.servers())
    assert _statuses(ws) == {five: "pending", six: "agreed"}  # before: five agreed, six pending for good
    (said,) = [w for w in res.warnings if f"task {task}:" in w]
    assert f"image_id says image {five}" in said and f"counts for image {six}" in said and A in said


def test_a_task_imported_under_another_images_id_counts_for_the_photo_it_shows(studio_server, studio_workspace):
    from label_studio_sdk import LabelStudio

    fx, ws = studio_server, studio_workspace
    five, six = add_images(ws, 2, seed=2200)
    pushed = push(ws, fx.servers(), [A, B])
    steward = StudioClient(fx.urls[A], fx.admin_token)
    link = steward.task_data(pushed.projects[A])[task_of(ws, A, six)]["image"]
    (forged,) = steward.import_tasks(pushed.projects[A], [{"image": link, "image_id": five}])
    (stranger,) = steward.import_tasks(pushed.projects[A], [{"image": "/data/upload/1/x.jpg", "image_id": five}])
    mine = LabelStudio(base_url=fx.urls[A], api_key=fx.tokens[A])
    mine.annotations.create(id=forged, result=result(MPOX))  # image 6's photo, whatever its id says
    mine.annotations.create(id=stranger, result=result(MPOX))  # a photo that is no image of the round
    _both_answer_b(fx, ws, [five, six])
    res = pull(ws, fx.servers())
    assert _statuses(ws) == {five: "pending", six: "agreed"}  # before: five agreed, six pending
    assert any(f"task {forged}:" in w and f"counts for image {six}" in w for w in res.warnings), res.warnings
    assert any(f"task {stranger}:" in w and "ignored" in w for w in res.warnings), res.warnings


def project_of_task(ws, rater: str, task: int) -> int:
    with ws.session() as s:
        return s.exec(
            select(LabelProject.ls_project_id)
            .join(LabelTask, LabelTask.project_id == LabelProject.id)
            .where(LabelProject.rater == rater, LabelTask.ls_task_id == task)
        ).one()


def test_a_deleted_task_is_made_again_beside_a_task_added_by_hand(studio_server, studio_workspace):
    from label_studio_sdk import LabelStudio

    fx, ws = studio_server, studio_workspace
    ids = add_images(ws, 4, seed=2300)
    pushed = push(ws, fx.servers(), [A, B])
    StudioClient(fx.urls[B], fx.tokens[B]).import_tasks(pushed.projects[B], [{"image": "/data/upload/1/mine.jpg"}])
    deleted = task_of(ws, B, ids[3])
    LabelStudio(base_url=fx.urls[B], api_key=fx.tokens[B]).tasks.delete(id=deleted)
    again = push(ws, fx.servers(), [A, B])
    assert again.tasks == {A: 0, B: 1}  # before: {A: 0, B: 0}, image 4 never made again
    assert _images_in(fx, B, pushed.projects[B]) == Counter([*ids, None])  # the hand-added one left as it is
    remade = task_of(ws, B, ids[3])
    assert remade != deleted and remade in StudioClient(fx.urls[B], fx.admin_token).task_ids(pushed.projects[B])
    for image_id in ids:
        annotate(fx, ws, A, image_id, result(MPOX))
        annotate(fx, ws, B, image_id, result(MPOX))
    pull(ws, fx.servers())
    assert _statuses(ws) == dict.fromkeys(ids, "agreed")


def test_a_stale_review_task_is_made_again_beside_a_task_added_by_hand(studio_server, studio_workspace):
    fx, ws = studio_server, studio_workspace
    image, first = _dispute_changed_after_adjudicate(fx, ws, seed=2400)
    reviewer = StudioClient(fx.urls[C], fx.tokens[C])
    [data] = reviewer.task_data(first.projects[C]).values()
    mine = {k: v for k, v in data.items() if k not in ("image_id", "disputed")} | {"image": "/data/upload/1/mine.jpg"}
    reviewer.import_tasks(first.projects[C], [mine])
    again = adjudicate(ws, fx.servers(), C)  # deletes the task showing the old dispute, and must make it again
    assert again.pushed == 1  # before: "pushed 0 disputed image(s)", the dispute gone from the reviewer's queue
    assert _images_in(fx, C, first.projects[C]) == Counter([image, None])
