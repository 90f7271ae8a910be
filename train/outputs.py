"""Every file `train` writes goes through here, whole or not at all (`curate.files.write_atomic`):
JSON, CSV, markdown, matplotlib figures and PIL images. No torch, so light modules can use it."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from curate.files import write_atomic
from curate.imaging import pixels_only
from curate.output import json_text


def write_json(path: Path, data) -> None:
    write_atomic(path, json_text(data))


def write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    write_atomic(path, buf.getvalue())


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    write_atomic(path, buf.getvalue())


def save_image(img, path: Path) -> None:
    """A PIL image as PNG, pixels only (`curate.imaging.pixels_only`: no comment or ICC profile carried over)."""
    buf = io.BytesIO()
    pixels_only(img).save(buf, format="PNG")
    write_atomic(path, buf.getvalue())
