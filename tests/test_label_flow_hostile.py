"""The labelling flow against what a hostile probe did with the real Label Studio.

Before: a push stopped after Label Studio made the tasks but before the catalogue recorded them was re-run by
importing the images again (10 tasks for 5 images); Label Studio served the first copies first, and the
rater's answers there were never read ("0 new", the round "labelled 0"). A task deleted in Label Studio was
never made again: its image waited for raters for good. An account added on a rater's server after the push
went unsaid. A skipped task counted as labelled, and an empty answer as a rating.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlmodel import select
from studio_server import RATERS
from test_studio_round import DERM, MPOX, add_images, annotate, result, task_of

from curate.label.client import StudioClient
from curate.label.pull import pull
from curate.label.rounds import push
from db.models.label import Consensus, LabelAnnotation, LabelProject, LabelRound, LabelTask

pytestmark = pytest.mark.studio
A, B, C = RATERS


def _images_in(fx, rater: str, project: int) -> Counter:
    return Counter(image for image, _ in StudioClient(fx.urls[rater], fx.admin_token).task_pictures(project).values())


def _push_stopped_after_import(fx, ws) -> None:
    """A push stopped after Label Studio made its tasks, before the catalogue recorded them."""
    real = StudioClient.import_tasks

    def made_then_stopped(self, project_id, tasks):
        real(self, project_id, tasks)  # the server made them; the answer never reached the catalogue
        raise KeyboardInterrupt

    StudioClient.import_tasks = made_then_stopped
    try:
        with pytest.raises(KeyboardInterrupt):
            push(ws, fx.servers(), [A, B])
    finally:
        StudioClient.import_tasks = real


def test_a_push_stopped_before_recording_its_tasks_is_continued_without_copies(studio_server, studio_workspace):
    fx, ws = studio_server, studio_workspace
    ids = add_images(ws, 5)
    _push_stopped_after_import(fx, ws)
    again = push(ws, fx.servers(), [A, B])
    assert again.pushed == 10
    for rater in (A, B):
        assert _images_in(fx, rater, again.projects[rater]) == Counter(ids), rater  # one task per image
    for image_id in ids:
        annotate(fx, ws, A, image_id, result(MPOX))
        annotate(fx, ws, B, image_id, result(MPOX))
    res = pull(ws, fx.servers())
    assert res.new == 10
    with ws.session() as s:
        assert {c.image_id: c.status for c in s.exec(select(Consensus)).all()} == dict.fromkeys(ids, "agreed")


def test_an_answer_on_a_second_task_of_an_image_counts(studio_server, studio_workspace):
    """A catalogue whose earlier re-run made such copies already: the rater's answer on the copy is read."""
    fx, ws = studio_server, studio_workspace
    ids = add_images(ws, 2)
    pushed = push(ws, fx.servers(), [A, B])
    steward_on_a = StudioClient(fx.urls[A], fx.admin_token)
    first = steward_on_a.task_data(pushed.projects[A])[task_of(ws, A, ids[0])]  # the copy shows what push made
    (copy,) = steward_on_a.import_tasks(pushed.projects[A], [{"image": first["image"], "image_id": ids[0]}])
    from label_studio_sdk import LabelStudio

    LabelStudio(base_url=fx.urls[A], api_key=fx.tokens[A]).annotations.create(id=copy, result=result(MPOX))
    annotate(fx, ws, B, ids[0], result(MPOX))
    assert pull(ws, fx.servers()).new == 2
    with ws.session() as s:
        assert s.exec(select(Consensus.status).where(Consensus.image_id == ids[0])).one() == "agreed"


def test_a_task_deleted_in_label_studio_is_made_again_by_the_next_push(studio_server, studio_workspace):
    fx, ws = studio_server, studio_workspace
    ids = add_images(ws, 3)
    pushed = push(ws, fx.servers(), [A, B])
    with ws.session() as s:
        old = s.exec(select(LabelTask.ls_task_id).where(LabelTask.image_id == ids[1]).limit(1)).first()
    from label_studio_sdk import LabelStudio

    admin_a = LabelStudio(base_url=fx.urls[A], api_key=fx.admin_token)
    a_task = next(t for t in admin_a.tasks.list(project=pushed.projects[A]) if t.data["image_id"] == ids[1])
    admin_a.tasks.delete(id=a_task.id)
    assert _images_in(fx, A, pushed.projects[A]) == Counter([ids[0], ids[2]])
    # a pull says so (before: nothing, and `label report` went on counting it as A's task)
    (said,) = [w for w in pull(ws, fx.servers()).warnings if "deleted in Label Studio" in w]
    assert f"{A}'s project" in said and f"1 task(s) were deleted in Label Studio (image(s) {ids[1]})" in said
    assert "`curate label push`" in said
    again = push(ws, fx.servers(), [A, B])
    assert again.pushed == 1 and again.tasks == {A: 1, B: 0}  # A's task for that image, made again, A's alone
    assert _images_in(fx, A, pushed.projects[A]) == Counter(ids)
    for image_id in ids:
        annotate(fx, ws, A, image_id, result(MPOX))
        annotate(fx, ws, B, image_id, result(MPOX))
    assert pull(ws, fx.servers()).new == 6
    with ws.session() as s:
        assert {c.image_id: c.status for c in s.exec(select(Consensus)).all()} == dict.fromkeys(ids, "agreed")
    assert old is not None


def test_pull_says_when_a_rater_can_read_the_other_raters_labels(studio_server, studio_workspace):
    """Push refuses a server shared by a round's raters; an account added after the push (before:
    `curate studio add-user --url` onto the other rater's server) is said by every pull."""
    from curate.label.client import add_user
    from curate.label.servers import Servers, reset_invite

    fx, ws = studio_server, studio_workspace
    e = "e@clinic.test"  # a clinician of this test only, on B's server (A's must keep A's alone: test_studio_blinding)

    def account_on(url):
        add_user(url, fx.admin_token, e, "e-Pa55word!")
        reset_invite(url, fx.admin_token)

    servers = Servers(fx.admin_token, {C: fx.urls[C], e: fx.urls[B]}, explicit=True)
    account_on(fx.urls[B])
    ids = add_images(ws, 1)
    push(ws, servers, [C, e])
    assert pull(ws, servers).warnings == []
    account_on(fx.urls[C])  # now on C's server too
    annotate(fx, ws, C, ids[0], result(MPOX))
    res = pull(ws, servers)
    assert res.new == 1 and len(res.warnings) == 1
    assert f"{e} has an account on {C}'s Label Studio server {fx.urls[C]}" in res.warnings[0]


def test_pull_says_when_a_rater_can_read_the_disputes_a_reviewer_sees(studio_server, studio_workspace):
    """A review task shows both raters' diagnoses. Adjudicate refuses a reviewer's server holding a rater's account;
    one added after it was said by no pull (only rating projects were checked), while that rater could read the
    other rater's answer to every dispute there and go back and change their own."""
    from label_studio_sdk import LabelStudio

    from curate.label.client import add_user
    from curate.label.rounds import adjudicate
    from curate.label.servers import Servers, reset_invite

    fx, ws = studio_server, studio_workspace
    g = "g@clinic.test"  # a rater of this test only, on B's server: A's and C's hold no other clinician of the round
    token = add_user(fx.urls[B], fx.admin_token, g, "g-Pa55word!")
    reset_invite(fx.urls[B], fx.admin_token)
    servers = Servers(fx.admin_token, {A: fx.urls[A], g: fx.urls[B], C: fx.urls[C]}, explicit=True)
    (image,) = add_images(ws, 1)
    push(ws, servers, [A, g])
    annotate(fx, ws, A, image, result(MPOX))
    LabelStudio(base_url=fx.urls[B], api_key=token).annotations.create(id=task_of(ws, g, image), result=result(DERM))
    pull(ws, servers)
    assert adjudicate(ws, servers, C).pushed == 1
    assert pull(ws, servers).warnings == []
    add_user(fx.urls[C], fx.admin_token, g, "g-Pa55word!")  # now on the reviewer's server too
    reset_invite(fx.urls[C], fx.admin_token)
    (warning,) = pull(ws, servers).warnings
    assert f"{g} has an account on {C}'s Label Studio server {fx.urls[C]}" in warning
    assert "the raters' diagnoses each dispute shows there" in warning and f"{g}'s ratings may not be" in warning


def test_a_skipped_task_and_an_empty_answer_are_not_ratings(studio_server, studio_workspace):
    from label_studio_sdk import LabelStudio

    from curate.label.report import build

    fx, ws = studio_server, studio_workspace
    skipped, empty, answered = add_images(ws, 3)
    push(ws, fx.servers(), [A, B])
    a = LabelStudio(base_url=fx.urls[A], api_key=fx.tokens[A])
    a.annotations.create(id=task_of(ws, A, skipped), result=[], was_cancelled=True)  # the editor's "Skip"
    a.annotations.create(id=task_of(ws, A, empty), result=[])  # only the API saves this: diagnosis is required
    annotate(fx, ws, A, answered, result(MPOX))
    for image_id in (skipped, empty, answered):
        annotate(fx, ws, B, image_id, result(MPOX))
    assert pull(ws, fx.servers()).new == 6
    with ws.session() as s:
        status = {c.image_id: (c.status, c.method) for c in s.exec(select(Consensus)).all()}
        progress = {p.rater: (p.tasks, p.labelled, p.skipped) for p in build(s, ws.diagnoses).progress}
    assert status[answered][0] == "agreed"
    # before: the empty answer was a rating, "awaiting_review", and went to the reviewer as "no diagnosis"
    assert status[skipped] == status[empty] == ("pending", "awaiting_raters"), status
    assert progress == {A: (3, 1, 1), B: (3, 3, 0)}  # before: A "3 of 3 labelled"


def test_three_clinicians_in_rotating_pairs_review_each_others_disputes(studio_server, studio_workspace):
    """Before: a reviewer who had rated any one disputed image was refused the whole batch, so with pairs (a, b)
    and (a, c) neither b nor c could review, and nothing was sent."""
    from test_studio_round import HERPES

    from curate.errors import LabelError
    from curate.label.rounds import adjudicate

    fx, ws = studio_server, studio_workspace
    ab, ac = add_images(ws, 2)
    push(ws, fx.servers(), [A, B], limit=1)  # the first image
    push(ws, fx.servers(), [A, C])
    for rater, image_id, diagnosis in ((A, ab, MPOX), (B, ab, HERPES), (A, ac, MPOX), (C, ac, HERPES)):
        annotate(fx, ws, rater, image_id, result(diagnosis))
    pull(ws, fx.servers())
    with pytest.raises(LabelError, match=f"{A} rated all 2 disputed"):
        adjudicate(ws, fx.servers(), A)
    by_c = adjudicate(ws, fx.servers(), C)
    assert by_c.pushed == 1 and by_c.rated_by_reviewer == [ac]
    by_b = adjudicate(ws, fx.servers(), B)
    assert by_b.pushed == 1 and by_b.rated_by_reviewer == []  # the (a, b) dispute is c's already
    with ws.session() as s:
        sent = s.exec(
            select(LabelProject.rater, LabelTask.image_id)
            .join(LabelTask)
            .join(LabelRound)
            .where(LabelRound.kind == "review")
        ).all()
    assert sorted(sent) == sorted([(C, ab), (B, ac)])


def test_a_review_task_deleted_in_label_studio_is_made_again(studio_server, studio_workspace):
    """Before: adjudicate passed over every image already in a review round, so a review task deleted in Label
    Studio left its image "awaiting_review" for good."""
    from label_studio_sdk import LabelStudio
    from test_studio_round import HERPES

    from curate.label.rounds import adjudicate

    fx, ws = studio_server, studio_workspace
    (image,) = add_images(ws, 1)
    push(ws, fx.servers(), [A, B])
    annotate(fx, ws, A, image, result(MPOX))
    annotate(fx, ws, B, image, result(HERPES))
    pull(ws, fx.servers())
    first = adjudicate(ws, fx.servers(), C)
    assert first.pushed == 1 and adjudicate(ws, fx.servers(), C).pushed == 0
    LabelStudio(base_url=fx.urls[C], api_key=fx.admin_token).tasks.delete(id=task_of(ws, C, image))
    again = adjudicate(ws, fx.servers(), C)
    assert again.pushed == 1 and again.projects == first.projects
    assert _images_in(fx, C, first.projects[C]) == Counter([image])
    annotate(fx, ws, C, image, result(MPOX))  # the reviewer sides with rater 1
    pull(ws, fx.servers())
    with ws.session() as s:
        assert s.exec(select(Consensus.status).where(Consensus.image_id == image)).one() == "adjudicated"


def test_a_review_task_leaves_the_queue_when_the_raters_come_to_agree(studio_server, studio_workspace):
    """Before: after a rater changed their answer to the other's, the reviewer's unanswered task stayed in their
    queue, though any answer to it would not count; now it goes, and comes back if the raters disagree again."""
    from label_studio_sdk import LabelStudio
    from test_studio_round import HERPES

    from curate.label.rounds import adjudicate

    fx, ws = studio_server, studio_workspace
    images = add_images(ws, 2)
    push(ws, fx.servers(), [A, B])
    b_answers = {}
    for image in images:
        annotate(fx, ws, A, image, result(MPOX))
        b_answers[image] = annotate(fx, ws, B, image, result(HERPES))
    pull(ws, fx.servers())
    first = adjudicate(ws, fx.servers(), C)
    assert first.pushed == 2
    reviewer = StudioClient(fx.urls[C], fx.admin_token)
    b_client = LabelStudio(base_url=fx.urls[B], api_key=fx.tokens[B])
    b_client.annotations.update(id=b_answers[images[0]], result=result(MPOX))
    pull(ws, fx.servers())
    assert adjudicate(ws, fx.servers(), C).left_queue == [images[0]]  # said (before: "pushed 0" alone)
    left = {d["image_id"] for d in reviewer.task_data(first.projects[C]).values()}
    assert left == {images[1]}  # the agreed image's task is gone, the still-disputed one stays
    with ws.session() as s:
        assert s.exec(select(Consensus.status).where(Consensus.image_id == images[0])).one() == "agreed"
    b_client.annotations.update(id=b_answers[images[0]], result=result(HERPES))
    pull(ws, fx.servers())
    assert adjudicate(ws, fx.servers(), C).pushed == 1
    back = {d["image_id"] for d in reviewer.task_data(first.projects[C]).values()}
    assert back == set(images)


def _dispute_changed_after_adjudicate(fx, ws, seed: int):
    """One image: A says mpox, B herpes, the dispute goes to reviewer C; then B changes her answer to warts and the
    steward pulls. (image id, the first adjudicate's result)."""
    from label_studio_sdk import LabelStudio
    from test_studio_round import HERPES, WARTS

    from curate.label.rounds import adjudicate

    (image,) = add_images(ws, 1, seed=seed)
    push(ws, fx.servers(), [A, B])
    annotate(fx, ws, A, image, result(MPOX))
    b_answer = annotate(fx, ws, B, image, result(HERPES))
    pull(ws, fx.servers())
    first = adjudicate(ws, fx.servers(), C)
    assert first.pushed == 1
    LabelStudio(base_url=fx.urls[B], api_key=fx.tokens[B]).annotations.update(id=b_answer, result=result(WARTS))
    pull(ws, fx.servers())
    return image, first


def test_a_review_task_follows_a_rater_who_changed_their_answer(studio_server, studio_workspace):
    """Before: a rater's edit after adjudication left the reviewer's task offering the old dispute; the reviewer
    chose one of its diagnoses, nobody's now, and the image was discarded (three different opinions)."""
    from test_studio_round import HERPES, WARTS

    from curate.label.rounds import adjudicate

    fx, ws = studio_server, studio_workspace
    image, first = _dispute_changed_after_adjudicate(fx, ws, seed=1000)
    assert adjudicate(ws, fx.servers(), C).pushed == 1  # the task made again, showing today's dispute
    [data] = StudioClient(fx.urls[C], fx.admin_token).task_data(first.projects[C]).values()
    offered = [o["value"] for o in data["options"]]
    assert WARTS in offered and HERPES not in offered and WARTS in data["summary"]
    assert adjudicate(ws, fx.servers(), C).pushed == 0  # unchanged now: left as it is
    annotate(fx, ws, C, image, result(WARTS))
    pull(ws, fx.servers())
    with ws.session() as s:
        assert s.exec(select(Consensus.status).where(Consensus.image_id == image)).one() == "adjudicated"


def test_a_review_a_raters_change_made_moot_is_asked_again(studio_server, studio_workspace):
    """The probe's case: A said mpox, B herpes, reviewer C sided with mpox; then A changed to dermatosis. Before:
    C's old "mpox" counted as a third opinion, the image was discarded (three-way split) for good, adjudicate
    pushed nothing, and the report rated C on it. Now that answer no longer counts, the next adjudicate deletes
    her answered task and asks the new dispute, and her new answer decides."""
    from label_studio_sdk import LabelStudio
    from test_studio_round import DERM, HERPES

    from curate.label.report import build
    from curate.label.rounds import adjudicate

    fx, ws = studio_server, studio_workspace
    (image,) = add_images(ws, 1, seed=1900)
    push(ws, fx.servers(), [A, B])
    a_answer = annotate(fx, ws, A, image, result(MPOX))
    annotate(fx, ws, B, image, result(HERPES))
    pull(ws, fx.servers())
    first = adjudicate(ws, fx.servers(), C)
    annotate(fx, ws, C, image, result(MPOX))
    pull(ws, fx.servers())

    def consensus():
        with ws.session() as s:
            return s.exec(select(Consensus.status, Consensus.diagnosis).where(Consensus.image_id == image)).one()

    assert consensus() == ("adjudicated", "mpox")
    LabelStudio(base_url=fx.urls[A], api_key=fx.tokens[A]).annotations.update(id=a_answer, result=result(DERM))
    pull(ws, fx.servers())
    assert consensus() == ("pending", None)  # before: ("discarded", None)
    with ws.session() as s:
        assert not [q for q in build(s, ws.diagnoses).raters if q.rater == C and q.diagnosed]
    again = adjudicate(ws, fx.servers(), C)
    assert again.pushed == 1 and again.asked_again == [image]
    [data] = StudioClient(fx.urls[C], fx.admin_token).task_data(first.projects[C]).values()
    offered = [o["value"] for o in data["options"]]
    assert DERM in offered and HERPES in offered and MPOX not in offered
    assert data["disputed"] == ["dermatosis", "genital_herpes"]
    assert adjudicate(ws, fx.servers(), C).pushed == 0  # asked once
    annotate(fx, ws, C, image, result(HERPES))
    pull(ws, fx.servers())
    assert consensus() == ("adjudicated", "genital_herpes")


def test_a_project_deleted_in_label_studio_is_named_with_its_clinician_and_server(studio_server, studio_workspace):
    """Before: `label pull` said "Label Studio project 1 no longer exists" when every clinician's project is number
    1 on their own server: whose, and where, it did not say."""
    from label_studio_sdk import LabelStudio

    from curate.errors import StudioError

    fx, ws = studio_server, studio_workspace
    add_images(ws, 1)
    pushed = push(ws, fx.servers(), [A, B])
    LabelStudio(base_url=fx.urls[B], api_key=fx.admin_token).projects.delete(id=pushed.projects[B])
    with pytest.raises(StudioError) as caught:
        pull(ws, fx.servers())
    said = str(caught.value)
    assert f"project {pushed.projects[B]} (Round 1, {B}) on {fx.urls[B]} was deleted in Label Studio" in said


def test_a_deleted_tasks_id_given_to_another_image_counts_for_that_image(studio_server, studio_workspace):
    """Label Studio's SQLite gives a deleted task's id (the highest) to the next task it makes. Before: a push
    stopped after that import failed on every re-run (UNIQUE constraint), and a rater's answer on the new image's
    task was counted for the deleted task's image."""
    from label_studio_sdk import LabelStudio
    from test_studio_round import HERPES

    fx, ws = studio_server, studio_workspace
    ids = add_images(ws, 3)
    pushed = push(ws, fx.servers(), [A, B])
    admin_a = LabelStudio(base_url=fx.urls[A], api_key=fx.admin_token)
    on_a = {t.data["image_id"]: t.id for t in admin_a.tasks.list(project=pushed.projects[A])}
    last = max(on_a, key=on_a.get)
    admin_a.tasks.delete(id=on_a[last])  # the rater deleted the last task
    (new,) = add_images(ws, 1, seed=1700)
    _push_stopped_after_import(fx, ws)
    push(ws, fx.servers(), [A, B])  # before: IntegrityError, on this and every later run
    now_on_a = {t.data["image_id"]: t.id for t in admin_a.tasks.list(project=pushed.projects[A])}
    assert on_a[last] in now_on_a.values() and now_on_a[last] != on_a[last]  # the id was given to another image
    for rater in (A, B):
        admin = LabelStudio(base_url=fx.urls[rater], api_key=fx.admin_token)
        by_image = {t.data["image_id"]: t.id for t in admin.tasks.list(project=pushed.projects[rater])}
        mine = LabelStudio(base_url=fx.urls[rater], api_key=fx.tokens[rater])
        for image_id in [*ids, new]:  # answered by what Label Studio shows, never the catalogue's mapping
            mine.annotations.create(id=by_image[image_id], result=result(HERPES if image_id == last else MPOX))
    pull(ws, fx.servers())
    with ws.session() as s:
        got = {c.image_id: (c.status, c.diagnosis) for c in s.exec(select(Consensus)).all()}
    assert got[last] == ("agreed", "genital_herpes") and got[new] == ("agreed", "mpox"), got


def test_adjudicate_never_deletes_a_review_task_the_reviewer_has_answered(studio_server, studio_workspace):
    """Before: a rater's change after the last pull made adjudicate delete the reviewer's task, with the answer she
    had just given (not pulled yet); the image went back to waiting for review."""
    from curate.label.rounds import adjudicate

    fx, ws = studio_server, studio_workspace
    image, first = _dispute_changed_after_adjudicate(fx, ws, seed=1800)  # her task still shows the old dispute
    annotate(fx, ws, C, image, result(MPOX))  # she answers it, and nobody pulls before adjudicate
    adjudicate(ws, fx.servers(), C)
    assert len(StudioClient(fx.urls[C], fx.admin_token).task_data(first.projects[C])) == 1  # her task stands
    pull(ws, fx.servers())
    with ws.session() as s:
        status, diagnosis = s.exec(
            select(Consensus.status, Consensus.diagnosis).where(Consensus.image_id == image)
        ).one()
    assert (status, diagnosis) == ("adjudicated", "mpox")  # her answer, on a rater's diagnosis, counts


def test_pull_from_one_clinicians_server_for_everyone_is_refused_before_recording(studio_server, studio_workspace):
    """Before: `label pull --url <A's server>` read B's project number there, A's own project, and recorded A's
    answers as B's; consensus fell to pending until a normal pull."""
    from curate.errors import StudioError
    from curate.label.servers import Servers

    fx, ws = studio_server, studio_workspace
    ids = add_images(ws, 2, seed=1900)
    push(ws, fx.servers(), [A, B])
    for image_id in ids:
        annotate(fx, ws, A, image_id, result(MPOX))
        annotate(fx, ws, B, image_id, result(MPOX))
    wrong = Servers(fx.admin_token, {}, default=fx.urls[A], explicit=True)  # `--url <A's server>` alone
    with pytest.raises(StudioError, match=rf"is not {B}'s project of .*\({B} has no account there\)"):
        pull(ws, wrong)
    with ws.session() as s:
        assert not s.exec(select(LabelAnnotation)).all()  # nothing recorded
    assert pull(ws, fx.servers()).new == 4


def test_pull_leaves_no_copy_of_the_answers_on_the_clinicians_servers(studio_server, studio_workspace):
    """Before: each pull read a project through Label Studio's export, which keeps every export as a file in the
    server's data folder (export/project-N-at-….json): every answer of the project once more on each pull, left
    behind when an answer is deleted. The answers are now read from the task list; the folder is as it was."""
    fx, ws = studio_server, studio_workspace
    ids = add_images(ws, 2)
    push(ws, fx.servers(), [A, B])
    annotate(fx, ws, A, ids[0], result(MPOX, [(10, 10, 20, 40)]))
    annotate(fx, ws, B, ids[0], result("Genital herpes"))

    def kept():
        return {p for p in (fx.base / "server").rglob("*") if p.is_file() and "export" in p.relative_to(fx.base).parts}

    before = kept()
    res = pull(ws, fx.servers())
    assert (res.new, res.annotations) == (2, 2)
    assert kept() == before
    with ws.session() as s:
        rows = s.exec(select(LabelAnnotation.rater, LabelAnnotation.diagnosis)).all()
    assert sorted(rows) == [(A, "mpox"), (B, "genital_herpes")]


def test_a_push_whose_server_goes_away_midway_is_listed_to_finish(studio_server, studio_workspace):
    """Label Studio gone after the round and its projects were made: before, the run was recorded "failed" (a
    refusal of its input) and `curate status` never listed it; it is "aborted", listed with the command to re-run."""
    from curate.audit import audited
    from curate.errors import LabelError, StudioError
    from curate.status import unfinished_commands
    from db.models import CommandRun

    fx, ws = studio_server, studio_workspace
    add_images(ws, 3)
    real = StudioClient.import_tasks

    def gone(self, project_id, tasks):
        raise StudioError(f"Label Studio at {self.url} is unreachable (connection refused)")

    StudioClient.import_tasks = gone
    try:
        with pytest.raises(StudioError), audited(ws, "label push", {"raters": [A, B]}):
            push(ws, fx.servers(), [A, B])
    finally:
        StudioClient.import_tasks = real
    with ws.session() as s:
        assert s.exec(select(CommandRun.status).where(CommandRun.command == "label push")).all() == ["aborted"]
        assert [u["command"] for u in unfinished_commands(s)] == ["label push"]
    with pytest.raises(LabelError), audited(ws, "label push", {"raters": [A, A]}):  # a refusal stays "failed"
        push(ws, fx.servers(), [A, A])
    with ws.session() as s:
        assert s.exec(select(CommandRun.status).where(CommandRun.command == "label push")).all() == [
            "aborted",
            "failed",
        ]
