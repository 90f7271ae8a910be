"""A data steward's whole workflow, through the real CLI, against a real Label Studio server.

init -> ingest (clinic + public) -> dedupe -> label push / annotate (three real accounts) / pull /
adjudicate / pull / report -> export 1.0.0 -> versions -> export 1.1.0 -> diff -> train run /
predict / compare -> status. One workspace per module; the steps run in order in one test so a
failure names the first stage that broke.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from images import encode, exif_jpeg, photo
from sqlmodel import select
from studio_server import RATERS
from typer.testing import CliRunner

from curate.cli import app
from curate.label.diagnoses import NEITHER_CHOICE
from curate.workspace import Workspace
from db.models import Image, Provenance, Source

pytestmark = [pytest.mark.slow, pytest.mark.studio]

A, B, C = RATERS
W, H = 200, 150
LS = {
    "mpox": "Mpox",
    "genital_herpes": "Genital herpes",
    "genital_warts": "Genital warts",
    "healthy_skin": "Healthy skin",
}
IDENT = "Identifiable features (face, tattoo, birthmark)"
runner = CliRunner()


def cli(*args: str, ok: bool = True):
    r = runner.invoke(app, list(args))
    if ok:
        assert r.exit_code == 0, f"curate {' '.join(args)} -> {r.exit_code}\n{r.output}\n{r.exception!r}"
    return r


def jcli(*args: str) -> dict:
    return json.loads(cli(*args, "--json").stdout)


def make_folders(root: Path) -> dict:
    """clinic/<diagnosis>/P<case>_<n>.jpg (some cases with two photos) and public/<diagnosis>/*.jpg."""
    clinic, public = root / "clinic", root / "public"
    plan = {"mpox": 12, "genital_herpes": 8, "genital_warts": 6}
    seed, case = 100, 1
    for dx, n in plan.items():
        (clinic / dx).mkdir(parents=True)
        for i in range(n):
            name = f"P{case:04d}_{i % 2 + 1}.jpg"
            if i % 2 == 1 or dx != "mpox":
                case += 1
            path = clinic / dx / name
            if dx == "mpox" and i == 11:
                path.write_bytes(exif_jpeg(seed, orientation=6, size=(W, H)))  # sideways camera JPEG with GPS
            elif dx == "genital_herpes" and i == 7:
                path.write_bytes(exif_jpeg(seed, orientation=8, size=(W, H)))
            else:
                photo(seed, (W, H)).save(path, "JPEG", quality=90)
            seed += 1
    # a near-duplicate: the first mpox photo, resized and re-encoded, filed under another case id
    original = clinic / "mpox" / "P0001_1.jpg"
    from PIL import Image as PILImage

    PILImage.open(original).resize((180, 135)).save(clinic / "mpox" / f"P{case:04d}_1.jpg", "JPEG", quality=70)
    case += 1
    # a thumbnail too small to label
    (clinic / "genital_warts" / f"P{case:04d}_1.jpg").write_bytes(encode(photo(999, (96, 72)), "JPEG", quality=90))
    for dx in ("mpox", "healthy_skin"):
        (public / dx).mkdir(parents=True)
        for i in range(5):
            photo(seed, (W, H)).save(public / dx / f"{dx}-{i:02d}.jpg", "JPEG", quality=90)
            seed += 1
    return {
        "clinic": clinic,
        "public": public,
        "dup": f"mpox/P{case - 1:04d}_1.jpg",
        "dup_of": "mpox/P0001_1.jpg",
        "lowres": f"genital_warts/P{case:04d}_1.jpg",
    }


def result(diagnosis: str, size, boxes=(), flags=()) -> list[dict]:
    out = [{"from_name": "diagnosis", "to_name": "image", "type": "choices", "value": {"choices": [diagnosis]}}]
    for x, y, w, h in boxes:
        out.append(
            {
                "from_name": "lesion",
                "to_name": "image",
                "type": "rectanglelabels",
                "original_width": size[0],
                "original_height": size[1],
                "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": ["Lesion"]},
            }
        )
    if flags:
        out.append({"from_name": "flags", "to_name": "image", "type": "choices", "value": {"choices": list(flags)}})
    return out


class Rater:
    """One clinician annotating in their own Label Studio account (their own token)."""

    def __init__(self, fx, email: str, project: int):
        from label_studio_sdk import LabelStudio

        self.ls = LabelStudio(base_url=fx.urls[email], api_key=fx.tokens[email])  # on the clinician's own server
        self.tasks = {t.data["image_id"]: t.id for t in self.ls.tasks.list(project=project)}

    def annotate(self, image_id: int, res: list[dict]) -> None:
        self.ls.annotations.create(id=self.tasks[image_id], result=res)


def test_steward_workflow(studio_server, tmp_path, monkeypatch):
    fx = studio_server
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", fx.admin_token)
    monkeypatch.setenv("CURATE_STUDIO_DOCUMENT_ROOT", str(fx.base))
    monkeypatch.delenv("CURATE_WORKSPACE", raising=False)
    monkeypatch.delenv("CURATE_DB_URL", raising=False)
    root = fx.base / "e2e-ws"
    data = make_folders(tmp_path)
    w = ("-w", str(root))
    url = tuple(fx.url_args())  # each clinician's own server

    # 1. init + ingest ---------------------------------------------------------------------
    cli("init", str(root))
    cli("init", str(root))  # safe to re-run
    ing = jcli(
        "ingest",
        str(data["clinic"]),
        "--source",
        "clinic-2022",
        "--kind",
        "clinic",
        "--label-from-folders",
        "--case-id-pattern",
        r"(?P<case>P\d{4})",
        "--workers",
        "1",
        *w,
    )
    pub = jcli(
        "ingest",
        str(data["public"]),
        "--source",
        "public-msid",
        "--kind",
        "public",
        "--licence",
        "CC-BY-4.0",
        "--label-from-folders",
        "--workers",
        "1",
        *w,
    )
    again = jcli(
        "ingest",
        str(data["clinic"]),
        "--source",
        "clinic-2022",
        "--case-id-pattern",
        r"(?P<case>P\d{4})",
        "--workers",
        "1",
        *w,
    )
    ws = Workspace.open(root)
    with ws.session() as s:
        rows = s.exec(
            select(Provenance.image_id, Provenance.locator, Provenance.case_id, Source.name).join(
                Source, Source.id == Provenance.source_id
            )
        ).all()
        images = {im.id: im for im in s.exec(select(Image)).all()}
    by_loc = {(src, loc): i for i, loc, _, src in rows}
    case_of = {i: case for i, _, case, _ in rows if case}
    source_of = {i: src for i, _, _, src in rows}
    truth = {i: loc.split("/")[0] for i, loc, _, _ in rows}
    assert len(images) == 28 + 10, (ing, pub)
    assert len(rows) == 38  # the re-ingest added no second arrival
    assert len(case_of) == 28 and all(re.fullmatch(r"P\d{4}", c) for c in case_of.values())
    assert sum(im.has_gps for im in images.values()) == 2
    sideways = [im for im in images.values() if (im.width, im.height) == (H, W)]
    assert len(sideways) == 2, "EXIF-rotated photos are catalogued in their displayed orientation"
    assert (ing["added"], ing["rejected"], pub["added"]) == (28, 0, 10)
    assert (again["added"], again["new_provenance"], again["already_known"]) == (0, 0, 28)  # re-run: nothing twice

    # 2. dedupe ----------------------------------------------------------------------------
    dd = jcli("dedupe", "--workers", "1", *w)
    dup, dup_of = by_loc[("clinic-2022", data["dup"])], by_loc[("clinic-2022", data["dup_of"])]
    lowres = by_loc[("clinic-2022", data["lowres"])]
    from curate.dedupe import cluster_map, labelable_image_ids

    assert [set(g["members"]) for g in dd["groups"]] == [{dup, dup_of}], dd  # only the planted pair
    assert dd["groups"][0]["representative"] == dup_of  # the full-size original, not the shrunken copy
    assert (dd["images"], dd["low_res"], dd["labelable"]) == (38, 1, 36), dd
    assert Path(dd["review_sheet"]).is_file()
    with ws.session() as s:
        labelable = set(labelable_image_ids(s))
    assert lowres not in labelable and dup not in labelable and len(labelable) == 36
    assert jcli("status", *w)["stages"]["to_label"] == 36

    # 3. labelling -------------------------------------------------------------------------
    pushed = jcli("label", "push", "--raters", f"{A},{B}", *w, *url)
    assert pushed["pushed"] == 2 * 36
    assert jcli("label", "push", "--raters", f"{A},{B}", *w, *url)["pushed"] == 0  # idempotent
    ra = Rater(fx, A, pushed["projects"][A])
    rb = Rater(fx, B, pushed["projects"][B])
    assert set(ra.tasks) == set(rb.tasks) == labelable

    todo = sorted(labelable)
    clinic_ids = [i for i in todo if source_of[i] == "clinic-2022"]
    public_ids = [i for i in todo if source_of[i] == "public-msid"]
    rotated = [i for i in todo if (images[i].width, images[i].height) == (H, W)]
    assert len(rotated) == 2
    upright = [i for i in clinic_ids if i not in rotated]
    herpes = [i for i in upright if truth[i] == "genital_herpes"]
    warts = [i for i in upright if truth[i] == "genital_warts"]
    mpox_clinic = [i for i in upright if truth[i] == "mpox"]
    dis_a, dis_b, dis_third = herpes[0], warts[0], mpox_clinic[-1]  # the reviewer sides with A / with B / neither
    ident = herpes[1]
    late = warts[1]  # B labels it only after the first export
    boxed = set(mpox_clinic[:4] + herpes[2:4] + public_ids[:2] + public_ids[-2:] + rotated)
    for i in todo:
        size = (images[i].width, images[i].height)
        dx = LS[truth[i]]
        # an off-centre box (percent of the image as displayed) so a wrong orientation shows in the crop
        box = [(60, 10, 30, 20)] if i in boxed else []
        box_b = [(61, 11, 30, 20)] if i in boxed else []
        ra.annotate(
            i, result(LS["genital_herpes"] if i == dis_b else dx, size, box, flags=[IDENT] if i == ident else ())
        )
        if i == late:
            continue
        rb.annotate(i, result({dis_a: LS["mpox"], dis_b: dx, dis_third: LS["genital_herpes"]}.get(i, dx), size, box_b))
    p1 = jcli("label", "pull", *w, *url)
    assert p1["new"] == 2 * 36 - 1, p1
    adj = jcli("label", "adjudicate", "--reviewer", C, *w, *url)
    assert adj["pushed"] == 3
    rc = Rater(fx, C, adj["projects"][C])
    assert set(rc.tasks) == {dis_a, dis_b, dis_third}
    rc.annotate(dis_a, result(LS["genital_herpes"], (images[dis_a].width, images[dis_a].height)))  # with A
    rc.annotate(dis_b, result(LS["genital_warts"], (images[dis_b].width, images[dis_b].height)))  # with B
    rc.annotate(dis_third, result(NEITHER_CHOICE, (images[dis_third].width, images[dis_third].height)))  # discards
    p2 = jcli("label", "pull", *w, *url)
    assert p2["new"] == 3, p2
    rep = jcli("label", "report", *w)
    assert rep["outcomes"] == {"pending": 1, "agreed": 31, "adjudicated": 2, "discarded": 1, "excluded": 1}, rep[
        "outcomes"
    ]
    assert rep["agreement"]["n"] == 35 and rep["agreement"]["kappa"] is not None
    assert 0.8 < rep["agreement"]["kappa"] < 1.0
    assert Path(rep["html"]).is_file()
    progress = {(p["rater"]): (p["tasks"], p["labelled"]) for p in rep["progress"]}
    assert progress == {A: (36, 36), B: (36, 35), C: (3, 3)}

    # 4. export ----------------------------------------------------------------------------
    ex = jcli(
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
    )
    v1 = Path(ex["path"])
    with open(v1 / "manifest.csv", newline="") as fh:
        man = list(csv.DictReader(fh))
    assert ex["images"] == len(man) == 33  # 31 agreed + 2 adjudicated; pending, discarded, excluded left out
    exported = {int(r["image_id"]) for r in man}
    assert not exported & {late, dis_third, ident, lowres}
    assert len(exported & {dup, dup_of}) == 1
    assert {r["source"] for r in man if r["split"] == "external"} == {"public-msid"}
    assert {int(r["image_id"]) for r in man if r["split"] == "external"} == set(public_ids)
    by_cluster: dict[str, set] = {}
    by_case: dict[str, set] = {}
    for r in man:
        by_cluster.setdefault(r["cluster"], set()).add(r["split"])
        i = int(r["image_id"])
        if i in case_of:
            by_case.setdefault(case_of[i], set()).add(r["split"])
    assert all(len(v) == 1 for v in by_cluster.values())
    assert all(len(v) == 1 for v in by_case.values()), by_case
    assert {r["split"] for r in man} == {"train", "test", "external"}
    assert {r["label"] for r in man} == {"mpox", "non_mpox"}
    for r in man:
        assert (v1 / r["file"]).is_file()
        i = int(r["image_id"])
        assert bool(r["roi_file"]) == (i in boxed), r
        if r["roi_file"]:
            assert (v1 / r["roi_file"]).is_file()
    # EXIF-rotated photos are exported upright, and their lesion crops cut the box the raters drew
    import numpy as np
    from PIL import Image as PILImage
    from PIL import ImageOps

    loc_of = {i: loc for (src, loc), i in by_loc.items()}
    rows_by_id = {int(r["image_id"]): r for r in man}
    for i in rotated:
        r = rows_by_id[i]
        with PILImage.open(data["clinic"] / loc_of[i]) as raw:
            shown = ImageOps.exif_transpose(raw).convert("RGB")
        assert shown.size == (H, W)
        x0, y0, x1, y1 = (float(v) for v in r["roi_box"].split())
        assert 0 <= x0 <= 0.6 * H and 0.9 * H <= x1 <= H and 0 <= y0 <= 0.1 * W and 0.3 * W <= y1 <= W, r["roi_box"]

        def mad(a, b):
            return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())

        with PILImage.open(v1 / r["file"]) as out:
            assert mad(out.convert("RGB"), shown.resize((64, 64))) < 12
            assert not out.getexif(), "exported images carry no EXIF (GPS)"
        with PILImage.open(v1 / r["roi_file"]) as out:
            crop = shown.crop((round(x0), round(y0), round(x1), round(y1))).resize((64, 64))
            assert mad(out.convert("RGB"), crop) < 12
    for r in man:
        with PILImage.open(v1 / r["file"]) as out:
            assert not out.getexif() and "icc_profile" not in out.info
    # privacy: no clinic path or case id in the dataset's text files
    for f in ("manifest.csv", "README.md", "croissant.json", "dataset.json"):
        text = (v1 / f).read_text()
        assert str(data["clinic"]) not in text and not re.search(r"P00\d\d", text), f
    card = (v1 / "README.md").read_text()
    assert f"Cohen's kappa between the first two raters: {rep['agreement']['kappa']:.3f} over 35" in card
    label_of = {int(r["image_id"]): r["diagnosis"] for r in man}
    assert label_of[dis_a] == "genital_herpes" and label_of[dis_b] == "genital_warts"
    with PILImage.open(v1 / man[0]["file"]) as im:
        assert im.size == (64, 64)
    vers = jcli("versions", *w)
    assert [(v["name"], v["version"]) for v in (vers if isinstance(vers, list) else vers["versions"])] == [
        ("mpox", "1.0.0")
    ]

    # one more label arrives, then a minor version
    rb.annotate(late, result(LS[truth[late]], (images[late].width, images[late].height)))
    assert jcli("label", "pull", *w, *url)["new"] == 1
    # a new batch from the clinic: one new photo, and a sharper copy of a photo the raters already labelled
    batch = tmp_path / "clinic-2023"
    (batch / "mpox").mkdir(parents=True)
    photo(5000, (W, H)).save(batch / "mpox" / "P0100_1.jpg", "JPEG", quality=90)
    relabel_src = mpox_clinic[0]
    from PIL import Image as PILImage2

    with PILImage2.open(data["clinic"] / loc_of[relabel_src]) as im:
        im.resize((300, 225)).save(batch / "mpox" / "P0101_1.jpg", "JPEG", quality=95)
    jcli(
        "ingest",
        str(batch),
        "--source",
        "clinic-2023",
        "--kind",
        "clinic",
        "--label-from-folders",
        "--case-id-pattern",
        r"(?P<case>P\d{4})",
        "--workers",
        "1",
        *w,
    )
    dd2 = jcli("dedupe", "--workers", "1", *w)
    with ws.session() as s:
        new_ids = {
            loc: i
            for i, loc in s.exec(
                select(Provenance.image_id, Provenance.locator).join(Source).where(Source.name == "clinic-2023")
            ).all()
        }
        clusters = cluster_map(s)
    fresh, sharper = new_ids["mpox/P0100_1.jpg"], new_ids["mpox/P0101_1.jpg"]
    assert clusters[sharper] == clusters[relabel_src], dd2
    push2 = jcli("label", "push", "--raters", f"{A},{B}", *w, *url)
    assert push2["pushed"] == 2, push2  # only the new photo; its labelled twin's cluster needs no second look
    ra, rb = Rater(fx, A, pushed["projects"][A]), Rater(fx, B, pushed["projects"][B])
    for r in (ra, rb):
        r.annotate(fresh, result(LS["mpox"], (W, H)))
    assert jcli("label", "pull", *w, *url)["new"] == 2
    ex2 = jcli(
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
    assert ex2["images"] == 35
    with open(Path(ex2["path"]) / "manifest.csv", newline="") as fh:
        man2 = list(csv.DictReader(fh))
    assert json.loads((Path(ex2["path"]) / "dataset.json").read_text())["parent"] == "1.0.0"
    d = jcli("diff", "mpox@1.0.0", "mpox@1.1.0", *w)
    assert d["added_ids"] == sorted([late, fresh]) and d["removed"] == 0 and d["relabeled"] == 0, d
    # Splits are stable across versions: no 1.0.0 image changed split or fold, so a model trained on 1.0.0
    # has seen none of 1.1.0's test images; only the two new images were dealt.
    assert d["moved"] == 0 and d["unchanged"] == 33, d
    assert ex2["moved"] == [] and ex2["kept"] == 33 and ex2["parent"] == "1.0.0", ex2
    place_v1 = {r["image_id"]: (r["split"], r["fold"]) for r in man}
    assert all(place_v1[r["image_id"]] == (r["split"], r["fold"]) for r in man2 if r["image_id"] in place_v1)
    assert len(man2) == 35
    in_v2 = {int(r["image_id"]) for r in man2}
    assert relabel_src in in_v2 and sharper not in in_v2  # one image per labelled cluster
    # re-running the same export is a no-op; reusing a released version number for new content is refused
    same = jcli(
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
    assert same["status"] == "exists" and same["checksum"] == ex2["checksum"]
    clash = cli(
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
        ok=False,
    )
    assert clash.exit_code == 1 and "1.0.0" in clash.output and "Traceback" not in clash.output
    vers = jcli("versions", "mpox", *w)
    assert [v["version"] for v in (vers if isinstance(vers, list) else vers["versions"])] == ["1.0.0", "1.1.0"]

    # 5. train -----------------------------------------------------------------------------
    from train.cli import app as train_app

    run_dir = root / "runs" / "r18"
    tr = runner.invoke(
        train_app,
        [
            "run",
            "--dataset",
            "mpox@1.0.0",
            "-w",
            str(root),
            "--arch",
            "resnet18",
            "--weights",
            "none",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--folds",
            "5",
            "--out",
            str(run_dir),
            "--json",
        ],
    )
    assert tr.exit_code == 0, f"{tr.output}\n{tr.exception!r}"
    metrics = json.loads(tr.stdout)
    assert {"test", "external"} <= set(metrics["sets"])
    for f in ("config.json", "run.json", "predictions.csv", "metrics.json", "report.md"):
        assert (run_dir / f).is_file(), f
    assert all((run_dir / f"fold{k}" / "checkpoint.pt").is_file() for k in range(5))
    pr = runner.invoke(
        train_app,
        [
            "predict",
            str(data["clinic"] / "mpox" / "P0001_1.jpg"),
            str(data["clinic"] / loc_of[rotated[0]]),
            "--run",
            str(run_dir),
            "--json",
        ],
    )
    assert pr.exit_code == 0, f"{pr.output}\n{pr.exception!r}"
    pred = json.loads(pr.stdout)
    assert len(pred) == 2 and all(0.0 <= p["p_positive"] <= 1.0 and Path(p["gradcam"]).is_file() for p in pred)
    assert {p["decision"] for p in pred} <= {"refer", "routine"} and {p["predicted_class"] for p in pred} <= {
        "mpox",
        "non_mpox",
    }
    with PILImage.open(pred[1]["gradcam"]) as cam:  # a phone photo is triaged upright, as the clinician sees it
        assert cam.size == (H, W), cam.size
    cmp_ = runner.invoke(train_app, ["compare", str(run_dir), "--out", str(root / "runs" / "compare"), "--json"])
    assert cmp_.exit_code == 0, f"{cmp_.output}\n{cmp_.exception!r}"
    assert (root / "runs" / "compare" / "compare.md").is_file()

    # 6. status ----------------------------------------------------------------------------
    st = jcli("status", *w)
    assert st["images"] == 40
    assert {s["source"]: s["images"] for s in st["by_source"]} == {
        "clinic-2022": 28,
        "public-msid": 10,
        "clinic-2023": 2,
    }
    stages = st["stages"]
    assert stages["ingested"] == 40 and stages["dedupe_clusters"] == 38
    assert stages["label_agreed"] == 33 and stages["label_adjudicated"] == 2
    assert stages["label_discarded"] == 1 and stages["label_excluded"] == 1
    assert stages["flagged_gps"] == 2
    assert stages["to_label"] == 0 and stages["in_label_rounds"] == 37  # everything labelable was pushed
    assert stages["dataset_versions"] == 2
    assert st["unfinished_runs"] == 0
    # the audit log has every command, and never the Label Studio key
    from db.models import CommandRun

    with ws.session() as s:
        runs = s.exec(select(CommandRun)).all()
    assert {"ingest", "dedupe", "label push", "label pull", "label adjudicate", "export"} <= {r.command for r in runs}
    not_ok = [(r.command, r.status) for r in runs if r.status != "ok"]
    assert len(not_ok) == 1 and not_ok[0][0] == "export" and not_ok[0][1] != "running", not_ok  # the refused 1.0.0
    assert all(fx.admin_token not in (r.arguments or "") + (r.summary or "") for r in runs)
