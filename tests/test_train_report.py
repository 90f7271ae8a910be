"""Run-report figures on hand-made predictions: full titles, AUC in every ROC legend, legible confusion
matrices, and a Grad-CAM gallery that includes false positives and negatives and names the wrong prediction."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

pytest.importorskip("torch")

from curate.plots import contrast, pyplot
from train.gallery import draw, markdown, select
from train.metrics import EVAL_SETS
from train.report import compare_roc_plot, confusion_plot, roc_plot

pytestmark = pytest.mark.torch


def predictions(folds=5, n=40, seed=0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(folds):
        for s in ["val", *EVAL_SETS]:
            for i in range(n):
                label = "mpox" if i % 3 == 0 else "non_mpox"
                p = float(np.clip((0.7 if label == "mpox" else 0.3) + rng.normal(0, 0.2), 0, 1))
                rows.append(
                    {
                        "fold": str(k),
                        "set": s,
                        "image_id": str(i),
                        "label": label,
                        "p_mpox": f"{p:.6f}",
                        "p_non_mpox": f"{1 - p:.6f}",
                        "pred": "mpox" if p >= 0.5 else "non_mpox",
                    }
                )
    return rows


def test_roc_titles_are_whole_and_every_fold_has_its_auc():
    rows = predictions()
    for s, title in EVAL_SETS.items():
        fig = roc_plot(rows, "mpox", s)
        ax = fig.axes[0]
        assert ax.get_title().replace("\n", " ") == title
        fig.canvas.draw()
        assert fig.bbox.contains(*ax.title.get_window_extent().p0) and fig.bbox.contains(
            *ax.title.get_window_extent().p1
        )
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert len(legend) == 5 and all(t.startswith(f"fold {k} (AUC 0.") for k, t in enumerate(legend)), legend
        pyplot().close(fig)


def test_compare_legend_auc_is_the_plotted_curves():
    """A model that gives every image the same probability draws the diagonal; its legend must say 0.500."""
    good = predictions()
    flat = [r | {"p_mpox": "0.5", "p_non_mpox": "0.5"} for r in good]
    fig = compare_roc_plot([("ResNet-18", "mpox", good), ("ShuffleNet-V2", "mpox", flat)], list(EVAL_SETS))
    for ax, title in zip(fig.axes, EVAL_SETS.values(), strict=False):
        assert ax.get_title().replace("\n", " ") == title
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend[1] == "ShuffleNet-V2 (AUC 0.500)" and legend[0].startswith("ResNet-18 (AUC 0.")
        assert float(legend[0][-6:-1]) > 0.8
    pyplot().close(fig)


def test_train_confusion_counts_are_legible():
    rows = predictions(n=120)
    metrics = {"per_fold": {str(k): {s: {"auc": 0.8 + k / 100} for s in EVAL_SETS} for k in range(5)}}
    fig, best = confusion_plot(rows, metrics, ["mpox", "non_mpox"], list(EVAL_SETS))
    assert best == dict.fromkeys(EVAL_SETS, 4)
    colours = set()
    for ax in fig.axes:
        im = ax.images[0]
        cm = im.get_array()
        texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
        for (i, j), v in np.ndenumerate(cm):
            cell, text = im.cmap(im.norm(v)), texts[(i, j)]
            assert text.get_text() == str(int(v))
            assert contrast(cell, to_rgb(text.get_color())) >= 4.5, (i, j, v)
            colours.add(text.get_color())
    assert len(colours) == 2  # dark digits on light cells and light digits on dark ones
    pyplot().close(fig)


def row(image_id, label, s, pred, p):
    return {
        "fold": "1",
        "set": s,
        "image_id": str(image_id),
        "label": label,
        "p_mpox": str(p),
        "p_non_mpox": str(1 - p),
        "pred": pred,
    }


GALLERY_ROWS = [
    row(1, "mpox", "test", "non_mpox", 0.2),
    row(1, "mpox", "test_roi", "mpox", 0.9),  # FN, uncropped only
    row(2, "non_mpox", "test", "mpox", 0.8),
    row(2, "non_mpox", "test_roi", "mpox", 0.7),  # FP, both
    row(3, "mpox", "test", "mpox", 0.9),
    row(3, "mpox", "test_roi", "non_mpox", 0.4),  # FN, ROI only
    row(4, "mpox", "test", "mpox", 0.95),
    row(4, "mpox", "test_roi", "mpox", 0.9),  # TP
    row(5, "non_mpox", "test", "non_mpox", 0.1),  # TN, no lesion box
    row(6, "non_mpox", "test", "mpox", 0.6),  # FP, no lesion box
    row(7, "mpox", "test", "non_mpox", 0.1),
    row(7, "mpox", "test", "non_mpox", 0.1) | {"fold": "0"},
]


def test_gallery_has_false_positives_and_negatives_and_names_the_wrong_prediction():
    picked = select(GALLERY_ROWS, "mpox", fold=1, n=2)
    got = [(g.kind, g.image_id, g.wrong) for g in picked]
    assert got == [
        ("false negative", "1", "uncropped"),
        ("false negative", "3", "ROI"),
        ("false positive", "2", "uncropped and ROI"),
        ("false positive", "6", "uncropped"),
        ("true positive", "4", "neither"),
        ("true negative", "5", "neither"),
    ]
    assert picked[0].panels[1].p == 0.9 and not picked[0].panels[1].wrong and picked[0].panels[0].wrong
    table = "\n".join(markdown(picked, "mpox"))
    assert (
        "| false negative | 1 | mpox | uncropped |" in table
        and "| false positive | 6 | non_mpox | uncropped |" in table
    )
    assert "no lesion box" in table and "No false" not in table
    only_right = select([r for r in GALLERY_ROWS if r["image_id"] in ("4", "5")], "mpox", fold=1, n=2)
    assert "No false negative predictions and no false positive predictions" in "\n".join(markdown(only_right, "mpox"))
    # no ROI line at all (a one-class ROI set is skipped): before, every test image was said to have no lesion box
    skipped = select([r for r in GALLERY_ROWS if r["set"] == "test"], "mpox", fold=1, n=2)
    table = "\n".join(markdown(skipped, "mpox"))
    assert "ROI not evaluated" in table and "no lesion box" not in table


def test_gallery_figure_says_which_prediction_was_wrong():
    picked = select(GALLERY_ROWS, "mpox", fold=1, n=1)
    img = Image.new("RGB", (32, 32), (200, 120, 100))
    fig = draw(picked, {(g.image_id, pn.tag): (img, img) for g in picked for pn in g.panels}, "mpox")
    headings = [sf._suptitle.get_text() for sf in fig.subfigs]
    assert headings == [
        "false negative: image 1, true mpox; wrong: uncropped",
        "false positive: image 2, true non_mpox; wrong: uncropped and ROI",
        "true positive: image 4, true mpox; wrong: neither",
        "true negative: image 5, true non_mpox; wrong: neither",
    ]
    titles = [ax.get_title() for ax in fig.subfigs[0].axes]
    assert (
        titles[0] == "uncropped: pred non_mpox\nP(mpox) 0.20, WRONG"
        and titles[2] == "ROI: pred mpox\nP(mpox) 0.90, right"
    )
    assert "no lesion box" in " ".join(t.get_text() for ax in fig.subfigs[3].axes for t in ax.texts)
    pyplot().close(fig)


def test_multiclass_gallery_is_wrong_and_correct():
    rows = [row(1, "mpox", "test", "non_mpox", 0.2), row(2, "mpox", "test", "mpox", 0.9)]
    assert [(g.kind, g.wrong, g.panels[0].p) for g in select(rows, None, fold=1, n=3)] == [
        ("wrong", "uncropped", 0.8),
        ("correct", "neither", 0.9),
    ]
