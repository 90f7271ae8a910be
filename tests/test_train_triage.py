"""Out-of-fold table, calibration, operating point, group bootstrap, pointing game, export-model."""

import csv
import io
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve
from train_fixtures import write_export, write_sums

from curate.dataset import DatasetVersion
from train.bootstrap import group_bootstrap
from train.calibration import Platt, ece
from train.operating import rates, sensitivity_at_specificity, threshold_for_sensitivity
from train.triage import _table2, auc


# ------------------------------------------------------------------ pure functions
def test_platt_fixes_an_overconfident_model_and_keeps_the_ranking():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.05, 0.95, 4000)
    y = (rng.random(4000) < truth).astype(int)
    z = np.log(truth / (1 - truth))
    p = 1 / (1 + np.exp(-(3 * z + 1.0)))  # overconfident and shifted: what a balanced-training head gives
    cal = Platt.fit(y[:2000], p[:2000])
    test_raw, test_cal = p[2000:], cal(p[2000:])
    assert ece(y[2000:], test_raw) > 0.08
    assert ece(y[2000:], test_cal) < 0.03
    assert roc_auc_score(y[2000:], test_cal) == pytest.approx(roc_auc_score(y[2000:], test_raw))
    assert cal.a == pytest.approx(1 / 3, abs=0.05)


def test_a_model_ranking_worse_than_chance_is_left_uncalibrated_and_says_so():
    """Before: Platt fitted a negative slope on out-of-fold scores that rank mpox below the rest, and every decision
    turned around without a word (P 0.502 "routine", P 0.466 "refer")."""
    from train.calibration import INVERTED, INVERTED_METHOD
    from train.model_card import card_markdown

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    p = np.clip(0.5 - 0.3 * (y - 0.5) + rng.normal(0, 0.1, 400), 0.01, 0.99)  # positives score lower
    cal = Platt.fit(y, p)
    assert cal.method == INVERTED_METHOD and (cal.a, cal.b) == (1.0, 0.0)
    probe = np.array([0.466, 0.502])
    assert np.argsort(cal(probe)).tolist() == [0, 1]  # the order of the scores is kept, never turned around
    meta = {
        "dataset": {"ref": "mpox@1.0.0", "checksum": "0" * 64},
        "arch_label": "ResNet-18",
        "model": "fold-model mean",
        "arch": "resnet18",
        "weights_id": "none",
        "input": {"size": 32, "mean": [0, 0, 0], "std": [1, 1, 1]},
        "classes": ["mpox", "non_mpox"],
        "positive_class": "mpox",
        "calibration": cal.as_dict(),
        "operating_threshold": 0.4,
        "target_sensitivity": 0.95,
    }
    card = card_markdown(meta)
    assert INVERTED in card and "Operating point" in card  # predict and serve still decide there


def test_ece_of_a_perfectly_calibrated_histogram_is_zero():
    y = np.array([0] * 8 + [1] * 2 + [0] * 2 + [1] * 8)
    p = np.array([0.2] * 10 + [0.8] * 10)
    assert ece(y, p) == pytest.approx(0.0) and ece(y, 1 - p) == pytest.approx(0.6)


def test_operating_point_reaches_the_target_sensitivity():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + rng.normal(0.35, 0.2, 300), 0, 1)
    t = threshold_for_sensitivity(y, p, 0.95)
    r = rates(y, p, t)
    assert r["sensitivity"] >= 0.95
    best_spec = max(rates(y, p, u)["specificity"] for u in np.unique(p) if rates(y, p, u)["sensitivity"] >= 0.95)
    assert r["specificity"] == pytest.approx(best_spec)
    sep = np.r_[np.linspace(0.01, 0.3, 50), np.linspace(0.7, 0.99, 50)]  # separable: the gap, not the 5 % quantile
    t = threshold_for_sensitivity(np.r_[np.zeros(50), np.ones(50)], sep, 0.95)
    assert 0.3 < t < 0.7
    assert r["tp"] + r["fn"] == y.sum() and r["ppv"] == pytest.approx(r["tp"] / (r["tp"] + r["fp"]))


def test_fast_auc_and_sensitivity_at_specificity_match_sklearn():
    rng = np.random.default_rng(2)
    for _ in range(30):
        n = int(rng.integers(6, 120))
        y = rng.integers(0, 2, n)
        p = np.round(rng.random(n), 2)  # ties
        if 0 < y.sum() < n:
            assert auc(y, p) == pytest.approx(roc_auc_score(y, p))
            fpr, tpr, _ = roc_curve(y, p)
            assert sensitivity_at_specificity(y, p, 0.95) == pytest.approx(tpr[fpr <= 0.05 + 1e-12].max())


def test_bootstrap_resamples_groups_not_images():
    """Ten near-duplicates right and ten wrong: two independent pieces of evidence, not twenty."""
    y = np.ones(20, int)
    p = np.r_[np.full(10, 0.9), np.full(10, 0.1)]
    metric = lambda yy, pp: {"recall": _table2(yy, pp, 0.5)["recall"]}  # noqa: E731
    by_group = group_bootstrap(y, p, ["a"] * 10 + ["b"] * 10, metric, n_boot=400, seed=0)["recall"]
    by_image = group_bootstrap(y, p, [str(i) for i in range(20)], metric, n_boot=400, seed=0)["recall"]
    assert (by_group["lo"], by_group["hi"]) == (0.0, 1.0)
    assert 0.2 < by_image["lo"] < 0.5 < by_image["hi"] < 0.8
    again = group_bootstrap(y, p, ["a"] * 10 + ["b"] * 10, metric, n_boot=400, seed=0)["recall"]
    assert again == by_group  # seeded


def test_roi_boxes_land_on_the_exported_image_for_every_resize_policy(tmp_path):
    path = write_export(tmp_path, size=48)
    meta = json.loads((path / "dataset.json").read_text())
    rows = _csv(path / "manifest.csv")
    rid = rows[0]["image_id"]
    rows[0]["roi_box"] = "100 50 300 150"
    with open(path / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    expected = {
        "stretch": (0.25, 0.25, 0.75, 0.75),  # 400×200 stretched to 48×48
        "pad": (0.25, 0.375, 0.75, 0.625),  # 48×24 inside 48×48, 12 px bars
        "center-crop": (0.0, 0.25, 1.0, 0.75),
    }  # the middle 200×200 of 400×200 is kept
    for policy, box in expected.items():
        (path / "dataset.json").write_text(
            json.dumps({**meta, "resize_policy": policy, "original_sizes": {rid: [400, 200]}})
        )
        write_sums(path)
        got = DatasetVersion.open(path).roi_boxes()
        assert list(got) == [rid] and got[rid] == pytest.approx(box), policy
    (path / "dataset.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "original_sizes"}))
    write_sums(path)
    assert DatasetVersion.open(path).roi_boxes() == {}  # an older export: no boxes, not wrong boxes


def test_pointing_score():
    from train.pointing import score

    cam = np.zeros((10, 10))
    cam[2, 7] = 1.0
    cam[8, 1] = 0.5
    hit, mass, peak = score(cam, (0.6, 0.1, 0.9, 0.4))
    assert hit and mass == pytest.approx(1 / 1.5) and peak == pytest.approx((0.75, 0.25))
    hit, mass, _ = score(cam, (0.0, 0.7, 0.3, 1.0))
    assert not hit and mass == pytest.approx(0.5 / 1.5)


# ------------------------------------------------------------------ a finished run (torch)
def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.torch
@pytest.mark.slow
def test_oof_table_has_every_image_once_and_unambiguous_columns(triage_run):
    run = triage_run
    ds = DatasetVersion.open(json.loads((run / "run.json").read_text())["dataset"]["path"])
    oof, preds = _csv(run / "oof_predictions.csv"), _csv(run / "predictions.csv")
    train = [r for r in oof if r["set"] == "train"]
    assert sorted(r["image_id"] for r in train) == sorted(s.image_id for s in ds.samples("train"))
    fold_of = {s.image_id: s.fold for s in ds.samples("train")}
    for r in train:  # the fold model that held the image out, and only that one
        assert int(r["fold"]) == fold_of[r["image_id"]] and r["n_models"] == "1"
        val = [p for p in preds if p["set"] == "val" and p["image_id"] == r["image_id"]]
        assert len(val) == 1 and val[0]["fold"] == r["fold"] and val[0]["p_mpox"] == r["p_mpox"]
    for r in (r for r in oof if r["set"] in ("test", "external")):
        ps = [float(p["p_mpox"]) for p in preds if p["set"] == r["set"] and p["image_id"] == r["image_id"]]
        assert r["n_models"] == "5" and float(r["p_positive"]) == pytest.approx(np.mean(ps), abs=1e-6)
    for r in oof + preds:  # is_positive and p_positive say what they mean: no "target 0 = mpox" trap
        assert r["is_positive"] == str(int(r["label"] == "mpox")) and r["p_positive"] == r["p_mpox"]
    m = json.loads((run / "metrics.json").read_text())
    for k, per_set in m["per_fold"].items():  # the file alone reproduces every reported AUC, the obvious way
        for s, reported in per_set.items():
            rows = [p for p in preds if p["set"] == s and p["fold"] == k]
            assert roc_auc_score(
                [int(p["is_positive"]) for p in rows], [float(p["p_mpox"]) for p in rows]
            ) == pytest.approx(reported["auc"]), (k, s)


@pytest.mark.torch
@pytest.mark.slow
def test_every_json_a_run_writes_is_strict_json(triage_run, tmp_path):
    """Before: metrics.json, `train run --json` and the ONNX metadata held bare NaN (an NPV with nothing predicted
    negative), which JSON.parse in a browser or Node, Go and Java refuse; now null, as the tables show '—'."""
    from test_train_cli_inputs import train_cli

    def strict(text: str):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))

    strict((triage_run / "metrics.json").read_text())
    for name in ("run.json", "config.json"):
        strict((triage_run / name).read_text())
    res = train_cli("compare", triage_run, "--json", cwd=tmp_path)  # one run once: a second naming is refused
    assert res.returncode == 0, res.stderr[-800:]
    strict(res.stdout)


def test_a_metric_defined_on_some_folds_is_their_mean_and_says_so():
    """Before: one validation fold holding one class (no AUC) made the mean "nan (nan)"."""
    from train.metrics import fmt, summarise

    folds = [dict.fromkeys(("auc", "accuracy", "precision", "recall", "f1"), 0.5) for _ in range(3)]
    folds[1]["auc"], folds[2]["auc"] = 1.0, float("nan")
    stats = summarise(folds)
    assert stats["auc"]["mean"] == 0.75 and stats["auc"]["folds"] == 2 and "folds" not in stats["f1"]
    assert fmt(stats["auc"]) == "0.750 (0.354) [2 folds]" and fmt(stats["f1"]) == "0.500 (0.000)"
    assert fmt({"mean": None, "sd": None}) == "\u2014"


def test_run_reports_calibration_operating_point_cis_and_pointing(triage_run):
    run = triage_run
    m = json.loads((run / "metrics.json").read_text())
    tri = m["triage"]
    assert tri["fit_on"] == "train (out-of-fold)" and tri["target_sensitivity"] == 0.95
    assert set(tri["sets"]) == {"train", "test", "test_roi", "external"}
    oof = _csv(run / "oof_predictions.csv")
    train = [r for r in oof if r["set"] == "train"]
    sens = np.mean([float(r["p_positive_calibrated"]) >= tri["threshold"] for r in train if r["is_positive"] == "1"])
    assert sens >= 0.95 and tri["sets"]["train"]["operating_point"]["sensitivity"] == pytest.approx(sens)
    for d in tri["sets"].values():
        assert {"ece_before", "ece_after", "brier_before", "brier_after"} <= set(d["calibration"])
        assert set(d["ci"]) >= {
            "auc",
            "accuracy",
            "precision",
            "recall",
            "f1",
            "sensitivity",
            "specificity",
            "ppv",
            "npv",
        }
        for k, ci in d["ci"].items():
            v = d["metrics"][k]
            if ci["lo"] is not None and v is not None:  # undefined (null) where nothing predicted negative
                assert ci["lo"] - 1e-9 <= ci["hi"] and 0 <= ci["lo"] <= 1
    test = [r for r in oof if r["set"] == "test"]
    refer = sum(float(r["p_positive_calibrated"]) >= tri["threshold"] for r in test)
    op = tri["sets"]["test"]["operating_point"]
    assert op["tp"] + op["fp"] == refer and refer == sum(r["triage"] == "refer" for r in test)
    # pointing game: boxes on every other image (the fixture), test and external
    pt = json.loads((run / "pointing.json").read_text())
    ds = DatasetVersion.open(json.loads((run / "run.json").read_text())["dataset"]["path"])
    boxed = {s.image_id for s in ds.samples("test", roi=True)}
    assert (
        pt["sets"]["test"]["n"] == len(boxed) and {i["image_id"] for i in pt["images"] if i["set"] == "test"} == boxed
    )
    hits = [i["hit"] for i in pt["images"]]
    assert hits == sorted(hits)  # misses listed first
    assert pt["sets"]["test"]["pointing"] == pytest.approx(
        np.mean([i["hit"] for i in pt["images"] if i["set"] == "test"])
    )
    report = (run / "report.md").read_text()
    assert_tables_render(report)
    for text in (
        "Calibration and triage operating point",
        "reliability.png",
        "Table 2 with confidence intervals",
        "Pointing game",
        "pointing.png",
        "outside every box",
    ):
        assert text in report
    assert (run / "reliability.png").stat().st_size > 5000 and (run / "pointing.png").stat().st_size > 5000


def assert_tables_render(markdown: str) -> None:
    """Every Markdown table's delimiter row has as many cells as its header: GitHub and markdown-it render one
    short of it as a paragraph of pipes (the probe's case: the triage table had 10 header cells, 9 delimiters)."""
    lines = markdown.splitlines()
    tables = 0
    for head, rule in zip(lines, lines[1:], strict=False):
        if head.startswith("|") and rule.startswith("|") and set(rule) <= set("|-: "):
            tables += 1
            assert head.count("|") == rule.count("|"), (head, rule)
    assert tables, "no table"


@pytest.mark.torch
@pytest.mark.slow
def test_compare_shows_triage_and_pointing(triage_run, tmp_path):
    from train.report import compare_runs

    res = compare_runs([triage_run], tmp_path / "cmp")
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "ECE before → after" in md and "Pointing game" in md and "[" in md
    assert_tables_render(md)
    assert (
        res["runs"][0]["triage"]["threshold"]
        == json.loads((triage_run / "metrics.json").read_text())["triage"]["threshold"]
    )


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_model_gives_pytorchs_probabilities(triage_run, tmp_path, fmt):
    import torch
    from PIL import Image
    from typer.testing import CliRunner

    from train.cli import app
    from train.ensemble import Ensemble
    from train.export_model import read_metadata

    out = tmp_path / f"triage.{fmt}"
    res = CliRunner().invoke(app, ["export-model", str(triage_run), "--format", fmt, "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    meta, card = read_metadata(out)
    model = Ensemble.load(triage_run)
    assert meta["classes"] == ["mpox", "non_mpox"] and meta["input"]["size"] == 32
    assert meta["operating_threshold"] == pytest.approx(model.operating_threshold)
    assert (
        meta["calibration"] == model.calibration.as_dict()
        and meta["dataset"]["checksum"] == model.info["dataset"]["checksum"]
    )
    for text in ("Intended use", "Limits", "Not a diagnosis", meta["dataset"]["checksum"], "95 % bootstrap CI"):
        assert text in card
    assert (tmp_path / f"triage.{fmt}.card.md").read_text() == card
    ds = DatasetVersion.open(json.loads((triage_run / "run.json").read_text())["dataset"]["path"])
    imgs = [Image.open(s.path).convert("RGB") for s in ds.samples("external")]
    size = meta["input"]["size"]  # the client's preprocessing, from the metadata alone
    x = np.stack(
        [np.asarray(im.resize((size, size), Image.BILINEAR), np.float32).transpose(2, 0, 1) / 255 for im in imgs]
    )
    ref = model.triage(imgs)
    if fmt == "onnx":
        import onnxruntime as ort

        probs, p_cal = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x})
    else:
        probs, p_cal = (t.detach().numpy() for t in torch.jit.load(str(out))(torch.from_numpy(x)))
    assert np.abs(probs[:, 0] - [r.p_positive for r in ref]).max() < 1e-4
    assert np.abs(p_cal - [r.p_calibrated for r in ref]).max() < 1e-4
    # a camera's JPEG: `train serve` decodes it at reduced scale; a client reads that from the metadata (before,
    # nothing said so, and a full-size decode fed other pixels)
    from train.photos import Limits, decode

    buf = io.BytesIO()
    imgs[0].resize((16 * size, 16 * size), Image.LANCZOS).save(buf, "JPEG", quality=90)
    assert "reduced scale" in meta["input"]["jpeg_decode"] and "reduced scale" in card
    # what a client integrating the file from its card alone needs: the colour conversion `input.colour` names (a
    # probe: the card left it out, so a Display P3 photo would be fed unconverted)
    assert "sRGB" in meta["input"]["colour"] and "converted to sRGB" in card and "dataset version above" in card
    client = Image.open(io.BytesIO(buf.getvalue()))
    client.draft("RGB", (size, size))
    served = np.asarray(decode(buf.getvalue(), Limits(), size).resize((size, size), Image.BILINEAR))
    assert np.array_equal(np.asarray(client.convert("RGB").resize((size, size), Image.BILINEAR)), served)
    full = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB").resize((size, size), Image.BILINEAR))
    assert not np.array_equal(full, served)


@pytest.mark.torch
@pytest.mark.slow
def test_one_folds_export_says_its_table_is_the_means_and_gives_its_own_auc(triage_run, tmp_path):
    """`export-model --fold K`: before, the card titled "(fold K)" showed the mean model's metrics as its own (a probe:
    test AUC 0.875 on the card, 0.938 for the fold)."""
    from typer.testing import CliRunner

    from train.cli import app
    from train.export_model import read_metadata

    metrics = json.loads((triage_run / "metrics.json").read_text())
    fold = sorted(metrics["per_fold"])[0]
    out = tmp_path / "fold.pt"
    res = CliRunner().invoke(
        app, ["export-model", str(triage_run), "--format", "torchscript", "--fold", fold, "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    meta, card = read_metadata(out)
    n = len(metrics["per_fold"])
    assert meta["fold_metrics"] == metrics["per_fold"][fold] and meta["triage_of"] == f"mean of {n} fold models"
    assert f"## Performance of the mean of {n} fold models" in card
    test_auc = metrics["per_fold"][fold]["test"]["auc"]
    assert f"This file holds fold {fold} alone. Its own AUC (no CI): " in card and f"test {test_auc:.3f}" in card
    whole = tmp_path / "whole.pt"
    assert (
        CliRunner()
        .invoke(app, ["export-model", str(triage_run), "--format", "torchscript", "--out", str(whole)])
        .exit_code
        == 0
    )
    meta, card = read_metadata(whole)
    assert "fold_metrics" not in meta and "holds fold" not in card and "## Performance (95 %" in card


@pytest.mark.torch
def test_device_auto_and_a_missing_gpu(tmp_path):
    import torch
    from typer.testing import CliRunner

    from train.cli import app
    from train.device import autocast, precision_tag, resolve_device

    assert resolve_device("cpu") == "cpu" and precision_tag("cpu") == "fp32" and precision_tag("cuda") == "amp-bf16"
    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda"
        with autocast("cuda"):
            assert torch.is_autocast_enabled("cuda")
        return
    assert resolve_device("auto") == "cpu"
    with autocast("cpu"):
        assert not torch.is_autocast_enabled("cpu")  # float32 on CPU: cached features stay comparable
    path = write_export(tmp_path)
    res = CliRunner().invoke(
        app,
        [
            "run",
            "--dataset",
            str(path),
            "--arch",
            "resnet18",
            "--weights",
            "none",
            "--device",
            "cuda",
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert res.exit_code == 1 and "no CUDA GPU" in res.output and not (tmp_path / "run").exists()
    res = CliRunner().invoke(app, ["run", "--dataset", str(path), "--arch", "resnet18", "--device", "tpu"])
    assert res.exit_code == 2  # not one of cpu, cuda, auto


def test_pointing_sample_is_seeded_and_capped(tmp_path):
    pytest.importorskip("torch")
    from train.pointing import boxed_sample
    from train.presets import ImageRef

    refs = {
        s: [ImageRef(tmp_path / f"{s}{i}.jpg", "0" * 64, i % 2, f"{s}{i}") for i in range(20)]
        for s in ("test", "external")
    }
    boxes = {it.image_id: (0.1, 0.1, 0.5, 0.5) for its in refs.values() for it in its if int(it.image_id[-1]) % 4}
    picked, boxed = boxed_sample(refs, boxes, 5, seed=3)
    assert boxed == {"test": 14, "external": 14} and all(len(v) == 5 for v in picked.values())
    assert all(it.image_id in boxes for v in picked.values() for it in v)
    assert picked == boxed_sample(refs, boxes, 5, seed=3)[0] and picked != boxed_sample(refs, boxes, 5, seed=4)[0]
    order = [it.image_id for it in refs["test"]]
    assert [order.index(it.image_id) for it in picked["test"]] == sorted(
        order.index(it.image_id) for it in picked["test"]
    )
    everything, _ = boxed_sample(refs, boxes, None, seed=3)
    assert len(everything["test"]) == 14


@pytest.mark.torch
@pytest.mark.slow
def test_run_with_pointing_cap_says_so(tmp_path):
    from train_fixtures import write_export

    from train.config import TrainConfig
    from train.recipe import run

    export = write_export(tmp_path, roi_every=1)
    out = run(
        TrainConfig(
            dataset=str(export),
            arch="resnet18",
            out=str(tmp_path / "run"),
            weights="none",
            epochs=1,
            image_size=32,
            bootstrap=20,
            gradcam_images=1,
            pointing_max=3,
        )
    )
    pt = json.loads((out / "pointing.json").read_text())
    assert pt["sample"] == {"max_per_set": 3, "seed": 0}
    assert all(d["n"] == 3 and d["boxed"] > 3 for d in pt["sets"].values())
    assert "seeded random sample (seed 0) of at most 3 boxed images per set" in (out / "report.md").read_text()


def test_a_flat_or_one_class_fit_is_no_calibration_and_nan_is_one_line():
    """Before: all-equal out-of-fold scores (a model that learnt nothing) were called "worse than chance", a
    single class gave an identity fit that `predict` and `serve` then called calibrated, and NaN scores raised
    scikit-learn's multi-line ValueError."""
    from train.calibration import FLAT, FLAT_METHOD, ONE_CLASS_METHOD, applied, unfit
    from train.errors import TrainError

    y = np.array([0, 1, 0, 1, 1, 0])
    flat = Platt.fit(y, np.full(6, 0.5))
    assert flat.method == FLAT_METHOD and unfit(flat) == FLAT and not applied(flat)
    one = Platt.fit(np.ones(6), np.linspace(0.1, 0.9, 6))
    assert one.method == ONE_CLASS_METHOD and unfit(one) is None and not applied(one)
    assert applied(Platt.fit(y, np.array([0.2, 0.8, 0.3, 0.7, 0.9, 0.1]))) and applied({"method": "platt"})
    with pytest.raises(TrainError, match=r"^1 out-of-fold prediction\(s\) are not numbers \(NaN\)") as exc:
        Platt.fit(y, np.array([0.2, np.nan, 0.3, 0.7, 0.9, 0.1]))
    assert "\n" not in str(exc.value)


def test_an_uncalibrated_run_is_never_called_calibrated(triage_run, tmp_path):
    """Before: a run left uncalibrated ("none: …") was `"calibrated": true` in predict's JSON and serve's answer,
    "(cal.)" in predict's table, and its report and model card gave a Platt formula it never applied."""
    import shutil

    from train_fixtures import new_jpeg

    from train.calibration import INVERTED_METHOD
    from train.ensemble import Ensemble
    from train.export_model import metadata
    from train.model_card import card_markdown
    from train.predict import predict

    run = tmp_path / "run"
    shutil.copytree(triage_run, run)
    metrics = json.loads((run / "metrics.json").read_text())
    # a and b as a run edited by hand might hold them: a calibration that was not applied is never applied
    metrics["triage"]["calibration"] = {"a": 2.5, "b": -0.5, "method": INVERTED_METHOD}
    (run / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "p.jpg").write_bytes(new_jpeg("mpox"))
    (said,) = predict(run, [tmp_path / "p.jpg"], out_dir=tmp_path / "o")
    assert said["calibrated"] is False and said["p_calibrated"] == said["p_positive"]
    model = Ensemble.load(run)
    meta = metadata(model, None)
    card = card_markdown(meta)
    assert "sigmoid(" not in card and f"**Calibration**: {INVERTED_METHOD}" in card
    # before: every card said "public web photos and clinic photos" and pointed at an external set it may not have
    has_external = "external" in meta["triage"]["sets"]
    assert "public web photos" not in card and ("the external set (photos from" in card) == has_external
    without = {**meta, "triage": {**meta["triage"], "sets": {"test": meta["triage"]["sets"]["test"]}}}
    assert "has no external set" in card_markdown(without)
    (fit,) = predict(triage_run, [tmp_path / "p.jpg"], out_dir=tmp_path / "o2")
    assert fit["calibrated"] is True


@pytest.mark.torch
@pytest.mark.slow
def test_a_killed_exports_part_is_removed_by_the_next_export_and_no_other(triage_run, tmp_path):
    """The probe's case: `export-model` killed mid-write left `model.onnx.owoxqua9.part` (36 MB) beside its --out,
    and no re-run removed it. The next export of that file removes its own dead parts; another program's `*.part`
    in that folder (a browser's download) and a part a live writer holds are left alone."""
    import fcntl

    from typer.testing import CliRunner

    from train.cli import app

    out = tmp_path / "triage.onnx"
    dead = tmp_path / "triage.onnx.owoxqua9.part"
    dead.write_bytes(b"\0" * 1000)  # what a kill -9 mid-write leaves
    card_dead = tmp_path / "triage.onnx.card.md.curate-k2j4l5m6.part"  # as parts are named now (files.MARK)
    card_dead.write_text("half a card")
    foreign = tmp_path / "holiday.jpg.part"
    foreign.write_bytes(b"a download")
    live = tmp_path / "triage.onnx.a1b2c3d4.part"
    live.write_bytes(b"")
    with open(live) as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a second export writing now
        res = CliRunner().invoke(app, ["export-model", str(triage_run), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and not dead.exists() and not card_dead.exists()
    assert foreign.read_bytes() == b"a download" and live.exists()
