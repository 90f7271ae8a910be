"""A full dual-rater + adjudication round against a real Label Studio server.

Three real accounts annotate with their own tokens. One server per session;
the scenario runs as a few ordered tests over one workspace to keep this module fast.
"""

from __future__ import annotations

import json

import pytest
from images import jpeg
from sqlmodel import select
from studio_server import RATERS

from curate.errors import LabelError, StudioError
from curate.label.adjudication import blind_order
from curate.label.client import StudioClient, add_user
from curate.label.diagnoses import NEITHER_CHOICE
from curate.label.pull import pull
from curate.label.rounds import adjudicate, push
from curate.label.servers import Servers
from db.models import Image
from db.models.label import Consensus, LabelAnnotation, LabelProject, LabelTask

pytestmark = pytest.mark.studio

A, B, C = RATERS
W, H = 200, 100


def add_images(ws, n: int, seed: int = 1000) -> list[int]:
    ids = []
    with ws.session() as s:
        for i in range(n):
            data = jpeg(seed + i, size=(W, H))
            sha, _ = ws.store.put(data)
            img = Image(sha256=sha, size_bytes=len(data), format="JPEG", width=W, height=H, mode="RGB")
            s.add(img)
            s.flush()
            ids.append(img.id)
    return ids


def result(diagnosis: str, boxes=(), flags=(), comment=None) -> list[dict]:
    out = [{"from_name": "diagnosis", "to_name": "image", "type": "choices", "value": {"choices": [diagnosis]}}]
    for x, y, w, h in boxes:  # percent
        out.append(
            {
                "from_name": "lesion",
                "to_name": "image",
                "type": "rectanglelabels",
                "original_width": W,
                "original_height": H,
                "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": ["Lesion"]},
            }
        )
    if flags:
        out.append({"from_name": "flags", "to_name": "image", "type": "choices", "value": {"choices": list(flags)}})
    if comment:
        out.append({"from_name": "comment", "to_name": "image", "type": "textarea", "value": {"text": [comment]}})
    return out


def task_of(ws, rater: str, image_id: int, kind_review: bool = False) -> int:
    with ws.session() as s:
        rows = s.exec(
            select(LabelTask.ls_task_id, LabelProject.rater)
            .join(LabelProject)
            .where(LabelTask.image_id == image_id, LabelProject.rater == rater)
        ).all()
    return rows[-1][0]


def project_of(ws, rater: str) -> int:
    """The Label Studio id of the rater's latest rating project."""
    with ws.session() as s:
        return s.exec(
            select(LabelProject.ls_project_id).where(LabelProject.rater == rater).order_by(LabelProject.id.desc())
        ).first()


def annotate(fx, ws, rater, image_id, res):
    from label_studio_sdk import LabelStudio

    ls = LabelStudio(base_url=fx.urls[rater], api_key=fx.tokens[rater])  # the rater's own credentials, on their server
    return ls.annotations.create(id=task_of(ws, rater, image_id), result=res).id


def snapshot(ws) -> tuple:
    with ws.session() as s:
        anns = [(a.id, a.revision, a.withdrawn, a.content_sha256) for a in s.exec(select(LabelAnnotation)).all()]
        cons = [
            (c.image_id, c.status, c.diagnosis, c.boxes, c.exclusion, c.updated_at)
            for c in s.exec(select(Consensus)).all()
        ]
    return anns, cons


MPOX, HERPES, WARTS, DERM = "Mpox", "Genital herpes", "Genital warts", "Dermatosis"
IDENT = "Identifiable features (face, tattoo, birthmark)"


def test_full_round(studio_server, studio_workspace):
    fx, ws = studio_server, studio_workspace
    client = fx.servers()
    ids = add_images(ws, 7)
    with pytest.raises(LabelError, match="nobody@clinic.test has no Label Studio server"):
        push(ws, client, [A, "nobody@clinic.test"])
    with pytest.raises(LabelError, match="nobody@clinic.test has no Label Studio account"):
        push(ws, Servers(fx.admin_token, {**fx.urls, "nobody@clinic.test": fx.urls[C]}), [A, "nobody@clinic.test"])

    # push is idempotent and limited
    r1 = push(ws, client, [A, B], limit=5)
    assert r1.pushed == 10 and set(r1.projects) == {A, B}
    assert r1.uncompared == 5  # no dedupe run here: the steward is warned their copies may be labelled twice
    assert push(ws, client, [A, B], limit=5).pushed == 4  # the 2 remaining images, to both raters
    assert push(ws, client, [A, B]).pushed == 0
    with ws.session() as s:
        assert len(s.exec(select(LabelTask)).all()) == 14
        assert {c.status for c in s.exec(select(Consensus)).all()} == {"pending"}
    # the image is served to the labelling UI through the project's local-files storage
    import httpx
    from label_studio_sdk import LabelStudio

    task = next(iter(LabelStudio(base_url=fx.urls[A], api_key=fx.tokens[A]).tasks.list(project=r1.projects[A])))
    img = httpx.get(fx.urls[A] + task.data["image"], headers={"Authorization": f"Token {fx.tokens[A]}"})
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg" and img.content[:2] == b"\xff\xd8"
    # blindness: each rater's project holds only their own annotations
    i_agree, i_rev_a, i_rev_b, i_split, i_ident, i_box_a, i_pending = ids
    annotate(fx, ws, A, i_agree, result(MPOX, [(10, 10, 20, 40)], comment="classic umbilicated"))
    annotate(fx, ws, B, i_agree, result(MPOX, [(11, 12, 20, 38)]))
    annotate(fx, ws, A, i_rev_a, result(MPOX))
    annotate(fx, ws, B, i_rev_a, result(HERPES))
    annotate(fx, ws, A, i_rev_b, result(WARTS))
    annotate(fx, ws, B, i_rev_b, result(HERPES))
    annotate(fx, ws, A, i_split, result(MPOX))
    annotate(fx, ws, B, i_split, result(DERM))
    annotate(fx, ws, A, i_ident, result(MPOX, flags=[IDENT]))
    annotate(fx, ws, B, i_ident, result(MPOX))
    annotate(fx, ws, A, i_box_a, result(DERM, [(0, 0, 10, 10), (50, 50, 10, 10)]))
    annotate(fx, ws, B, i_box_a, result(DERM, [(80, 80, 10, 10), (0.5, 0, 10, 10)]))
    annotate(fx, ws, A, i_pending, result(DERM))
    for rater in (A, B):
        anns = fx.client(rater).fetch_annotations(r1.projects[rater])
        assert {a.completed_by for a in anns} == {rater}

    heard = []  # the progress a pull shows: every task of both raters' projects read (before: silent 30-50 s)
    res = pull(ws, client, on_progress=lambda done, total: heard.append((done, total)))
    assert (res.new, res.revised, res.withdrawn) == (13, 0, 0)
    with ws.session() as s:
        tasks = len(s.exec(select(LabelTask)).all())
    assert heard[-1] == (tasks, tasks) and [d for d, _ in heard] == list(range(1, tasks + 1)), heard
    with ws.session() as s:
        cons = {c.image_id: c for c in s.exec(select(Consensus)).all()}
        agreed = cons[i_agree]
        assert (agreed.status, agreed.diagnosis) == ("agreed", "mpox")
        assert json.loads(agreed.boxes) == [[21.0, 11.0, 61.0, 50.0]]  # merged, in pixels
        assert cons[i_ident].status == "excluded" and cons[i_ident].exclusion == "identifiable_features"
        assert [cons[i].status for i in (i_rev_a, i_rev_b, i_split, i_pending)] == ["pending"] * 4
        # boxes: one matching pair merged, the two unmatched kept (no reviewer)
        assert len(json.loads(cons[i_box_a].boxes)) == 3
        row = s.exec(
            select(LabelAnnotation).join(LabelTask).where(LabelTask.image_id == i_agree, LabelAnnotation.rater == A)
        ).one()
        assert row.comment == "classic umbilicated" and json.loads(row.raw)["result"]

    # adjudication: exactly the three disputed images go to the reviewer, showing both diagnoses
    adj = adjudicate(ws, client, C)
    assert adj.pushed == 3
    assert adjudicate(ws, client, C).pushed == 0

    tasks = {
        t.data["image_id"]: t
        for t in LabelStudio(base_url=fx.urls[C], api_key=fx.admin_token).tasks.list(project=adj.projects[C])
    }
    assert set(tasks) == {i_rev_a, i_rev_b, i_split}
    for t in tasks.values():  # anonymised: Rater 1 / Rater 2, never an email
        assert "Rater 1: " in t.data["summary"] and "Rater 2: " in t.data["summary"] and "@" not in str(t.data)
    # only the two disputed diagnoses, plus Neither: the paper's rule made visible. The raters come in the order drawn
    # for each image (A is not Rater 1 on every image), the same in the summary and in the choices
    said = {i_rev_a: {A: MPOX, B: HERPES}, i_rev_b: {A: WARTS, B: HERPES}, i_split: {A: MPOX, B: DERM}}
    for i, by in said.items():
        first, second = blind_order(i, [A, B])
        assert tasks[i].data["summary"].startswith(f"Rater 1: {by[first]} ·"), tasks[i].data["summary"]
        assert [o["value"] for o in tasks[i].data["options"]] == [by[first], by[second], NEITHER_CHOICE]
    assert "discarded" in tasks[i_rev_a].data["rule"]
    annotate(fx, ws, C, i_rev_a, result(HERPES))  # sides with B
    annotate(fx, ws, C, i_rev_b, result(WARTS))  # sides with A
    annotate(fx, ws, C, i_split, result(NEITHER_CHOICE))  # neither rater: discarded, as in the paper
    pull(ws, client)
    with ws.session() as s:
        cons = {c.image_id: c for c in s.exec(select(Consensus)).all()}
    assert (cons[i_rev_a].status, cons[i_rev_a].diagnosis) == ("adjudicated", "genital_herpes")
    assert (cons[i_rev_b].status, cons[i_rev_b].diagnosis) == ("adjudicated", "genital_warts")
    assert (cons[i_split].status, cons[i_split].diagnosis, cons[i_split].method) == (
        "discarded",
        None,
        "reviewer_neither",
    )

    # a re-pull changes nothing
    before = snapshot(ws)
    again = pull(ws, client)
    assert not again.changed and again.unchanged == 16
    assert snapshot(ws) == before

    # an edit becomes a new revision; a deletion is recorded as withdrawn
    b_ann = [a for a in fx.client(B).fetch_annotations(r1.projects[B]) if a.task_id == task_of(ws, B, i_split)][0]
    LabelStudio(base_url=fx.urls[B], api_key=fx.tokens[B]).annotations.update(id=b_ann.id, result=result(MPOX))
    c_ann = [a for a in fx.client(C).fetch_annotations(adj.projects[C]) if a.task_id == task_of(ws, C, i_rev_a)][0]
    LabelStudio(base_url=fx.urls[C], api_key=fx.admin_token).annotations.delete(id=c_ann.id)
    res = pull(ws, client)
    assert (res.new, res.revised, res.withdrawn) == (0, 1, 1)
    with ws.session() as s:
        cons = {c.image_id: c for c in s.exec(select(Consensus)).all()}
        revs = s.exec(
            select(LabelAnnotation)
            .join(LabelTask)
            .join(LabelProject)
            .where(LabelAnnotation.ls_annotation_id == b_ann.id, LabelProject.rater == B)
        ).all()
    assert [r.revision for r in revs] == [1, 2] and revs[-1].diagnosis == "mpox"
    assert (cons[i_split].status, cons[i_split].diagnosis) == ("agreed", "mpox")
    assert cons[i_rev_a].status == "pending"  # its review was withdrawn

    # errors: each one line, catalogue unchanged
    before = snapshot(ws)
    with pytest.raises(StudioError, match="not reachable"):
        pull(ws, StudioClient("http://127.0.0.1:9", fx.admin_token))
    with pytest.raises(StudioError, match="refused the API key"):
        pull(ws, Servers("not-a-valid-token", dict(fx.urls), explicit=True))
    # a label the config no longer has (e.g. someone edited the project's config in Label Studio)
    bad = LabelStudio(base_url=fx.urls[A], api_key=fx.tokens[A]).annotations.create(
        id=task_of(ws, A, i_pending),
        result=[
            {"from_name": "diagnosis", "to_name": "image", "type": "choices", "value": {"choices": ["Chickenpox"]}}
        ],
    )
    with pytest.raises(LabelError, match="'Chickenpox' is not declared in the workspace settings"):
        pull(ws, client)
    LabelStudio(base_url=fx.urls[A], api_key=fx.admin_token).annotations.delete(id=bad.id)
    LabelStudio(base_url=fx.urls[C], api_key=fx.admin_token).projects.delete(id=adj.projects[C])
    with pytest.raises(StudioError, match=rf"\(Round \d+ \(review\), {C}\) on .* was deleted in Label Studio"):
        pull(ws, client)
    assert snapshot(ws) == before


def test_a_server_shared_with_another_clinician_is_refused(studio_server, studio_workspace):
    """Blinding is checked, not assumed: a rater's server must hold no other clinician of the round."""
    fx, ws = studio_server, studio_workspace
    add_images(ws, 1)
    shared = StudioClient(fx.urls[C], fx.admin_token)
    d = "d@clinic.test"
    add_user(shared.url, fx.admin_token, d, "d-Pa55word!")
    with pytest.raises(LabelError, match=f"{d} has an account on {C}'s Label Studio server"):
        push(ws, shared, [C, d])
    with ws.session() as s:
        assert s.exec(select(LabelProject)).all() == []


def test_config_is_validated_by_the_server(studio_server):
    client = studio_server.client(A)
    with pytest.raises(StudioError, match="rejected label_config.xml"):
        client.create_round(
            "broken config", '<View><Choices name="d" toName="nowhere"><Choice value="x"/></Choices></View>', None
        )


def test_cli_round(studio_server, db_url, monkeypatch, request):
    """The steward's path: push, raters annotate, pull, adjudicate, report — all from the CLI
    (SQLite and PostgreSQL)."""
    from typer.testing import CliRunner

    from curate.cli import app
    from curate.workspace import Workspace

    fx = studio_server
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", fx.admin_token)
    monkeypatch.setenv("CURATE_STUDIO_DOCUMENT_ROOT", str(fx.base))
    ws = Workspace.init(fx.base / f"cli-{request.node.callspec.id}", db_url=db_url)
    ids = add_images(ws, 3)
    run = lambda *a: CliRunner().invoke(app, [*a, "-w", str(ws.root), *fx.url_args()])  # noqa: E731
    out = run("label", "push", "--raters", f"{A},{B}", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["pushed"] == 6 and json.loads(out.stdout)["uncompared"] == 3
    annotate(fx, ws, A, ids[0], result(MPOX)), annotate(fx, ws, B, ids[0], result(MPOX))
    annotate(fx, ws, A, ids[1], result(DERM)), annotate(fx, ws, B, ids[1], result(WARTS))
    annotate(fx, ws, A, ids[2], result(WARTS)), annotate(fx, ws, B, ids[2], result(WARTS))
    assert run("label", "pull").exit_code == 0
    out = run("label", "adjudicate", "--reviewer", C, "--json")
    assert out.exit_code == 0 and json.loads(out.stdout)["pushed"] == 1
    annotate(fx, ws, C, ids[1], result(HERPES))
    # without --url, pull finds every project on the server it recorded
    out = CliRunner().invoke(app, ["label", "pull", "--json", "-w", str(ws.root)])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["new"] == 1
    rep = CliRunner().invoke(app, ["label", "report", "--json", "-w", str(ws.root)])
    data = json.loads(rep.stdout)
    assert data["outcomes"] == {"pending": 0, "agreed": 2, "adjudicated": 0, "discarded": 1, "excluded": 0}
    assert data["agreement"]["n"] == 3 and data["agreement"]["kappa"] == pytest.approx(0.5)  # po 2/3, pe 1/3
    assert [(p["rater"], p["tasks"], p["labelled"]) for p in data["progress"]] == [(A, 3, 3), (B, 3, 3), (C, 1, 1)]
    assert "data:image/png;base64," in (ws.reports / "labeling.html").read_text()
    # the audit log holds the runs, never the key
    from db.models import CommandRun

    with ws.session() as s:
        runs = s.exec(select(CommandRun)).all()
    assert {r.command for r in runs} >= {"label push", "label pull", "label adjudicate"}
    assert all(fx.admin_token not in r.arguments + r.summary for r in runs)
    bad = CliRunner().invoke(app, ["label", "pull", "-w", str(ws.root), "--url", "http://127.0.0.1:9"])
    assert bad.exit_code == 1 and "not reachable" in bad.output


def test_a_flag_pulled_after_an_export_names_the_versions_holding_the_image(studio_server, monkeypatch):
    """The privacy probe's case: a rater flags "identifiable features" on an image already exported. The sealed
    version and its archive keep its copy; before, nothing said so. Pull and status name the version, its archive
    and the image; the next export leaves it out."""
    from label_studio_sdk import LabelStudio
    from typer.testing import CliRunner

    from curate.cli import app
    from curate.dataset import DatasetVersion
    from curate.workspace import Workspace
    from db.models import Provenance, Source

    fx = studio_server
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", fx.admin_token)
    monkeypatch.setenv("CURATE_STUDIO_DOCUMENT_ROOT", str(fx.base))
    ws = Workspace.init(fx.base / "flag-after-export")
    ids = add_images(ws, 8, seed=3000)
    with ws.session() as s:  # the images' arrivals, as an ingest records them (export needs them)
        src = Source(name="clinic", kind="clinic")
        s.add(src)
        s.flush()
        s.add_all(Provenance(image_id=i, source_id=src.id, locator=f"case{i}.jpg") for i in ids)
    run = lambda *a: CliRunner().invoke(app, [*a, "-w", str(ws.root)])  # noqa: E731
    out = CliRunner().invoke(app, ["label", "push", "--raters", f"{A},{B}", "-w", str(ws.root), *fx.url_args()])
    assert out.exit_code == 0, out.output
    for i, diagnosis in zip(ids, [MPOX, WARTS] * 4, strict=True):
        annotate(fx, ws, A, i, result(diagnosis)), annotate(fx, ws, B, i, result(diagnosis))
    assert run("label", "pull").exit_code == 0
    out = run("export", "--name", "t", "--version", "1.0.0", "--size", "48", "--folds", "2", "--archive", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(run("status", "--json").stdout)["flagged_in_versions"] == []
    victim = ids[1]
    (b_ann,) = [a for a in fx.client(B).fetch_annotations(project_of(ws, B)) if a.task_id == task_of(ws, B, victim)]
    LabelStudio(base_url=fx.urls[B], api_key=fx.tokens[B]).annotations.update(
        id=b_ann.id, result=result(WARTS, flags=[IDENT])
    )
    out = run("label", "pull", "--json")
    assert out.exit_code == 0, out.output
    expected = [
        {
            "version": "t@1.0.0",
            "images": [victim],
            "folder": "exports/t/1.0.0",
            "archive": "exports/t/t-1.0.0.tar",
            "made": [],
        }
    ]
    assert json.loads(out.stdout)["flagged_in_versions"] == expected
    said = " ".join(run("label", "pull").output.split())
    assert f"1 image(s) flagged 'identifiable features' after export (ids {victim}) are still in t@1.0.0 (and " in said
    assert json.loads(run("status", "--json").stdout)["flagged_in_versions"] == expected
    assert "are still in t@1.0.0" in " ".join(run("status").output.split())
    again = json.loads(
        run("export", "--name", "t", "--version", "1.1.0", "--size", "48", "--folds", "2", "--json").stdout
    )
    assert again["excluded"]["identifiable_features"] == 1
    assert victim not in {int(r["image_id"]) for r in DatasetVersion.open(again["path"]).rows}
    # the steward deletes the folder: the archive still holds the photo, and is named; then it goes too
    version = ws.root / "exports" / "t" / "1.0.0"
    for path in sorted(version.rglob("*"), reverse=True):
        path.chmod(0o700) if path.is_dir() else path.unlink()
    for path in sorted(version.rglob("*"), reverse=True):
        path.rmdir()
    version.rmdir()
    assert json.loads(run("status", "--json").stdout)["flagged_in_versions"] == [
        {"version": "t@1.0.0", "images": [victim], "folder": None, "archive": "exports/t/t-1.0.0.tar", "made": []}
    ]
    assert "t@1.0.0 (its archive exports/t/t-1.0.0.tar)" in " ".join(run("status").output.split())
    (ws.root / "exports" / "t" / "t-1.0.0.tar").unlink()
    assert json.loads(run("status", "--json").stdout)["flagged_in_versions"] == []
    # a damaged manifest is passed over, never a crash of status or pull
    manifest = ws.root / "exports" / "t" / "1.1.0" / "manifest.csv"
    manifest.chmod(0o600)
    manifest.write_text("file,image_id\nx.jpg,x1\n")
    assert run("status").exit_code == 0 and run("label", "pull").exit_code == 0


def test_personal_access_token_works_too(studio_server):
    """label-studio-sdk 2.x takes either the legacy token or a personal access token (JWT refresh token)."""
    import httpx

    fx = studio_server
    url = fx.urls[C]
    r = httpx.post(url + "/api/token/", headers={"Authorization": f"Token {fx.tokens[C]}"})
    assert r.status_code in (200, 201), r.text
    pat = r.json()["token"]
    assert StudioClient(url, pat).whoami() == C
    with pytest.raises(StudioError, match="refused the API key"):
        StudioClient(url, pat[:-4] + "abcd").whoami()
