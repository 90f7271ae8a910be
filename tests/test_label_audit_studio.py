"""Model-assisted curation end to end, through the real CLI, against the suite's real Label Studio servers.

push --order uncertainty (raters get the most uncertain image first and never a model output) -> two raters
and a reviewer label, with planted consensus errors -> export 1.0.0 -> a run folder on it -> label audit
ranks the planted errors first -> bad runs and a rater as auditor are refused -> the audit round survives its
server going down mid-push -> an audit with no answers changes nothing -> the answers apply under the rule,
with history -> export 1.1.0 shows the relabelled image, the old run now flags it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import test_e2e_workflow as e2e
from browser import chromium, task_page
from relay import Relay
from sqlmodel import select
from studio_server import RATERS

from curate.label.diagnoses import KEEP_CHOICE
from curate.workspace import Workspace
from db.models import Image, Provenance, Source
from db.models.label import Consensus, ConsensusHistory, LabelProject, LabelRound, LabelTask

pytestmark = [pytest.mark.slow, pytest.mark.studio]

A, B, C = RATERS
LS = e2e.LS
cli, jcli = e2e.cli, e2e.jcli


def write_run(folder: Path, version: Path, truth: dict[int, str], flip: float = 0.0) -> Path:
    """A run folder as `train run` writes it (run.json's dataset record, oof_predictions.csv's columns), with a
    model that is sure of each image's true class."""
    meta = json.loads((version / "dataset.json").read_text())
    checksum = hashlib.sha256((version / "SHA256SUMS").read_bytes()).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(
        json.dumps(
            {
                "dataset": {
                    "ref": f"{meta['name']}@{meta['version']}",
                    "name": meta["name"],
                    "version": meta["version"],
                    "path": str(version),
                    "checksum": checksum,
                    "task": meta["task"],
                    "classes": meta["classes"],
                }
            }
        )
    )
    cols = [
        "set",
        "image_id",
        "file",
        "label",
        "is_positive",
        "fold",
        "n_models",
        "p_mpox",
        "p_non_mpox",
        "p_positive",
        "p_positive_calibrated",
        "triage",
    ]
    with open(version / "manifest.csv", newline="") as fh:
        manifest = list(csv.DictReader(fh))
    with open(folder / "oof_predictions.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, cols)
        w.writeheader()
        for n, r in enumerate(manifest):
            i = int(r["image_id"])
            p = 0.93 - 0.002 * n if truth[i] == "mpox" else 0.07 + 0.002 * n
            w.writerow(
                {
                    "set": r["split"],
                    "image_id": i,
                    "file": r["file"],
                    "label": r["label"],
                    "is_positive": int(r["label"] == "mpox"),
                    "fold": r["fold"],
                    "n_models": 1,
                    "p_mpox": round(p, 6),
                    "p_non_mpox": round(1 - p, 6),
                    "p_positive": round(p, 6),
                    "p_positive_calibrated": round(p, 6),
                    "triage": "refer" if p > 0.5 else "routine",
                }
            )
    return folder


def test_audit_workflow(studio_server, tmp_path, monkeypatch):
    fx = studio_server
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", fx.admin_token)
    monkeypatch.setenv("CURATE_STUDIO_DOCUMENT_ROOT", str(fx.base))
    monkeypatch.delenv("CURATE_WORKSPACE", raising=False)
    monkeypatch.delenv("CURATE_DB_URL", raising=False)
    root = fx.base / "audit-ws"
    data = e2e.make_folders(tmp_path)
    w = ("-w", str(root))
    cli("init", str(root))
    cli(
        "ingest",
        str(data["clinic"]),
        "--source",
        "clinic-2022",
        "--kind",
        "clinic",
        "--workers",
        "1",
        "--case-id-pattern",
        r"(?P<case>P\d{4})",
        *w,
    )
    cli(
        "ingest",
        str(data["public"]),
        "--source",
        "public-msid",
        "--kind",
        "public",
        "--licence",
        "CC-BY-4.0",
        "--workers",
        "1",
        *w,
    )
    cli("dedupe", "--workers", "1", *w)
    ws = Workspace.open(root)
    with ws.session() as s:
        rows = s.exec(
            select(Provenance.image_id, Provenance.locator, Source.name).join(Source, Source.id == Provenance.source_id)
        ).all()
        images = {im.id: im for im in s.exec(select(Image)).all()}
    truth = {i: loc.split("/")[0] for i, loc, _ in rows}
    source_of = {i: src for i, _, src in rows}

    # 1. informative images first: the order of the import is the order Label Studio hands tasks out
    files = cli("label", "candidates", *w).stdout.split()
    assert len(files) == 36 and all(Path(f).is_file() for f in files)
    shas = {im.sha256: im.id for im in images.values()}
    ids = [shas[Path(f).parent.name + Path(f).name] for f in files]
    p_of = {i: 0.5 + 0.45 * ((n * 7) % 36) / 35 for n, i in enumerate(ids)}  # every image a distinct uncertainty
    preds = tmp_path / "predictions.json"
    preds.write_text(
        json.dumps(
            [
                {"image": f, "probabilities": {"mpox": p_of[i], "non_mpox": 1 - p_of[i]}}
                for f, i in zip(files, ids, strict=True)
            ]
        )
    )
    bad = cli("label", "push", "--raters", f"{A},{B}", "--order", "uncertainty", *w, *fx.url_args(), ok=False)
    assert bad.exit_code == 1 and "--order uncertainty needs --predictions FILE" in bad.output
    pushed = jcli(
        "label",
        "push",
        "--raters",
        f"{A},{B}",
        "--order",
        "uncertainty",
        "--predictions",
        str(preds),
        *w,
        *fx.url_args(),
    )
    assert pushed["pushed"] == 72
    from label_studio_sdk import LabelStudio

    most_uncertain = min(ids, key=lambda i: (p_of[i], i))
    for rater in (A, B):
        ls = LabelStudio(base_url=fx.urls[rater], api_key=fx.tokens[rater])
        project = pushed["projects"][rater]
        import httpx

        nxt = httpx.get(
            f"{fx.urls[rater]}/api/projects/{project}/next", headers={"Authorization": f"Token {fx.tokens[rater]}"}
        )
        assert (
            nxt.status_code == 200 and nxt.json()["data"]["image_id"] == most_uncertain
        )  # "Label All Tasks" starts here
        for t in ls.tasks.list(project=project):
            task = httpx.get(
                f"{fx.urls[rater]}/api/tasks/{t.id}", headers={"Authorization": f"Token {fx.tokens[rater]}"}
            ).json()
            assert set(task["data"]) == {"image", "image_id"}, task[
                "data"
            ]  # blind to the model: no probability anywhere
            assert task.get("predictions") in ([], None) and not task.get("total_predictions")
    ra, rb = e2e.Rater(fx, A, pushed["projects"][A]), e2e.Rater(fx, B, pushed["projects"][B])
    order = [t.data["image_id"] for t in ra.ls.tasks.list(project=pushed["projects"][A])]
    assert sorted(order) == sorted(ids)

    # 2. label, with planted consensus errors (the model below knows the truth)
    todo = sorted(ids)
    clinic = [i for i in todo if source_of[i] == "clinic-2022"]
    mpox = [i for i in clinic if truth[i] == "mpox"]
    herpes = [i for i in clinic if truth[i] == "genital_herpes"]
    agreed_wrong, kept_wrong, adj_wrong, adj_right = mpox[0], herpes[0], mpox[1], herpes[1]
    said = {
        agreed_wrong: ("genital_herpes", "genital_herpes"),
        kept_wrong: ("mpox", "mpox"),
        adj_wrong: ("mpox", "genital_warts"),
        adj_right: ("genital_herpes", "mpox"),
    }
    for i in todo:
        size = (images[i].width, images[i].height)
        a, b = said.get(i, (truth[i], truth[i]))
        ra.annotate(i, e2e.result(LS[a], size))
        rb.annotate(i, e2e.result(LS[b], size))
    jcli("label", "pull", *w, *fx.url_args())
    adj = jcli("label", "adjudicate", "--reviewer", C, *w, *fx.url_args())
    rc = e2e.Rater(fx, C, adj["projects"][C])
    rc.annotate(adj_wrong, e2e.result(LS["genital_warts"], (1, 1)))  # sides with the wrong rater
    rc.annotate(adj_right, e2e.result(LS["genital_herpes"], (1, 1)))
    jcli("label", "pull", *w, *fx.url_args())
    v1 = Path(
        jcli(
            "export",
            "--name",
            "mpox",
            "--version",
            "1.0.0",
            "--external",
            "public-msid",
            "--size",
            "64",
            "--workers",
            "1",
            *w,
        )["path"]
    )
    run = write_run(tmp_path / "run", v1, truth)

    # 3. the audit ranks the planted errors first
    rep = jcli("label", "audit", "--run", str(run), *w)
    top = [r["image_id"] for r in rep["ranked"][:3]]
    assert set(top) == {agreed_wrong, kept_wrong, adj_wrong}, rep["ranked"][:4]
    first = rep["ranked"][0]
    assert first["raters"] and first["self_confidence"] < 0.2 and first["score"] is not None
    page = Path(rep["html"]).read_text()
    assert "data:image/jpeg;base64," in page and f"image {adj_wrong}" in page and A in page and "Label audit" in page
    assert not rep["unranked"]
    shown = cli("label", "audit", "--run", str(run), *w).output  # the table for people
    assert "Most likely label errors (mpox@1.0.0" in shown and "HTML:" in shown

    # 4. bad input: a run on another version, a run without probabilities, a rater as auditor
    other = write_run(tmp_path / "other", v1, truth)
    meta = json.loads((other / "run.json").read_text())
    meta["dataset"]["version"] = "0.9.0"
    (other / "run.json").write_text(json.dumps(meta))
    r = cli("label", "audit", "--run", str(other), *w, ok=False)
    assert r.exit_code == 1 and "was trained on mpox@0.9.0, not mpox@1.0.0" in r.output and "Traceback" not in r.output
    meta["dataset"]["version"], meta["dataset"]["checksum"] = "1.0.0", "0" * 64
    (other / "run.json").write_text(json.dumps(meta))
    r = cli("label", "audit", "--run", str(other), *w, ok=False)
    assert r.exit_code == 1 and "was trained on another mpox@1.0.0 (checksum 000000000000" in r.output
    (other / "oof_predictions.csv").unlink()
    r = cli("label", "audit", "--run", str(other), *w, ok=False)
    assert r.exit_code == 1 and "has no out-of-fold predictions (oof_predictions.csv)" in r.output
    r = cli("label", "audit", "--run", str(run), "--push", "--reviewer", A, "--top", "3", *w, *fx.url_args(), ok=False)
    assert r.exit_code == 1 and f"{A} rated image" in r.output and "must not be one of its raters" in r.output
    with ws.session() as s:
        assert not s.exec(select(LabelRound).where(LabelRound.kind == "audit")).all()

    # 5. Label Studio goes down mid-push: nothing half-recorded, the re-run continues
    relay = Relay(fx.urls[C])
    try:
        urls = [*fx.url_args()[:-2], "--url", f"{C}={relay.url}"]
        assert fx.url_args()[-1].startswith(C)
        # users, validate config, create project, add storage; the task count and the import never arrive
        relay.budget = 4
        r = cli("label", "audit", "--run", str(run), "--push", "--reviewer", C, "--top", "3", *w, *urls, ok=False)
        assert r.exit_code == 1 and "not reachable" in r.output, r.output
        with ws.session() as s:
            rnd = s.exec(select(LabelRound).where(LabelRound.kind == "audit")).one()
            proj = s.exec(select(LabelProject).where(LabelProject.round_id == rnd.id)).one()
            assert not s.exec(select(LabelTask).where(LabelTask.project_id == proj.id)).all()
        relay.budget = None
        done = jcli("label", "audit", "--run", str(run), "--push", "--reviewer", C, "--top", "3", *w, *urls)
        assert done["pushed"]["pushed"] == 3 and done["pushed"]["projects"][C] == proj.ls_project_id
        again = jcli("label", "audit", "--run", str(run), "--push", "--reviewer", C, "--top", "3", *w, *urls)["pushed"]
        assert (again["pushed"], again["already"]) == (0, 3)  # said: the top 3 are in it (before: silently 0)
        said = cli("label", "audit", "--run", str(run), "--push", "--reviewer", C, "--top", "3", *w, *urls)
        assert "pushed 0 image(s)" in said.stdout and "(3 of the top 3 already in it)" in said.stdout, said.stdout
        auditor = e2e.Rater(fx, C, proj.ls_project_id)
        assert set(auditor.tasks) == {agreed_wrong, kept_wrong, adj_wrong}  # once each in Label Studio
        task = auditor.ls.tasks.get(auditor.tasks[adj_wrong])
        assert (
            task.data["summary"]
            == "Rater 1: Mpox\nRater 2: Genital warts\nReviewer: Genital warts\nCurrent consensus: Genital warts"
        )
        assert set(task.data) == {
            "image",
            "image_id",
            "summary",
            "rule",
            "options",
            "disputed",
        }  # no model output for the auditor either
        assert task.data["disputed"] == ["mpox", "genital_warts", "genital_warts"]  # what the answer is given on
        with chromium() as browser:  # what the auditor's page shows, in Chromium at 1366x768
            ctx, page, text = task_page(
                browser,
                fx.urls[C],
                C,
                fx.passwords[C],
                proj.ls_project_id,
                auditor.tasks[adj_wrong],
                "Audit: is this image's diagnosis right?",
                "audit/audit-view-1366x768.png",
            )
            assert "Rater 1: Mpox" in text and "Current consensus: Genital warts" in text, text
            assert "probab" not in text.lower() and A not in page.content() and B not in page.content()
            offered = page.locator("input.ant-radio-input")
            names = [offered.nth(i).get_attribute("name") for i in range(offered.count())]
            assert names[0] == KEEP_CHOICE and "Mpox" in names and "Genital warts" in names, names
            for i in range(offered.count()):  # every choice beside the photo, none below the fold
                box = page.locator("label.lsf-choice__checkbox").nth(i).bounding_box()
                assert box and box["x"] > 640 and box["y"] >= 0 and box["y"] + box["height"] <= 768, (names[i], box)
            ctx.close()

        # 6. an audit round with nothing answered: pull changes nothing
        with ws.session() as s:
            before = {c.image_id: (c.status, c.diagnosis) for c in s.exec(select(Consensus)).all()}
        p = jcli("label", "pull", *w, *urls)
        assert p["audit"] == {"tasks": 3, "answered": 0, "kept": 0, "relabelled": 0, "discarded": 0}
        with ws.session() as s:
            assert {c.image_id: (c.status, c.diagnosis) for c in s.exec(select(Consensus)).all()} == before
            assert not s.exec(select(ConsensusHistory)).all()

        # 7. the answers apply under the rule, every change kept
        auditor.annotate(adj_wrong, e2e.result(LS["mpox"], (1, 1)))  # rater A said mpox: relabelled
        auditor.annotate(agreed_wrong, e2e.result(LS["mpox"], (1, 1)))  # neither rater said mpox: discarded
        auditor.annotate(kept_wrong, e2e.result(KEEP_CHOICE, (1, 1)))  # kept
        p = jcli("label", "pull", *w, *urls)
        assert p["audit"] == {"tasks": 3, "answered": 3, "kept": 1, "relabelled": 1, "discarded": 1}
        out = cli("label", "pull", *w, *urls).output
        assert "audit: 3 of 3 image(s) answered: 1 kept, 1 relabelled, 1 discarded" in out
        progress = [(p["kind"], p["rater"], p["tasks"], p["labelled"]) for p in jcli("label", "report", *w)["progress"]]
        assert ("audit", C, 3, 3) in progress
    finally:
        relay.close()
    with ws.session() as s:
        cons = {c.image_id: c for c in s.exec(select(Consensus)).all()}
        hist = s.exec(select(ConsensusHistory).order_by(ConsensusHistory.id)).all()
    assert (cons[adj_wrong].status, cons[adj_wrong].diagnosis, cons[adj_wrong].method) == (
        "adjudicated",
        "mpox",
        "audit_relabelled",
    )
    assert (cons[agreed_wrong].status, cons[agreed_wrong].method) == ("discarded", "audit_third_opinion")
    assert (cons[kept_wrong].status, cons[kept_wrong].diagnosis) == before[kept_wrong]
    assert [
        (h.image_id, h.previous_status, h.previous_diagnosis, h.new_status, h.new_diagnosis, h.changed_by) for h in hist
    ] == sorted(
        [
            (adj_wrong, "adjudicated", "genital_warts", "adjudicated", "mpox", C),
            (agreed_wrong, "agreed", "genital_herpes", "discarded", None, C),
        ],
        key=lambda t: t[0],
    )
    assert all(h.reason.startswith("audit: ") and h.changed_at and h.round_id == rnd.id for h in hist)

    # 8. a new export shows the relabelled image; the old run now flags it instead of mixing it in
    jcli(
        "export",
        "--name",
        "mpox",
        "--version",
        "1.1.0",
        "--external",
        "public-msid",
        "--size",
        "64",
        "--workers",
        "1",
        *w,
    )
    d = jcli("diff", "mpox@1.0.0", "mpox@1.1.0", *w)
    assert [x[0] for x in d["relabeled_ids"]] == [adj_wrong] and "non_mpox/genital_warts" in d["relabeled_ids"][0][1]
    assert agreed_wrong in d["removed_ids"]
    r = cli("label", "audit", "--run", str(run), *w, ok=False)
    assert r.exit_code == 1 and "was trained on mpox@1.0.0, not mpox@1.1.0 (the workspace's newest export" in r.output
    old = jcli("label", "audit", "--run", str(run), "--dataset", "mpox@1.0.0", *w)
    why = {u["image_id"]: u["why_not_ranked"] for u in old["unranked"]}
    assert why == {
        adj_wrong: "relabelled since the run (genital_warts -> mpox)",
        agreed_wrong: "consensus is now discarded",
    }
    assert adj_wrong not in [x["image_id"] for x in old["ranked"]]
    shutil.rmtree(root, ignore_errors=True)
