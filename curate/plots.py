"""Matplotlib pieces shared by the labelling report (curate) and the run reports (train).

Part of the small shared core with `curate.output`, `curate.files` and `curate.errors`: no catalogue
or workspace import here, because `train` uses it and must stay free of the catalogue.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

DARK_TEXT = "#111111"
LIGHT_TEXT = "#ffffff"


def pyplot():
    """matplotlib.pyplot on the Agg backend (reports are written on servers without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _luminance(rgb: Sequence[float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour with channels in [0, 1]."""
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: Sequence[float], b: Sequence[float]) -> float:
    """WCAG contrast ratio (1 to 21) between two sRGB colours."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_colour(background: Sequence[float]) -> str:
    """Dark or light text, whichever contrasts more with `background` (RGB(A) in [0, 1])."""
    from matplotlib.colors import to_rgb

    dark, light = to_rgb(DARK_TEXT), to_rgb(LIGHT_TEXT)
    return DARK_TEXT if contrast(background, dark) >= contrast(background, light) else LIGHT_TEXT


def confusion_matrix_plot(
    ax,
    matrix,
    labels: Sequence[str],
    xlabel: str,
    ylabel: str,
    cmap: str = "Blues",
    fontsize: float = 10,
    rotate: bool = False,
):
    """Draw a confusion matrix on `ax` with a count in every cell, legible on light and dark cells.

    scikit-learn's ConfusionMatrixDisplay lays it out; its text colour is then chosen per cell from the
    cell's luminance, because ConfusionMatrixDisplay switches colour at the midpoint of the *values*,
    which on "Blues" puts near-white digits on mid-blue cells (contrast about 2:1). Returns the display
    (`.text_[i, j]` is the Text of cell i, j).
    """
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    cm = np.asarray(matrix)
    disp = ConfusionMatrixDisplay(cm, display_labels=list(labels))
    disp.plot(ax=ax, cmap=cmap, colorbar=False, values_format="d", xticks_rotation=45 if rotate else "horizontal")
    im = disp.im_
    for (i, j), v in np.ndenumerate(cm):
        t = disp.text_[i, j]
        t.set_color(text_colour(im.cmap(im.norm(v))))
        t.set_fontsize(fontsize)
    if rotate:
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return disp


def wrapped(title: str, width: int = 34) -> str:
    """A title broken over lines instead of cut, so a long set name stays whole on a small figure."""
    return "\n".join(textwrap.wrap(title, width)) or title
