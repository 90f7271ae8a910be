"""The shared confusion-matrix drawing: every count is readable on its cell, measured on the rendered PNG."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from curate.plots import DARK_TEXT, LIGHT_TEXT, confusion_matrix_plot, contrast, pyplot, text_colour, wrapped


def _render(matrix, cmap="Blues"):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    confusion_matrix_plot(ax, matrix, ["mpox", "non_mpox"], "predicted", "true", cmap=cmap, fontsize=14)
    fig.canvas.draw()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    boxes = {}
    height = fig.bbox.height
    for i in range(len(matrix)):
        for j in range(len(matrix[0])):
            (x0, y0), (x1, y1) = ax.transData.transform([(j - 0.4, i + 0.4), (j + 0.4, i - 0.4)])
            boxes[(i, j)] = (int(min(x0, x1)), int(height - max(y0, y1)), int(max(x0, x1)), int(height - min(y0, y1)))
    plt.close(fig)
    return np.asarray(Image.open(buf).convert("RGB")) / 255.0, boxes


@pytest.mark.parametrize("cmap", ["Blues", "viridis"])
def test_every_count_contrasts_with_its_cell_in_the_png(cmap):
    matrix = [[90, 2], [5, 40]]  # a dark, two light and a mid-tone cell
    pixels, boxes = _render(matrix, cmap)
    for (i, j), (x0, y0, x1, y1) in boxes.items():
        cell = pixels[y0:y1, x0:x1].reshape(-1, 3)
        background = np.array(Counter(map(tuple, cell.round(3))).most_common(1)[0][0])
        ratios = np.array([contrast(px, background) for px in cell])
        assert (ratios > 2).sum() > 15, f"no digits drawn in cell {i},{j}"
        assert ratios.max() >= 4.5, f"cell {i},{j} ({matrix[i][j]}): text contrast only {ratios.max():.1f}:1"


def test_plain_black_text_would_fail_on_the_dark_cell():
    """The check above has teeth: the darkest Blues cell is unreadable in black, the lightest in white."""
    from matplotlib import colormaps

    dark, light = colormaps["Blues"](1.0), colormaps["Blues"](0.0)
    assert contrast(dark, (0, 0, 0)) < 4.5 and contrast(light, (1, 1, 1)) < 4.5
    assert text_colour(dark) == LIGHT_TEXT and text_colour(light) == DARK_TEXT


def test_wrapped_titles_keep_every_word():
    title = "testing data set (with region of interest approach)"
    assert wrapped(title).replace("\n", " ") == title and max(len(x) for x in wrapped(title).split("\n")) <= 34
