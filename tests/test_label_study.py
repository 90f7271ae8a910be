"""A study that declares chickenpox and measles labels and exports them, with no code change.

Real catalogue (SQLite and PostgreSQL), real image bytes ingested by the intake stage, annotations
recorded as `label pull` records them (Label Studio results parsed with the study's list), consensus
recomputed by the label stage and exported by the export stage.
"""

import hashlib
import json

import images as I
import pytest
from sqlmodel import select
from test_label_diagnoses import STUDY
from typer.testing import CliRunner

from curate.cli import app
from curate.dataset import DatasetVersion
from curate.errors import ExportError, LabelError
from curate.export import ExportOptions, ImageSpec, export_version
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.label.consensus import LowQuality
from curate.label.pull import pull
from curate.label.recompute import write_consensus
from curate.label.results import parse_result
from curate.label.rounds import push
from curate.label.rules import recorded_rules, settle_rules
from curate.label.servers import Servers
from curate.workspace import Workspace
from db.models import Image, utcnow
from db.models.label import Consensus, LabelAnnotation, LabelProject, LabelRound, LabelTask

A, B = "a@clinic.test", "b@clinic.test"
LQ = "Image quality too low"
SPEC = ImageSpec(size=(32, 32))
# file stem -> (rater A's choices, rater B's choices): a diagnosis choice and optional flags
PLAN = {
    **{f"mpox{i}": (["Mpox"], ["Mpox"]) for i in range(4)},
    **{f"chickenpox{i}": (["Chickenpox"], ["Chickenpox"]) for i in range(4)},
    **{f"measles{i}": (["Measles"], ["Measles"]) for i in range(4)},
    **{f"herpes{i}": (["Genital herpes"], ["Genital herpes"]) for i in range(4)},
    **{f"other{i}": (["Other diagnosis"], ["Other diagnosis"]) for i in range(4)},
    **{f"na{i}": (["Not assessable"], ["Not assessable"]) for i in range(2)},
    "lq_one": (["Mpox", LQ], ["Mpox"]),  # one rater flags low quality
    "lq_both": (["Measles", LQ], ["Measles", LQ]),
    "ident": (["Mpox", "Identifiable features (face, tattoo, birthmark)"], ["Mpox"]),
    "pending": (["Chickenpox"], None),  # the second rater has not labelled it yet
    "unlabelled": (None, None),  # ingested, never sent to labelling
}


def result(choices: list[str]) -> list[dict]:
    dx = [c for c in choices if c != LQ and not c.startswith("Identifiable")]
    flags = [c for c in choices if c not in dx]
    out = [{"from_name": "diagnosis", "to_name": "image", "type": "choices", "value": {"choices": dx}}]
    if flags:
        out.append({"from_name": "flags", "to_name": "image", "type": "choices", "value": {"choices": flags}})
    return out


def make_study(tmp_path, db_url) -> tuple[Workspace, dict[str, int]]:
    ws = Workspace.init(tmp_path / "ws", db_url=db_url)
    marker = ws.root / "curate.toml"
    marker.write_text(marker.read_text() + STUDY)  # beside the db_url line, as a steward would add it
    ws = Workspace.open(ws.root, db_url=db_url)
    folder = tmp_path / "incoming"
    folder.mkdir()
    for n, stem in enumerate(PLAN):
        (folder / f"{stem}.jpg").write_bytes(I.jpeg(500 + n))
    ingest_folder(ws, folder, IngestOptions(source="public-set", kind="public", licence="CC-BY-4.0", workers=1))
    with ws.session() as s:
        ids = {im.sha256: im.id for im in s.exec(select(Image)).all()}
    by_stem = {stem: ids[hashlib.sha256((folder / f"{stem}.jpg").read_bytes()).hexdigest()] for stem in PLAN}
    record_ratings(ws, by_stem)
    return ws, by_stem


def record_ratings(ws: Workspace, by_stem: dict[str, int]) -> None:
    """What `label pull` writes: one rating round, a project per rater, a task per image, parsed annotations."""
    with ws.session() as s:
        rnd = LabelRound(kind="rating", name="Round 1", raters=json.dumps([A, B]), server_url="http://127.0.0.1:1")
        s.add(rnd)
        s.flush()
        projects = {}
        for k, rater in enumerate((A, B)):
            projects[rater] = LabelProject(round_id=rnd.id, rater=rater, ls_project_id=k + 1)
            s.add(projects[rater])
        s.flush()
        n = 0
        for stem, ratings in PLAN.items():
            if ratings == (None, None):
                continue
            for rater, choices in zip((A, B), ratings, strict=True):
                n += 1
                task = LabelTask(project_id=projects[rater].id, image_id=by_stem[stem], ls_task_id=n)
                s.add(task)
                s.flush()
                if choices is None:
                    continue
                parsed = parse_result(result(choices), 160, 120, ws.diagnoses)
                s.add(
                    LabelAnnotation(
                        task_id=task.id,
                        ls_annotation_id=n,
                        rater=rater,
                        diagnosis=parsed.diagnosis,
                        flags=json.dumps(parsed.flags),
                        content_sha256="0" * 64,
                        raw="{}",
                        ls_updated_at=utcnow(),
                    )
                )
        s.flush()
        write_consensus(s)


def consensus(ws) -> dict[int, Consensus]:
    with ws.session() as s:
        return {c.image_id: c for c in s.exec(select(Consensus)).all()}


def test_chickenpox_and_measles_are_labelled_and_exported(tmp_path, db_url):
    ws, ids = make_study(tmp_path, db_url)
    cons = consensus(ws)
    assert {cons[ids[f"chickenpox{i}"]].diagnosis for i in range(4)} == {"chickenpox"}
    assert (cons[ids["other0"]].status, cons[ids["other0"]].diagnosis) == ("agreed", "other_diagnosis")
    assert (cons[ids["na0"]].status, cons[ids["na0"]].diagnosis) == ("agreed", "not_assessable")
    assert (cons[ids["lq_both"]].status, cons[ids["lq_both"]].exclusion) == ("excluded", "low_quality")
    assert cons[ids["lq_one"]].status == "agreed"  # the default rule: both raters must flag it

    dx = export_version(
        ws,
        ExportOptions(
            name="study-dx", version="1.0.0", task="diagnosis", spec=SPEC, folds=2, test_fraction=0.25, seed=1
        ),
    )
    ds = DatasetVersion.open(dx.path)
    assert ds.classes == ["chickenpox", "genital_herpes", "measles", "mpox", "other_diagnosis"]
    by_id = {int(r["image_id"]): r for r in ds.rows}
    assert by_id[ids["measles0"]]["label"] == "measles" and by_id[ids["other1"]]["label"] == "other_diagnosis"
    assert ids["na0"] not in by_id and ids["lq_both"] not in by_id
    # every catalogue image is either exported or counted under exactly one reason
    assert dx.excluded == {
        "not_assessable": 2,
        "identifiable_features": 1,
        "low_quality": 1,
        "pending": 1,
        "not_labelled": 1,
    }
    assert dx.images + sum(dx.excluded.values()) == len(PLAN)

    binary = export_version(
        ws, ExportOptions(name="study", version="1.0.0", spec=SPEC, folds=2, test_fraction=0.25, seed=1)
    )
    rows = DatasetVersion.open(binary.path).rows
    label = {int(r["image_id"]): r["label"] for r in rows}
    assert [label[ids[s]] for s in ("mpox0", "lq_one", "chickenpox0", "measles0", "herpes0", "other0")] == [
        "mpox",
        "mpox",
        "non_mpox",
        "non_mpox",
        "non_mpox",
        "non_mpox",
    ]
    assert sum(v == "mpox" for v in label.values()) == 5 and len(label) == 21
    card = (binary.path / "README.md").read_text()
    # clinicians read names, not slugs; every labelled exclusion is in the card with its reason
    assert (
        "| Chickenpox | `chickenpox` | non_mpox | 4 |" in card
        and "| Other diagnosis | `other_diagnosis` | non_mpox | 4 |" in card
    )
    assert "| Not assessable | `not_assessable` | not exported | 0 |" in card and "| Genital herpes |" in card
    assert "| not_assessable | 2 | clinicians chose 'not assessable' |" in card and "| low_quality | 1 |" in card
    assert "genital_herpes |" not in card.replace("`genital_herpes` |", "")
    meta = json.loads((binary.path / "dataset.json").read_text())
    assert {"slug": "measles", "name": "Measles", "binary": "non_mpox"} in meta["diagnoses"]


@pytest.mark.parametrize(
    "rule, lq_one, lq_both",
    [("any", "excluded", "excluded"), ("both", "agreed", "excluded"), ("never", "agreed", "agreed")],
)
def test_low_quality_rule_is_recorded_and_reused(tmp_path, rule, lq_one, lq_both):
    ws, ids = make_study(tmp_path, f"sqlite:///{tmp_path / 'cat.db'}")
    with ws.session() as s:
        rules, changed = settle_rules(s, low_quality=LowQuality(rule))
        assert changed == (rule != "both")
    with ws.session() as s:  # a later recomputation (as push and adjudicate do) applies the recorded rule
        assert recorded_rules(s).low_quality == rule
        write_consensus(s)
    cons = consensus(ws)
    assert (cons[ids["lq_one"]].status, cons[ids["lq_both"]].status) == (lq_one, lq_both)
    r = export_version(ws, ExportOptions(name="study", version="1.0.0", spec=SPEC, folds=2, test_fraction=0.25))
    assert r.excluded.get("low_quality", 0) == [lq_one, lq_both].count("excluded")
    assert "Consensus rules: " in (r.path / "README.md").read_text()


def test_a_diagnosis_dropped_from_the_settings_stops_the_export(tmp_path):
    ws, ids = make_study(tmp_path, f"sqlite:///{tmp_path / 'cat.db'}")
    marker = ws.root / "curate.toml"
    marker.write_text(marker.read_text().replace('{ slug = "measles", name = "Measles" },', ""))
    with pytest.raises(ExportError, match=f"image {ids['measles0']}: diagnosis 'measles' is not declared"):
        export_version(Workspace.open(ws.root), ExportOptions(name="study", version="1.0.0", spec=SPEC, folds=2))
    assert not (ws.exports / "study").exists()


def test_a_recorded_slug_dropped_or_renamed_stops_the_pull_before_any_server(tmp_path):
    """Renaming a slug (not its name) would leave recorded annotations under the old one while edited ones
    come back under the new: two raters who chose the same diagnosis would disagree. Pull says so first."""
    ws, _ = make_study(tmp_path, f"sqlite:///{tmp_path / 'cat.db'}")
    marker = ws.root / "curate.toml"
    marker.write_text(marker.read_text().replace('slug = "measles"', 'slug = "rubeola"'))
    unreachable = Servers("key", {A: "http://127.0.0.1:1", B: "http://127.0.0.1:1"}, explicit=True)
    with pytest.raises(LabelError, match=r"diagnosis 'measles' \(10 annotation\(s\)\) is recorded but no longer"):
        pull(Workspace.open(ws.root), unreachable)


def test_a_recorded_slug_dropped_stops_the_push_before_any_server(tmp_path):
    """Before, `label push` went on and took the choice off the raters' running projects (23 "Measles" answers
    there, none of them offered any more), where pull and export refused the same settings."""
    ws, _ = make_study(tmp_path, f"sqlite:///{tmp_path / 'cat.db'}")
    marker = ws.root / "curate.toml"
    marker.write_text(marker.read_text().replace('{ slug = "measles", name = "Measles" },', ""))
    unreachable = Servers("key", {A: "http://127.0.0.1:1", B: "http://127.0.0.1:1"}, explicit=True)
    with pytest.raises(LabelError, match=r"diagnosis 'measles' \(10 annotation\(s\)\) is recorded but no longer"):
        push(Workspace.open(ws.root), unreachable, [A, B])


def test_export_cli_prints_every_exclusion_reason(tmp_path):
    ws, _ = make_study(tmp_path, f"sqlite:///{tmp_path / 'cat.db'}")
    runner = CliRunner()
    out = runner.invoke(
        app,
        [
            "export",
            "--name",
            "study",
            "--version",
            "1.0.0",
            "--size",
            "32",
            "--folds",
            "2",
            "--test-fraction",
            "0.25",
            "-w",
            str(ws.root),
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["excluded"] == {
        "not_assessable": 2,
        "identifiable_features": 1,
        "low_quality": 1,
        "pending": 1,
        "not_labelled": 1,
    }
    out = runner.invoke(
        app,
        [
            "export",
            "--name",
            "study",
            "--version",
            "1.0.0",
            "--size",
            "32",
            "--folds",
            "2",
            "--test-fraction",
            "0.25",
            "-w",
            str(ws.root),
        ],
    )
    text = " ".join(out.stdout.split())
    assert out.exit_code == 0 and "not exported: 6 catalogue image(s)" in text
    for line in (
        "not_assessable │ 2 │ clinicians chose 'not assessable'",
        "pending │ 1",
        "not_labelled │ 1",
        "identifiable_features │ 1",
        "low_quality │ 1",
    ):
        assert line in text


def test_low_quality_option_lists_its_choices(sqlite_ws, monkeypatch):
    runner = CliRunner()
    help_text = " ".join(runner.invoke(app, ["label", "pull", "--help"]).stdout.split())
    assert "--low-quality" in help_text and "any|both|never" in help_text.replace(" ", "")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "x")
    out = runner.invoke(app, ["label", "pull", "--low-quality", "some", "-w", str(sqlite_ws.root)])
    words = "".join(c for c in out.output if c.isalnum() or c in "'")
    assert out.exit_code == 2 and "'some'isnotoneof'any''both''never'" in words
