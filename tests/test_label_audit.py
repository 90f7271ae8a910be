"""Label audit without a server: the ranking, the audit rule, the task order, the run reader, the migration."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
import sqlalchemy as sa

from curate.dataset import DatasetVersion
from curate.errors import LabelError
from curate.label.audit_apply import AuditDecision, apply
from curate.label.audit_rank import Candidate, confident_issues, rank
from curate.label.audit_run import OOF_FILE, read_run
from curate.label.consensus import Outcome, Rating
from curate.label.diagnoses import KEEP
from curate.label.order import Order, diverse_order, margin_uncertainty, order_ids
from db.engine import make_engine
from db.migrate import upgrade


def test_confident_learning_flags_what_the_model_confidently_assigns_elsewhere():
    given = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.65, 0.35]])
    # thresholds: class 0 mean p0 over label-0 rows = .6; class 1 mean p1 over label-1 rows = .617
    issue, assigned = confident_issues(given, probs)
    assert issue.tolist() == [False, False, True, False, False, True] and assigned[[2, 5]].tolist() == [1, 0]


def cands():
    # 60 images, classes a/b; two raters agree except where noted; the model is sure of the truth
    rng = np.random.default_rng(0)
    out, wrong = [], set()
    for i in range(60):
        truth = "a" if i % 2 else "b"
        given = truth
        votes = {"r1": truth, "r2": truth}
        disputed = reviewed = False
        if i in (3, 8):  # both raters wrong the same way: the consensus is wrong, only the model says so
            given = "b" if truth == "a" else "a"
            votes = {"r1": given, "r2": given}
            wrong.add(i)
        elif i in (5, 12):  # a dispute the reviewer settled wrongly
            other = "b" if truth == "a" else "a"
            votes, given, disputed, reviewed = {"r1": truth, "r2": other, "rev": other}, other, True, True
            wrong.add(i)
        elif i in (20, 21):  # a dispute settled rightly
            other = "b" if truth == "a" else "a"
            votes, disputed, reviewed = {"r1": truth, "r2": other, "rev": truth}, True, True
        p = float(np.clip(rng.normal(0.9, 0.05), 0.6, 0.99))
        probs = {truth: p, ("b" if truth == "a" else "a"): 1 - p}
        out.append(Candidate(i, given, probs, votes, disputed, reviewed))
    return out, wrong


def test_rank_puts_the_planted_errors_first():
    c, wrong = cands()
    ranked = rank(c, ["a", "b"])
    assert [r.rank for r in ranked] == list(range(1, 61))
    assert {r.image_id for r in ranked[:4]} == wrong
    top = {r.image_id: r for r in ranked[:4]}
    assert top[5].raters_disagreed and top[5].reviewed and not top[3].raters_disagreed
    assert all(r.suggested != next(x.given for x in c if x.image_id == r.image_id) for r in ranked[:4])
    assert ranked[-1].score < 0.05 and ranked[0].score > 0.5
    assert rank([], ["a", "b"]) == []


def D(diagnosis):
    return AuditDecision(1, "c@x.test", diagnosis, 9, 77, datetime(2026, 1, 1, tzinfo=UTC))


def test_audit_rule():
    ratings = [Rating("a@x.test", "mpox"), Rating("b@x.test", "genital_herpes")]
    o = Outcome("adjudicated", "mpox", [(1.0, 1.0, 5.0, 5.0)], method="reviewer_sided", n_raters=3, agreement=2 / 3)
    assert apply(o, ratings, None) == (o, None)
    assert apply(o, ratings, D(None)) == (o, None)  # submitted without a choice: nothing
    assert apply(o, ratings, D(KEEP))[0] == o and apply(o, ratings, D("mpox"))[0] == o
    new, why = apply(o, ratings, D("genital_herpes"))  # sides with the other rater: relabelled, boxes kept
    assert (new.status, new.diagnosis, new.method, new.boxes, new.n_raters) == (
        "adjudicated",
        "genital_herpes",
        "audit_relabelled",
        o.boxes,
        4,
    ) and "original rater" in why
    new, why = apply(o, ratings, D("dermatosis"))  # a third opinion: discarded
    assert (new.status, new.diagnosis, new.method) == ("discarded", None, "audit_third_opinion") and "neither" in why
    pending = Outcome("pending", method="awaiting_review")
    assert apply(pending, ratings, D("genital_herpes")) == (pending, None)  # only final consensus is audited


def test_uncertainty_order_spreads_look_alikes():
    u = margin_uncertainty(np.array([[0.5, 0.5], [0.52, 0.48], [0.51, 0.49], [0.9, 0.1], [0.7, 0.3]]))
    assert u.argmax() == 0 and u.argmin() == 3
    # three near-identical uncertain images and one different, slightly less uncertain one
    feats = np.array([[1, 0, 0], [1, 0.01, 0], [1, 0, 0.01], [0, 1, 0], [0, 0, 1]], dtype=float)
    unc = np.array([0.99, 0.98, 0.97, 0.9, 0.1])
    assert diverse_order(unc, None)[:3] == [0, 1, 2]
    assert diverse_order(unc, feats)[:2] == [0, 3]
    assert sorted(diverse_order(unc, feats)) == [0, 1, 2, 3, 4]


def test_order_ids():
    ids = list(range(10, 20))
    assert order_ids(ids, Order.catalogue) == ids
    r1, r2 = order_ids(ids, Order.random, seed=3), order_ids(ids, Order.random, seed=3)
    assert r1 == r2 != ids and sorted(r1) == ids and order_ids(ids, Order.random, seed=4) != r1
    probs = {i: {"mpox": abs(i - 15) / 10 + 0.5, "non_mpox": 0.5 - abs(i - 15) / 10} for i in ids}
    assert order_ids(ids, Order.uncertainty, probs=probs)[0] == 15
    with pytest.raises(LabelError, match="1 image\\(s\\) to push have no prediction \\(first: image 19\\)"):
        order_ids(ids, Order.uncertainty, probs={i: probs[i] for i in ids[:-1]})
    assert order_ids([], Order.uncertainty, probs={}) == []  # nothing left to push: before, numpy's AxisError


def test_predictions_that_are_not_train_predicts_list_are_named(tmp_path):
    from curate.label.order import read_predictions

    for text in ("{}", '{"image": "x"}', "3"):
        (tmp_path / "p.json").write_text(text)
        with pytest.raises(LabelError, match="p.json is not `train predict --json` output"):
            read_predictions(tmp_path / "p.json")


def _run_json(folder) -> None:
    """run.json as `train run` writes it, for a binary run on mpox@1.0.0."""
    dataset = {"name": "mpox", "version": "1.0.0", "checksum": "ab", "task": "binary", "classes": ["mpox", "non_mpox"]}
    (folder / "run.json").write_text(json.dumps({"dataset": dataset}))


def test_run_reader_errors(tmp_path):
    with pytest.raises(LabelError, match="not a train run folder"):
        read_run(tmp_path)
    _run_json(tmp_path)
    with pytest.raises(LabelError, match="has no out-of-fold predictions \\(oof_predictions.csv\\)"):
        read_run(tmp_path)
    (tmp_path / OOF_FILE).write_text("set,image_id,p_mpox\ntrain,1,0.3\n")
    with pytest.raises(LabelError, match="column 'p_non_mpox' is missing"):
        read_run(tmp_path)
    (tmp_path / OOF_FILE).write_text("set,image_id,p_mpox,p_non_mpox\ntrain,1,0.3,0.7\ntest,x,0.1,0.9\n")
    with pytest.raises(LabelError, match="line 3: image_id 'x' is not a catalogue image id"):
        read_run(tmp_path)
    (tmp_path / OOF_FILE).write_text("set,image_id,p_mpox,p_non_mpox\ntrain,1,0.3,0.7\ntest,2,,0.9\n")
    with pytest.raises(LabelError, match="line 3: a probability is not a number"):
        read_run(tmp_path)
    # before: NaN was taken (it sorts anywhere: the wrong images went to the auditor), 7.5 as a probability, and
    # a header alone as a run with nothing to audit
    for bad in ("nan,nan", "7.5,0.9", "-0.1,0.9"):
        (tmp_path / OOF_FILE).write_text(f"set,image_id,p_mpox,p_non_mpox\ntrain,1,0.3,0.7\ntest,2,{bad}\n")
        with pytest.raises(LabelError, match="line 3: a probability is not between 0 and 1"):
            read_run(tmp_path)
    (tmp_path / OOF_FILE).write_text("set,image_id,p_mpox,p_non_mpox\n")
    with pytest.raises(LabelError, match="no predictions"):
        read_run(tmp_path)
    (tmp_path / OOF_FILE).write_text("set,image_id,p_mpox,p_non_mpox\ntrain,1,0.3,0.7\ntest,2,0.1,0.9\n")
    run = read_run(tmp_path)
    assert (run.dataset, run.probs[1], run.sets[2]) == ("mpox@1.0.0", {"mpox": 0.3, "non_mpox": 0.7}, "test")


def test_a_test_image_is_audited_on_its_whole_picture_not_its_lesion_crop(tmp_path):
    """`train run` writes a test image's line, then its lesion crop's (test_roi). The raters labelled the whole
    picture; before, the crop's probability replaced it, so the audit ranked test images on what the model said
    of their crops."""
    _run_json(tmp_path)
    header = "set,image_id,p_mpox,p_non_mpox\n"
    whole, crop = "test,2,0.9,0.1\n", "test_roi,2,0.2,0.8\n"
    for lines in (whole + crop, crop + whole):  # whichever comes first
        (tmp_path / OOF_FILE).write_text(header + "train,1,0.3,0.7\n" + lines)
        run = read_run(tmp_path)
        assert (run.probs[2], run.sets[2]) == ({"mpox": 0.9, "non_mpox": 0.1}, "test")
    (tmp_path / OOF_FILE).write_text(header + "train,1,0.3,0.7\ntest_roi,3,0.2,0.8\n")  # a crop alone: taken
    assert read_run(tmp_path).sets[3] == "test_roi"
    (tmp_path / OOF_FILE).write_text(header + "train,1,0.3,0.7\ntest,1,0.2,0.8\n")
    with pytest.raises(LabelError, match="line 3: image 1 is in test and in train"):
        read_run(tmp_path)


def test_migration_keeps_every_row(db_url):
    engine = make_engine(db_url)
    upgrade(engine, "0008_dedupe_verify")
    with engine.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO label_rounds (id, kind, name, raters, server_url, created_at) VALUES "
                "(1, 'rating', 'Round 1', '[\"a@x.test\", \"b@x.test\"]', 'http://127.0.0.1:8080', CURRENT_TIMESTAMP)"
            )
        )
    upgrade(engine)
    with engine.begin() as c:
        assert c.execute(sa.text("SELECT id, kind FROM label_rounds")).all() == [(1, "rating")]
        assert c.execute(sa.text("SELECT count(*) FROM consensus_history")).scalar() == 0
    engine.dispose()


@pytest.mark.torch
@pytest.mark.slow
def test_reads_what_train_writes(triage_run, tmp_path):
    """The field names written down in curate.label.audit_run match a real `train run` folder. (The fixture's
    dataset is hand-made with ids like img000001; a curate export's are catalogue numbers, so they are renumbered.)"""
    import csv

    with pytest.raises(LabelError, match="image_id 'img000001' is not a catalogue image id"):
        read_run(triage_run)
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "run.json").write_bytes((triage_run / "run.json").read_bytes())
    with open(triage_run / OOF_FILE, newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(copy / OOF_FILE, "w", newline="") as fh:
        out = csv.DictWriter(fh, list(rows[0]))
        out.writeheader()
        out.writerows({**r, "image_id": int(r["image_id"].removeprefix("img"))} for r in rows)
    run = read_run(copy)
    meta = json.loads((copy / "run.json").read_text())["dataset"]
    assert run.dataset == meta["ref"] and run.classes == meta["classes"] and run.checksum == meta["checksum"]
    assert run.probs and {run.sets[i] for i in run.probs} >= {"train"}
    assert all(abs(sum(p.values()) - 1) < 1e-3 for p in run.probs.values())


@pytest.mark.torch
@pytest.mark.slow
def test_reads_what_train_predict_prints(triage_run, tmp_path):
    """`--order uncertainty --predictions FILE` reads `train predict --json` output, matched by image content."""
    import hashlib

    from train_fixtures import new_jpeg

    from curate.label.order import read_predictions
    from train.predict import predict

    files = []
    for n, kind in enumerate(("mpox", "non_mpox")):
        f = tmp_path / f"photo{n}.jpg"
        f.write_bytes(new_jpeg(kind, seed=n))
        files.append(f)
    unreadable = tmp_path / "notes.jpg"
    unreadable.write_text("not a photo")
    out = tmp_path / "predictions.json"
    out.write_text(json.dumps(predict(triage_run, [*files, unreadable], out_dir=tmp_path / "cam")))
    got = read_predictions(out)  # the unreadable input's entry holds an error and no prediction: left out
    assert set(got) == {hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    assert all(set(p) == {"mpox", "non_mpox"} and abs(sum(p.values()) - 1) < 1e-3 for p in got.values())
    with pytest.raises(LabelError, match="is not `train predict --json` output"):
        out.write_text('{"image": 1}')
        read_predictions(out)


def test_a_damaged_or_foreign_prediction_file_is_one_line_naming_it(tmp_path):
    """Before: a stray byte gave "unexpected UnicodeDecodeError" naming no file; a row twice took the last; an
    image the version does not hold was listed as "not ranked (consensus is now missing)"."""
    from test_export_fixtures import build_catalogue
    from test_label_audit_studio import write_run

    from curate.export import ExportOptions, ImageSpec, export_version
    from curate.label.audit import build

    cat = build_catalogue(tmp_path)
    version = export_version(
        cat.ws, ExportOptions(name="mpox", version="1.0.0", spec=ImageSpec(size=(32, 32)), folds=2, workers=1)
    )
    rows = {int(r["image_id"]): r["label"] for r in DatasetVersion.open(version.path).rows}
    run = write_run(tmp_path / "run", version.path, rows)
    good = (run / OOF_FILE).read_bytes()
    assert build(cat.ws, run).ranked  # the file as train writes it
    line = good.splitlines()[1].decode()
    for bad, said in [
        (good + b"\xff\n", "is not UTF-8 text"),
        (good + (line + "\n").encode(), r"again in \w+ \(first on line 2\)"),
        (good + line.replace(line.split(",")[1], "99999", 1).encode() + b"\n", r"predicts image\(s\) 99999 that"),
    ]:
        (run / OOF_FILE).write_bytes(bad)
        with pytest.raises(LabelError, match=said) as err:
            build(cat.ws, run)
        assert OOF_FILE in str(err.value)


def test_the_audit_page_never_shows_an_image_flagged_identifiable_since(tmp_path):
    """A rater ticked "identifiable features" on an exported image: the audit listed it among the images relabelled
    since the run, with its thumbnail (a face, a tattoo). `label report` never shows such an image; nor does this."""
    from sqlmodel import select
    from test_export_fixtures import build_catalogue
    from test_label_audit_studio import write_run

    from curate.export import ExportOptions, ImageSpec, export_version
    from curate.label.audit import build
    from curate.label.audit_html import write_html
    from db.models import DedupeMember
    from db.models.label import Consensus

    cat = build_catalogue(tmp_path)
    version = export_version(
        cat.ws, ExportOptions(name="mpox", version="1.0.0", spec=ImageSpec(size=(32, 32)), folds=2, workers=1)
    )
    rows = {int(r["image_id"]): r["label"] for r in DatasetVersion.open(version.path).rows}
    run = write_run(tmp_path / "run", version.path, rows)
    face, other = sorted(rows)[:2]
    with cat.ws.session() as s:
        row = s.exec(select(Consensus).where(Consensus.image_id == face)).one()
        row.status, row.diagnosis, row.exclusion = "excluded", None, "identifiable_features"
        s.add(row)
    report = build(cat.ws, run)
    assert face in {r.image_id for r in report.unranked}
    page = write_html(report, tmp_path / "audit.html", cat.ws).read_text()
    assert f'alt="image {face}"' not in page and f'alt="image {other}"' in page
    # the flag is on the photo: a copy of `other` (its dedupe cluster) flagged, `other` is not shown either
    copy = min(set(_image_ids(cat.ws)) - set(rows))  # an image the version does not hold (a copy never exported)
    with cat.ws.session() as s:
        s.add_all([DedupeMember(image_id=i, cluster_key=f"img{min(other, copy)}") for i in (other, copy)])
        row = s.exec(select(Consensus).where(Consensus.image_id == copy)).first() or Consensus(image_id=copy)
        row.status, row.diagnosis, row.exclusion = "excluded", None, "identifiable_features"
        s.add(row)
    page = write_html(build(cat.ws, run), tmp_path / "audit.html", cat.ws).read_text()
    assert f'alt="image {other}"' not in page


def _image_ids(ws) -> list[int]:
    from sqlmodel import select

    from db.models import Image

    with ws.session() as s:
        return list(s.exec(select(Image.id)))
