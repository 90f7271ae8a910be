"""`curate label report` on a catalogue holding every outcome: explained outcomes, a date, example images
(never identifiable ones), JSON embedded so that it parses, and the confusion-matrix PNG beside the page."""

from __future__ import annotations

import base64
import io
import json
import re

import pytest
from images import jpeg
from PIL import Image as PILImage
from sqlmodel import select
from typer.testing import CliRunner

from curate.cli import app
from curate.label.diagnoses import PAPER
from curate.label.recompute import write_consensus
from curate.label.report import OUTCOME_MEANINGS, build
from curate.label.report_html import write_html
from curate.plots import contrast
from db.models import Image
from db.models.label import LabelAnnotation, LabelProject, LabelRound, LabelTask

A, B, C = "a@clinic.test", "b@clinic.test", "c@clinic.test"
IDENT, LQ = ["identifiable_features"], ["low_quality"]
# image -> (rater A, rater B, reviewer or None); a rating is (diagnosis, flags)
CASES = {
    "agreed": (("mpox", []), ("mpox", []), None),
    "adjudicated": (("mpox", []), ("genital_herpes", []), ("genital_herpes", [])),
    "discarded": (("mpox", []), ("genital_warts", []), ("primary_syphilis", [])),
    "disputed_identifiable": (("mpox", []), ("genital_herpes", IDENT), None),
    "awaiting_review": (("dermatosis", []), ("genital_warts", []), None),
    "low_quality": (("mpox", LQ), ("mpox", LQ), None),
    "awaiting_rater": (("mpox", []), None, None),
    "discarded_identifiable": (("genital_herpes", []), ("mpox", []), ("genital_warts", IDENT)),
}
ROUND_NAME = "round </script><b>1 & co"  # must not break the page or its JSON


def _catalogue(ws) -> dict[str, int]:
    """The catalogue state `curate label pull` leaves after these annotations (rows written directly)."""
    ids, n = {}, 0
    with ws.session() as s:
        for seed, name in enumerate(CASES):
            data = jpeg(300 + seed, size=(120, 90))
            sha, _ = ws.store.put(data)
            img = Image(sha256=sha, size_bytes=len(data), format="JPEG", width=120, height=90, mode="RGB")
            s.add(img)
            s.flush()
            ids[name] = img.id
        rounds = [
            LabelRound(kind="rating", name=ROUND_NAME, raters=json.dumps([A, B]), server_url="http://127.0.0.1:1"),
            LabelRound(kind="review", name="review 1", raters=json.dumps([C]), server_url="http://127.0.0.1:1"),
        ]
        s.add_all(rounds)
        s.flush()
        projects = {}
        for rnd, rater in ((rounds[0], A), (rounds[0], B), (rounds[1], C)):
            p = LabelProject(round_id=rnd.id, rater=rater, ls_project_id=len(projects) + 1)
            s.add(p)
            s.flush()
            projects[rater] = p
        for name, answers in CASES.items():
            for rater, answer in zip((A, B, C), answers, strict=True):
                if answer is None and rater != A:
                    continue
                n += 1
                task = LabelTask(project_id=projects[rater].id, image_id=ids[name], ls_task_id=n)
                s.add(task)
                s.flush()
                if answer is not None:
                    s.add(
                        LabelAnnotation(
                            task_id=task.id,
                            ls_annotation_id=n,
                            rater=rater,
                            diagnosis=answer[0],
                            flags=json.dumps(answer[1]),
                            content_sha256=f"{n:064d}",
                            raw="{}",
                        )
                    )
        s.flush()
        write_consensus(s)
        s.commit()
    return ids


def _answer(s, image_id: int, rater: str) -> LabelAnnotation:
    """The rater's recorded answer on the image."""
    return s.exec(
        select(LabelAnnotation).join(LabelTask).where(LabelTask.image_id == image_id, LabelAnnotation.rater == rater)
    ).one()


def _revision(ann: LabelAnnotation, **changed) -> LabelAnnotation:
    """A second revision of `ann`, as `label pull` records an answer edited in Label Studio."""
    return LabelAnnotation(
        task_id=ann.task_id,
        ls_annotation_id=ann.ls_annotation_id,
        revision=2,
        rater=ann.rater,
        content_sha256="f" * 64,
        raw="{}",
        **changed,
    )


def _embedded_json(page: str) -> dict:
    block = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert block, "no JSON block"
    return json.loads(block.group(1))


def test_report_explains_outcomes_and_shows_examples(ws):
    ids = _catalogue(ws)
    with ws.session() as s:
        rep = build(s, PAPER)
    assert rep.outcomes == {"pending": 2, "agreed": 1, "adjudicated": 1, "discarded": 1, "excluded": 3}
    assert rep.details["excluded"] == {"Identifiable features (face, tattoo, birthmark)": 2, "Image quality too low": 1}
    assert rep.details["pending"] == {"waiting for a rater": 1, "waiting for the reviewer": 1}
    files = write_html(rep, ws.reports / "labeling.html", ws)
    page = files.html.read_text()
    # dated, and every outcome explained in words
    assert re.search(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", page)
    for status in OUTCOME_MEANINGS:
        assert f"<td>{status}</td>" in page
    assert "no consensus after review" in page.lower() and "identifiable features" in page.lower()
    # thumbnails of disputed and discarded images, never of identifiable ones
    shown = {int(i) for i in re.findall(r'<img alt="image (\d+)" src="data:image/jpeg;base64,', page)}
    assert shown == {ids["adjudicated"], ids["awaiting_review"], ids["discarded"]}
    thumb = re.search(rf'alt="image {ids["discarded"]}" src="data:image/jpeg;base64,([^"]+)"', page).group(1)
    assert PILImage.open(io.BytesIO(base64.b64decode(thumb))).size == (120, 90)
    assert "Rater 1: Mpox<br>Rater 2: Genital warts<br>Reviewer: Primary syphilis" in page
    assert A not in page.split("<h2>Examples</h2>")[1].split("<script")[0]  # anonymised captions
    # the embedded data parses and says the same as the report, hostile round name included
    data = _embedded_json(page)
    assert data["outcomes"] == rep.outcomes and data["progress"][0]["round"] == ROUND_NAME
    assert data["generated_at"] == rep.generated_at
    assert "</script><b>" not in page.split('id="data">')[1].split("</script>")[0]
    # the confusion matrix as a PNG beside the page
    assert files.confusion_png == ws.reports / "labeling-confusion.png"
    png = PILImage.open(files.confusion_png)
    assert png.format == "PNG" and png.size[0] >= 600
    assert (files.confusion_png.stat().st_mode & 0o077) == 0 and (files.html.stat().st_mode & 0o077) == 0


def test_label_confusion_matrix_text_is_legible(sqlite_ws):
    """Every count contrasts with its cell (WCAG AA for normal text, 4.5:1), dark cells included."""
    from curate.label.agreement import agreement
    from curate.plots import confusion_matrix_plot, pyplot

    ag = agreement(
        [("mpox", "mpox")] * 40 + [("mpox", "genital_herpes")] * 3 + [("genital_herpes", "genital_herpes")] * 12,
        PAPER.codes,
    )
    plt = pyplot()
    fig, ax = plt.subplots()
    disp = confusion_matrix_plot(ax, ag.matrix, ag.labels, "second rater", "first rater")
    cells = [
        (disp.im_.cmap(disp.im_.norm(v)), disp.text_[i][j].get_color())
        for i, row in enumerate(ag.matrix)
        for j, v in enumerate(row)
    ]
    plt.close(fig)
    from matplotlib.colors import to_rgb

    assert min(contrast(cell, to_rgb(text)) for cell, text in cells) >= 4.5
    assert {text for _, text in cells} == {"#111111", "#ffffff"}  # both dark and light cells occur here


def test_cli_report_json_and_files(ws):
    ids = _catalogue(ws)
    out = CliRunner().invoke(app, ["label", "report", "--json", "-w", str(ws.root)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["confusion_png"].endswith("labeling-confusion.png") and data["generated_at"]
    assert {x["image_id"] for x in data["samples"]} == {ids["adjudicated"], ids["awaiting_review"], ids["discarded"]}
    text = CliRunner().invoke(app, ["label", "report", "-w", str(ws.root)])
    assert text.exit_code == 0 and "no consensus after review" in " ".join(text.output.split()).lower()


@pytest.mark.parametrize("per_group", [1])
def test_a_few_examples_only(sqlite_ws, per_group):
    _catalogue(sqlite_ws)
    with sqlite_ws.session() as s:
        rep = build(s, PAPER, per_group=per_group)
    assert [x.group for x in rep.samples] == ["disputed", "discarded"]


def test_report_rates_each_rater_against_the_consensus(ws):
    """A agreed on the agreed image and lost the adjudicated one; B chose the consensus. The reviewer C decided
    the one adjudicated image: the consensus is her choice, so she is not compared with it (before: 100 %, as
    every reviewer always was)."""
    _catalogue(ws)
    with ws.session() as s:
        rep = build(s, PAPER)
    by = {q.rater: q for q in rep.raters}
    assert [q.rater for q in rep.raters] == [A, B, C] and by[C].role == "reviewer"
    assert (by[A].diagnosed, by[A].compared, by[A].agreement) == (8, 2, 0.5)
    assert (by[B].diagnosed, by[B].compared, by[B].agreement) == (7, 2, 1.0)
    assert (by[C].diagnosed, by[C].compared, by[C].agreement) == (3, 0, None)
    herpes, mpox = by[A].labels.index("genital_herpes"), by[A].labels.index("mpox")
    assert by[A].matrix[herpes][mpox] == 1 and by[A].matrix[mpox][mpox] == 1 and sum(map(sum, by[A].matrix)) == 2
    assert all(q.estimated_accuracy is None for q in rep.raters)  # 8 images: too few for Dawid-Skene
    assert rep.agreement.ac1 is not None and -1 <= rep.agreement.ac1 <= 1
    files = write_html(rep, ws.reports / "labeling.html", ws)
    page = files.html.read_text()
    raters = page.split("<h2>Raters</h2>")[1].split("<h2>Examples</h2>")[0]
    assert f"<td>{A}</td><td>rater</td><td>8</td><td>2</td><td>50.0%</td><td>n/a</td>" in raters
    assert f"<td>{C}</td><td>reviewer</td><td>3</td><td>0</td><td>n/a</td>" in raters
    assert "Gwet's AC1 <b>" in page and "<th>AC1</th>" in page
    assert 'Also saved as <a href="labeling-raters.png">' in raters
    png = PILImage.open(files.raters_png)
    assert files.raters_png == ws.reports / "labeling-raters.png" and png.format == "PNG" and png.size[0] >= 1200
    assert (files.raters_png.stat().st_mode & 0o077) == 0
    assert A not in page.split("<h2>Examples</h2>")[1].split("<script")[0]  # thumbnails stay anonymised
    data = _embedded_json(page)
    assert [(x["rater"], x["agreement"]) for x in data["raters"]] == [(A, 0.5), (B, 1.0), (C, None)]
    assert data["agreement"]["ac1"] == rep.agreement.ac1


def test_cli_report_shows_raters_and_ac1(sqlite_ws):
    _catalogue(sqlite_ws)
    out = CliRunner().invoke(app, ["label", "report", "--json", "-w", str(sqlite_ws.root)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["raters_png"].endswith("labeling-raters.png")
    assert {x["rater"]: x["compared"] for x in data["raters"]} == {A: 2, B: 2, C: 0}
    text = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["label", "report", "-w", str(sqlite_ws.root)])
    assert text.exit_code == 0, text.output
    assert "AC1" in text.output and "Dawid-Skene" in text.output
    line = next(x for x in text.output.split("Dawid-Skene")[1].splitlines() if A in x)
    assert "rater" in line and "0.5" in line and "│ 8 " in " ".join(line.split()) + " "


def test_report_without_ratings_has_no_raters_png(sqlite_ws):
    stale = sqlite_ws.reports / "labeling-raters.png"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"old")
    with sqlite_ws.session() as s:
        rep = build(s, PAPER)
    files = write_html(rep, sqlite_ws.reports / "labeling.html", sqlite_ws)
    assert rep.raters == [] and files.raters_png is None and not stale.exists()
    assert "<h2>Raters</h2><p>No diagnoses yet.</p>" in files.html.read_text()


def _audit(ws, answers: dict[int, str]) -> None:
    """An audit round by D with `answers` (image -> diagnosis or "keep"), consensus recomputed as pull does."""
    with ws.session() as s:
        rnd = LabelRound(kind="audit", name="audit 1", raters=json.dumps([D]), server_url="http://127.0.0.1:1")
        s.add(rnd)
        s.flush()
        p = LabelProject(round_id=rnd.id, rater=D, ls_project_id=99)
        s.add(p)
        s.flush()
        for n, (image_id, diagnosis) in enumerate(answers.items(), start=900):
            task = LabelTask(project_id=p.id, image_id=image_id, ls_task_id=n)
            s.add(task)
            s.flush()
            s.add(
                LabelAnnotation(
                    task_id=task.id, ls_annotation_id=n, rater=D, diagnosis=diagnosis, flags="[]",
                    content_sha256=f"{n:064d}", raw="{}",
                )
            )  # fmt: skip
        s.flush()
        write_consensus(s)
        s.commit()


D = "d@clinic.test"


def test_report_follows_the_audit(ws):
    """The audit reviewer sided with rater A on the adjudicated image and gave a third opinion on the agreed one:
    raters are judged against the consensus the audit left; the auditor is not rated (she would agree with her own
    consensus by construction); the examples stay the raters' and reviewer's outcomes, which the page explains."""
    ids = _catalogue(ws)
    _audit(ws, {ids["adjudicated"]: "mpox", ids["agreed"]: "genital_warts"})
    with ws.session() as s:
        rep = build(s, PAPER)
    by = {q.rater: q for q in rep.raters}
    assert rep.outcomes["discarded"] == 2 and rep.outcomes["adjudicated"] == 1 and rep.outcomes["agreed"] == 0
    assert (by[A].compared, by[A].agreement) == (1, 1.0)  # the adjudicated image, now mpox as A said
    assert (by[B].compared, by[B].agreement) == (1, 0.0) and (by[C].compared, by[C].agreement) == (1, 0.0)
    assert D not in by and ids["agreed"] not in {x.image_id for x in rep.samples}
    _audit(ws, {ids["adjudicated"]: "keep"})  # a newer audit round keeps the reviewer's consensus
    with ws.session() as s:
        by = {q.rater: q for q in build(s, PAPER).raters}
    assert (by[A].agreement, by[C].agreement) == (0.0, None)  # the consensus is the reviewer's own choice again


def test_progress_counts_an_answer_as_it_stands_now(ws):
    """Before: the progress table counted a task done when any revision of its answer had a diagnosis, so an
    answer emptied since (or skipped) still made the round look done while consensus waited for the rater."""
    ids = _catalogue(ws)
    with ws.session() as s:
        before = {p.rater: (p.labelled, p.skipped) for p in build(s, PAPER).progress}
        s.add(_revision(_answer(s, ids["agreed"], A), diagnosis=None, cancelled=True))
        s.flush()
        write_consensus(s)
        rep = build(s, PAPER)
    now = {p.rater: (p.labelled, p.skipped) for p in rep.progress}
    assert now[A] == (before[A][0] - 1, before[A][1] + 1) and now[B] == before[B]
    assert rep.outcomes["agreed"] == 0  # consensus reads the answer the same way


def test_a_diagnosis_with_an_ac1_and_no_kappa_is_in_the_table(sqlite_ws, monkeypatch):
    """Both raters said mpox on every image: kappa is undefined, AC1 is 1.0. The table showed only "all"; --json and
    the page had the Mpox row. That is the rare-diagnosis case AC1 is reported for."""
    import sys

    monkeypatch.setattr(sys.modules[__name__], "CASES", {f"i{k}": (("mpox", []), ("mpox", []), None) for k in range(5)})
    _catalogue(sqlite_ws)
    data = json.loads(CliRunner().invoke(app, ["label", "report", "--json", "-w", str(sqlite_ws.root)]).stdout)
    assert data["agreement"]["ac1_per_diagnosis"]["mpox"] == 1.0
    text = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["label", "report", "-w", str(sqlite_ws.root)]).output
    table = text.split("Agreement (Cohen's kappa,")[1]  # the title wraps to the table's width
    assert any(line.split("│")[1:4] and "Mpox" in line and "1.0" in line for line in table.splitlines()), table


def test_a_reviewers_neither_is_no_diagnosis_in_the_rater_model(sqlite_ws, monkeypatch):
    """ "Neither (discard this image)" was modelled by Dawid-Skene as a diagnosis: every rater's confusion matrix
    had a "neither" row and column, and a reviewer's wrong discards counted as right, her raters' as wrong."""
    import sys

    cases = {f"n{k}": (("mpox", []), ("genital_herpes", []), ("neither", [])) for k in range(3)}
    cases |= {f"a{k}": (("mpox", []), ("mpox", []), None) for k in range(3)}
    monkeypatch.setattr(sys.modules[__name__], "CASES", cases)
    _catalogue(sqlite_ws)
    data = json.loads(CliRunner().invoke(app, ["label", "report", "--json", "-w", str(sqlite_ws.root)]).stdout)
    assert data["outcomes"].get("discarded") == 3
    assert all("neither" not in x["labels"] for x in data["raters"]), [x["labels"] for x in data["raters"]]


def test_progress_counts_the_queue_and_the_answers_that_count(ws):
    """From a probe with a real Label Studio: a review task that left the reviewer's queue (its raters agree now;
    `label adjudicate` deleted it and marked its row with an id below zero) was still counted as a task, and a
    review answered on a dispute a rater has changed since was still "labelled", while the outcomes said the
    image waited for the reviewer."""
    ids = _catalogue(ws)
    with ws.session() as s:
        review = s.exec(select(LabelProject).where(LabelProject.rater == C)).one()
        left = LabelTask(project_id=review.id, image_id=ids["awaiting_review"], ls_task_id=-99)
        s.add(left)
        gone = s.get(LabelTask, _answer(s, ids["agreed"], A).task_id)  # answered, then deleted in Label Studio
        gone.ls_task_id = -1 - gone.id
        s.add(gone)
        # the reviewer chose herpes on "mpox vs herpes"; B has said dermatosis since: her answer no longer counts
        answered = _answer(s, ids["adjudicated"], C)
        answered.shown = json.dumps(["mpox", "genital_herpes"])
        s.add(answered)
        s.add(_revision(_answer(s, ids["adjudicated"], B), diagnosis="dermatosis"))
        s.flush()
        write_consensus(s)
        s.commit()
    with ws.session() as s:
        rep = build(s, PAPER)
    reviewer = next(p for p in rep.progress if p.rater == C)
    assert (reviewer.tasks, reviewer.labelled) == (3, 2)  # before: (4, 3)
    rater = next(p for p in rep.progress if p.rater == A)
    assert (rater.tasks, rater.labelled) == (7, 7)  # never more labelled than tasks (a review found 7 and 8)
    assert rep.details["pending"] == {"waiting for a rater": 1, "waiting for the reviewer": 2}
    assert rep.outcomes["adjudicated"] == 0


def test_a_pull_from_a_server_that_is_down_says_whose_it_is(sqlite_ws, monkeypatch):
    """From a probe: with one clinician's server stopped, `label pull` said only "Label Studio at
    http://127.0.0.1:1 is not reachable": whose server, for which round? (Every server is on 127.0.0.1.)"""
    _catalogue(sqlite_ws)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "0123456789abcdef0123456789")
    out = CliRunner().invoke(app, ["label", "pull", "--json", "-w", str(sqlite_ws.root)])
    said = json.loads(out.stdout)["error"]
    assert out.exit_code == 1 and "is not reachable" in said, out.output
    assert f"that is {A}'s server, for {ROUND_NAME}" in said and "nothing was recorded" in said
