"""An audit answer that no longer holds: given on a consensus the raters have changed since (it does not count,
and `label pull` says so), or withdrawn or skipped in Label Studio (the consensus goes back to the raters', and
consensus_history says so). Before: a stale answer still decided (a "Genital warts" confirmed by the auditor
discarded the image once the raters moved to mpox, as a third opinion; a "keep" was credited with the raters'
new diagnosis), and a withdrawn or skipped one undid its change without a history row.

Answers are recorded by `label pull`'s own step (`curate.label.pull.record`) from answers shaped as Label Studio
lists them; an audit task's data is the one `label audit --push` makes (`audit_push.audit_task`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pytest
from images import jpeg
from sqlmodel import select
from studio_server import RATERS

from curate.label.adjudication import blind_order
from curate.label.audit import AuditReport, AuditRow
from curate.label.audit_apply import AuditDecision, Ledger, history, stale
from curate.label.audit_push import audit_task
from curate.label.client import RemoteAnnotation, _disputed
from curate.label.consensus import Outcome, Rating
from curate.label.diagnoses import KEEP_CHOICE
from curate.label.pull import PullResult, record
from curate.label.recompute import collect, stale_audits
from curate.label.results import parse_result
from db.models import Image
from db.models.label import Consensus, LabelProject, LabelRound, LabelTask

A, B, D = "a@clinic.test", "b@clinic.test", "d@clinic.test"
URL = "http://127.0.0.1:1"


def _choice(name: str) -> list[dict]:
    return [{"from_name": "diagnosis", "to_name": "image", "type": "choices", "value": {"choices": [name]}}]


@dataclass
class Studio:
    """What the Label Studio servers hold: per (clinician, image) the answer listed now; `pull` records them."""

    ws: object
    images: list[int] = field(default_factory=list)
    tasks: dict[tuple[str, int], LabelTask] = field(default_factory=dict)
    data: dict[tuple[str, int], dict] = field(default_factory=dict)  # each task's data
    listed: dict[tuple[str, int], dict] = field(default_factory=dict)  # the answer, as Label Studio lists it
    clock: int = 0

    def answer(self, who: str, image_id: int, choice: str | None, cancelled: bool = False) -> None:
        """`who` answers (or edits her answer: same id, later updated_at)."""
        self.clock += 1
        old = self.listed.get((who, image_id))
        self.listed[(who, image_id)] = {
            "id": old["id"] if old else 1000 + len(self.listed) * 10 + self.clock,
            "result": [] if choice is None else _choice(choice),
            "was_cancelled": cancelled,
            "updated_at": f"2026-01-01T10:{self.clock:02d}:00Z",
        }

    def delete(self, who: str, image_id: int) -> None:
        del self.listed[(who, image_id)]

    def pull(self) -> PullResult:
        fetched = []
        kinds = {A: "rating", B: "rating", D: "audit"}
        for (who, image_id), a in self.listed.items():
            task, data = self.tasks[(who, image_id)], self.data[(who, image_id)]
            remote = RemoteAnnotation(
                id=a["id"],
                task_id=task.ls_task_id,
                completed_by=who,
                result=a["result"],
                was_cancelled=a["was_cancelled"],
                created_at=a["updated_at"],
                updated_at=a["updated_at"],
                raw=a,
                image_id=image_id,
                picture=data["image"],
                shown=_disputed(data),
            )
            fetched.append((task, remote, parse_result(a["result"], 120, 90, self.ws.diagnoses, kinds[who])))
        res = PullResult(annotations=len(fetched))
        return record(self.ws, fetched, res)

    def push_audit(self, image_ids: list[int]) -> None:
        """D's audit tasks of `image_ids`, made as `label audit --push` makes them from the catalogue now."""
        diagnoses = self.ws.diagnoses
        with self.ws.session() as s:
            labels = collect(s)
            consensus = {c.image_id: c.diagnosis for c in s.exec(select(Consensus)).all()}
            project = s.exec(select(LabelProject).where(LabelProject.rater == D)).one()
            for image_id in image_ids:
                raters = [[r.rater, r.diagnosis] for r in labels[image_id].ratings]
                said = [d for _, d in blind_order(image_id, raters, lambda p: str(p[0]))]
                task = LabelTask(project_id=project.id, image_id=image_id, ls_task_id=500 + image_id)
                s.add(task)
                s.flush()
                self.tasks[(D, image_id)] = task
                self.data[(D, image_id)] = audit_task(
                    f"/data/{image_id}.jpg",
                    image_id,
                    [diagnoses.name(d) for d in said],
                    None,
                    diagnoses.name(consensus[image_id]),
                    diagnoses,
                    said + [consensus[image_id]],
                )["data"]
            s.commit()


def _studio(ws, n: int) -> Studio:
    """`n` images in a rating round of A and B, and an (empty) audit round of D."""
    st = Studio(ws)
    with ws.session() as s:
        for seed in range(n):
            data = jpeg(700 + seed, size=(120, 90))
            sha, _ = ws.store.put(data)
            img = Image(sha256=sha, size_bytes=len(data), format="JPEG", width=120, height=90, mode="RGB")
            s.add(img)
            s.flush()
            st.images.append(img.id)
        rating = LabelRound(kind="rating", name="round 1", raters=json.dumps([A, B]), server_url=URL)
        audit = LabelRound(kind="audit", name="audit 1", raters=json.dumps([D]), server_url=URL)
        s.add_all([rating, audit])
        s.flush()
        for n_project, (rnd, who) in enumerate(((rating, A), (rating, B), (audit, D)), start=1):
            p = LabelProject(round_id=rnd.id, rater=who, ls_project_id=n_project)
            s.add(p)
            s.flush()
            if who == D:
                continue
            for image_id in st.images:
                task = LabelTask(project_id=p.id, image_id=image_id, ls_task_id=100 * n_project + image_id)
                s.add(task)
                s.flush()
                st.tasks[(who, image_id)] = task
                st.data[(who, image_id)] = {"image": f"/data/{image_id}.jpg", "image_id": image_id}
        s.commit()
    return st


def _consensus(ws, image_id: int) -> tuple:
    with ws.session() as s:
        c = s.exec(select(Consensus).where(Consensus.image_id == image_id)).one()
        return c.status, c.diagnosis, c.method


def _history(ws, image_id: int) -> list[tuple]:
    with ws.session() as s:
        rows = history(s, image_id)
    return [(h["previous_status"], h["previous_diagnosis"], h["new_status"], h["new_diagnosis"]) for h in rows]


def _reasons(ws, image_id: int) -> list[tuple[str, str]]:
    with ws.session() as s:
        return [(h["changed_by"], h["reason"]) for h in history(s, image_id)]


def test_an_audit_answer_on_a_consensus_changed_since_no_longer_counts(ws):
    """Image `confirmed` (the probe's 147): both raters said genital warts, the auditor confirmed it; the raters then
    both moved to mpox. Image `kept` (49): she kept healthy skin; the raters moved to mpox. Image `third`: her third
    opinion discarded the image; the raters moved to mpox since. Her answers were given on a consensus that is
    no longer there: none counts, pull says so, and only the undoing of the discard is in the history."""
    st = _studio(ws, 3)
    confirmed, kept, third = st.images
    for who in (A, B):
        st.answer(who, confirmed, "Genital warts")
        st.answer(who, kept, "Healthy skin")
        st.answer(who, third, "Genital warts")
    st.pull()
    st.push_audit([confirmed, kept, third])
    st.answer(D, confirmed, "Genital warts")
    st.answer(D, kept, KEEP_CHOICE)
    st.answer(D, third, "Genital herpes")
    res = st.pull()
    assert res.audit == {"tasks": 3, "answered": 3, "kept": 2, "relabelled": 0, "discarded": 1}
    assert _consensus(ws, confirmed) == ("agreed", "genital_warts", "raters_agree")
    assert _consensus(ws, third) == ("discarded", None, "audit_third_opinion")
    assert _history(ws, confirmed) == _history(ws, kept) == []
    assert _history(ws, third) == [("agreed", "genital_warts", "discarded", None)]
    assert not res.warnings

    for who in (A, B):  # the raters change their minds in Label Studio
        for image_id in (confirmed, kept, third):
            st.answer(who, image_id, "Mpox")
    res = st.pull()
    assert res.revised == 6
    for image_id in (confirmed, kept, third):
        assert _consensus(ws, image_id) == ("agreed", "mpox", "raters_agree")
    # before: ('discarded', None, 'audit_third_opinion'): "she chose genital_warts, which neither rater gave"
    assert _history(ws, confirmed) == []
    # before: agreed healthy_skin -> agreed mpox, changed by d, "audit: the reviewer kept the consensus"
    assert _history(ws, kept) == []
    assert _history(ws, third) == [
        ("agreed", "genital_warts", "discarded", None),
        ("discarded", None, "agreed", "mpox"),
    ]
    who, why = _reasons(ws, third)[-1]
    assert who == D and why.startswith("audit answer given on a consensus that has changed since")
    assert why.endswith("it no longer counts: back to the raters' consensus")
    assert res.audit == {"tasks": 3, "answered": 0, "kept": 0, "relabelled": 0, "discarded": 0}
    [note] = res.warnings
    assert note.startswith(
        f"3 audit answer(s) were given on a consensus that has changed since (image(s) {confirmed}, {kept}, {third})"
    )
    assert "no longer count" in note and "curate label audit --push" in note
    with ws.session() as s:
        assert stale_audits(s) == {confirmed, kept, third}  # what `label audit --push` sends again

    assert st.pull().unchanged == 9 and len(_history(ws, third)) == 2  # a re-pull changes and records nothing


def _discarded_by_audit(ws, raters_say: str, auditor_says: str):
    """One image both raters agreed on, discarded by an audit's third opinion; the studio and the image."""
    st = _studio(ws, 1)
    [image_id] = st.images
    for who in (A, B):
        st.answer(who, image_id, raters_say)
    st.pull()
    st.push_audit([image_id])
    st.answer(D, image_id, auditor_says)
    st.pull()
    assert _consensus(ws, image_id) == ("discarded", None, "audit_third_opinion")
    return st, image_id


def test_an_audit_answer_counts_again_once_its_consensus_is_back(ws):
    """A rater's answer edited without changing her diagnosis leaves the audit's answer counting; a rater who moves
    away makes it stale (the discard undone, recorded) and moving back makes it count again (recorded too)."""
    st, image_id = _discarded_by_audit(ws, "Genital warts", "Genital herpes")
    st.answer(A, image_id, "Genital warts")
    st.listed[(A, image_id)]["result"].append(
        {"from_name": "comment", "to_name": "image", "type": "textarea", "value": {"text": ["a second look"]}}
    )
    res = st.pull()
    assert res.revised == 1 and not res.warnings
    assert _consensus(ws, image_id) == ("discarded", None, "audit_third_opinion")
    assert len(_history(ws, image_id)) == 1

    st.answer(A, image_id, "Mpox")
    res = st.pull()
    assert _consensus(ws, image_id) == ("pending", None, "awaiting_review")
    # the raters disagree now: no audit applies until a reviewer settles it, and nothing is to be asked again yet
    assert not [w for w in res.warnings if "audit answer" in w], res.warnings
    assert _history(ws, image_id)[-1] == ("discarded", None, "pending", None)
    st.answer(A, image_id, "Genital warts")
    res = st.pull()
    assert res.audit["answered"] == 1 and not res.warnings
    assert _consensus(ws, image_id) == ("discarded", None, "audit_third_opinion")
    assert _history(ws, image_id) == [
        ("agreed", "genital_warts", "discarded", None),
        ("discarded", None, "pending", None),
        ("pending", None, "discarded", None),
    ]


def test_a_withdrawn_or_skipped_audit_answer_leaves_a_history_row(ws):
    """The probe's image 21: the audit discarded it, then the auditor deleted her annotation in Label Studio; she
    answered again, then skipped that answer. Each time the image goes back to the raters' consensus, and the
    history says so (before: it ended in the audit's change)."""
    st, deleted = _discarded_by_audit(ws, "Genital herpes", "Mpox")
    assert _history(ws, deleted) == [("agreed", "genital_herpes", "discarded", None)]

    st.delete(D, deleted)  # DELETE /api/annotations/<id>/
    res = st.pull()
    assert res.withdrawn == 1
    assert _consensus(ws, deleted) == ("agreed", "genital_herpes", "raters_agree")
    assert _history(ws, deleted) == [
        ("agreed", "genital_herpes", "discarded", None),
        ("discarded", None, "agreed", "genital_herpes"),
    ]
    assert _reasons(ws, deleted)[-1] == (D, "audit answer withdrawn: back to the raters' consensus")
    assert res.audit["answered"] == 0 and not res.warnings

    st.answer(D, deleted, "Mpox")  # she answers again (a new annotation): the audit holds again, and is recorded
    st.pull()
    assert _consensus(ws, deleted) == ("discarded", None, "audit_third_opinion")
    assert len(_history(ws, deleted)) == 3

    st.answer(D, deleted, "Mpox", cancelled=True)  # then skips it
    res = st.pull()
    assert res.revised == 1
    assert _consensus(ws, deleted) == ("agreed", "genital_herpes", "raters_agree")
    assert _history(ws, deleted)[-1] == ("discarded", None, "agreed", "genital_herpes")
    assert _reasons(ws, deleted)[-1] == (D, "audit answer skipped: back to the raters' consensus")
    assert st.pull().unchanged == 3 and len(_history(ws, deleted)) == 4  # recorded once


def test_the_newest_answer_still_on_its_consensus_counts():
    """An image asked again in another reviewer's round, which may be the older round: her answer on today's
    consensus counts, the newer round's stale one does not; with none but stale ones, the raters' consensus stands.
    Pure (`Ledger.outcome`)."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    ratings = [Rating(A, "mpox"), Rating(B, "mpox")]
    raters = Outcome("agreed", "mpox", method="raters_agree", n_raters=2, agreement=1.0)
    stale_one = AuditDecision(1, D, "genital_warts", 3, 30, at, ("genital_warts", "genital_warts", "genital_warts"))
    fresh = AuditDecision(1, "e@clinic.test", "genital_herpes", 2, 20, at, ("mpox", "mpox", "mpox"))
    ledger = Ledger({1: stale_one}, {}, {1: [fresh]})
    o, why = ledger.outcome(1, raters, ratings)
    assert (o.status, o.method) == ("discarded", "audit_third_opinion") and "genital_herpes" in why
    assert ledger.stale == set() and ledger.by_image[1] == fresh  # credited to her answer
    ledger = Ledger({1: stale_one})
    assert ledger.outcome(1, raters, ratings) == (raters, None) and ledger.stale == {1}
    assert stale(replace(stale_one, shown=None), raters, ratings) is False  # a task pushed before: counts, as it did


def _report(ws, exported: dict[int, str] | None = None) -> AuditReport:
    """What `label audit` ranks, as it stands in the catalogue now (every image with a final consensus, by id); an
    image `exported` under another diagnosis than its consensus now is listed apart, never ranked, as
    `audit.build` lists one "relabelled since the run"."""
    with ws.session() as s:
        labels = collect(s)
        cons = {c.image_id: c for c in s.exec(select(Consensus)).all()}
    rows = [
        AuditRow(i, "train", c.diagnosis, c.diagnosis, c.method, [[r.rater, r.diagnosis] for r in labels[i].ratings],
                 None, {}, rank=n, exported_diagnosis=(exported or {}).get(i, c.diagnosis))
        for n, (i, c) in enumerate(sorted(cons.items()), start=1)
        if c.status in ("agreed", "adjudicated")
    ]  # fmt: skip
    apart = [r for r in rows if r.exported_diagnosis != r.consensus]
    for r in apart:
        r.rank, r.why_not_ranked = None, f"relabelled since the run ({r.exported_diagnosis} -> {r.consensus})"
    return AuditReport("run", "mpox@1.0.0", "multiclass", [], [r for r in rows if r not in apart], apart)


@pytest.mark.studio
def test_label_audit_push_asks_a_stale_answer_again(studio_server, studio_workspace):
    """On real Label Studio servers: the raters change their minds after the auditor answered; pull says her answer
    no longer counts, and the next `label audit --push` replaces her task by one showing today's consensus (the
    other image's task and answer stay); a re-run replaces nothing, and her new answer is the one that counts."""
    from label_studio_sdk import LabelStudio
    from test_studio_round import add_images, annotate, result, task_of

    from curate.label.audit_push import push_audit
    from curate.label.pull import pull
    from curate.label.rounds import push

    fx, ws = studio_server, studio_workspace
    a, b, c = RATERS
    servers = fx.servers()
    changed, kept = add_images(ws, 2, seed=3100)
    push(ws, servers, [a, b])
    answers = {(who, i): annotate(fx, ws, who, i, result("Genital warts")) for who in (a, b) for i in (changed, kept)}
    pull(ws, servers)
    assert push_audit(ws, servers, _report(ws), c, 2).pushed == 2
    annotate(fx, ws, c, changed, result("Genital warts"))
    annotate(fx, ws, c, kept, result(KEEP_CHOICE))
    assert pull(ws, servers).audit["answered"] == 2
    first = {i: task_of(ws, c, i) for i in (changed, kept)}

    for who in (a, b):
        LabelStudio(base_url=fx.urls[who], api_key=fx.tokens[who]).annotations.update(
            id=answers[(who, changed)], result=result("Mpox")
        )
    res = pull(ws, servers)
    assert _consensus(ws, changed) == ("agreed", "mpox", "raters_agree") and _history(ws, changed) == []
    assert res.audit["answered"] == 1 and [w for w in res.warnings if "audit answer" in w] == [
        f"1 audit answer(s) were given on a consensus that has changed since (image(s) {changed}) and no longer "
        f"count: the raters' consensus stands; `curate label audit --push --reviewer {c}` asks them again in the "
        "round that holds them"
    ]

    # the run was trained on the old labels: the stale one is "relabelled since the run", never ranked, and asked
    # again all the same (before: only a ranked one was, so none of the images a rater's change made stale)
    relabelled = _report(ws, exported={changed: "genital_warts", kept: "genital_warts"})
    assert [r.image_id for r in relabelled.unranked] == [changed]
    assert push_audit(ws, servers, relabelled, c, 2).pushed == 1  # the stale one, again
    now = {i: task_of(ws, c, i) for i in (changed, kept)}
    assert now[kept] == first[kept] and now[changed] != first[changed]
    ls = LabelStudio(base_url=fx.urls[c], api_key=fx.tokens[c])
    data = ls.tasks.get(now[changed]).data
    assert data["disputed"] == ["mpox", "mpox", "mpox"] and "Current consensus: Mpox" in data["summary"]
    assert push_audit(ws, servers, _report(ws), c, 2).pushed == 0  # before a pull the old answer is still live
    assert task_of(ws, c, changed) == now[changed]

    res = pull(ws, servers)
    assert res.withdrawn == 1 and not [w for w in res.warnings if "audit answer" in w]
    annotate(fx, ws, c, changed, result("Genital herpes"))
    res = pull(ws, servers)
    assert res.audit == {"tasks": 2, "answered": 2, "kept": 1, "relabelled": 0, "discarded": 1}
    assert _consensus(ws, changed) == ("discarded", None, "audit_third_opinion")
    assert _history(ws, changed) == [("agreed", "mpox", "discarded", None)]


def test_an_audited_image_a_later_flag_excludes_is_not_called_stale(ws):
    """A review of the fix: the audit discarded an image, then both raters flagged its quality too low: every pull
    named it "given on a consensus that has changed since", to be asked again, though no audit applies to an
    excluded image (and none would ever rank it)."""
    st, image_id = _discarded_by_audit(ws, "Genital warts", "Genital herpes")
    for who in (A, B):
        st.listed[(who, image_id)]["result"] = _choice("Genital warts") + [
            {
                "from_name": "flags",
                "to_name": "image",
                "type": "choices",
                "value": {"choices": ["Image quality too low"]},
            }
        ]
        st.listed[(who, image_id)]["updated_at"] = "2026-01-01T11:00:00Z"
    for _ in range(2):
        res = st.pull()
        assert not [w for w in res.warnings if "audit answer" in w], res.warnings
        assert _consensus(ws, image_id)[0] == "excluded"
    with ws.session() as s:
        assert image_id not in stale_audits(s)
