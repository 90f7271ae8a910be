"""The labelling report as one self-contained HTML page, with the rater-vs-rater confusion matrix
also written as a PNG beside it (for slides and papers)."""
from __future__ import annotations

import html
import io
import json
import re
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

from PIL import UnidentifiedImageError
from sqlmodel import select

from curate.dedupe.review import _thumb
from curate.errors import StoreError
from curate.files import write_atomic
from curate.label.agreement import Agreement
from curate.label.diagnoses import NEITHER, NEITHER_CHOICE
from curate.label.report import OUTCOME_MEANINGS, LabelReport, Sample
from curate.plots import confusion_matrix_plot, pyplot
from db.models import Image

CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:72em}
table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
.date{color:#555}.gallery{display:flex;flex-wrap:wrap;gap:1em;margin-bottom:1.5em}
figure{margin:0;width:180px;font-size:.8rem}figure img{display:block;max-width:160px;max-height:160px}"""


@dataclass
class ReportFiles:
    html: Path
    confusion_png: Path


def confusion_png(ag: Agreement, names: dict[str, str]) -> bytes:
    """Rater 1 (rows) against rater 2 (columns), every diagnosis, a count in each cell."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 7), dpi=100)
    confusion_matrix_plot(ax, ag.matrix, [names.get(d, d) for d in ag.labels], "second rater", "first rater", rotate=True)
    kappa = "n/a" if ag.kappa is None else f"{ag.kappa:.3f}"
    ax.set_title(f"Rater vs rater (n={ag.n}, Cohen's kappa {kappa})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _prose(text: str) -> str:
    """Escaped text with `command` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _name(d: str | None, names: dict[str, str]) -> str:
    """The name clinicians read; the reviewer's "neither" as the choice she clicked."""
    return "no diagnosis" if d is None else names.get(d, NEITHER_CHOICE if d == NEITHER else d)


def _figure(x: Sample, thumb: str | None, names: dict[str, str]) -> str:
    e = html.escape
    img = f'<img alt="image {x.image_id}" src="data:image/jpeg;base64,{thumb}">' if thumb else "<p>(image unavailable)</p>"
    chose = [f"Rater {n}: {e(_name(d, names))}" for n, d in enumerate(x.raters, 1)]
    if x.reviewer is not None or x.status == "adjudicated":
        chose.append(f"Reviewer: {e(_name(x.reviewer, names))}")
    elif x.group == "disputed":
        chose.append("Reviewer: not yet")
    return f'<figure class="{x.group}">{img}<figcaption>image {x.image_id} ({x.status})<br>{"<br>".join(chose)}</figcaption></figure>'


def _thumbnails(ws, ids: list[int]) -> dict[int, str | None]:
    """Small re-encoded JPEGs (no metadata); a missing or unreadable original shows as unavailable."""
    with ws.session() as s:
        shas = dict(s.exec(select(Image.id, Image.sha256).where(Image.id.in_(ids))).all()) if ids else {}
    out: dict[int, str | None] = {}
    for i in ids:
        try:
            out[i] = _thumb(ws.store.read(shas[i])) if i in shas else None
        except (StoreError, UnidentifiedImageError, OSError):
            out[i] = None
    return out


def _gallery(report: LabelReport, thumbs: dict[int, str | None], group: str, intro: str) -> str:
    shown = [x for x in report.samples if x.group == group]
    figs = "".join(_figure(x, thumbs.get(x.image_id), report.names) for x in shown) or "<p>None.</p>"
    return f"<p>{intro}</p><div class=\"gallery\">{figs}</div>"


def page_json(report: LabelReport) -> str:
    """The report's data for scripts, safe inside <script>: `<`, `>` and `&` as JSON \\u escapes (still valid JSON)."""
    text = json.dumps(report.to_dict(), ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def write_html(report: LabelReport, dest: Path, ws) -> ReportFiles:
    """labeling.html and labeling-confusion.png beside it; each written to ws.tmp and renamed into place."""
    dest = Path(dest)
    png_bytes = confusion_png(report.agreement, report.names)
    png = write_atomic(dest.with_name(dest.stem + "-confusion.png"), png_bytes, tmp_dir=ws.tmp)
    thumbs = _thumbnails(ws, [x.image_id for x in report.samples])
    e = html.escape
    rows = "".join(f"<tr><td>{e(p.round)}</td><td>{e(p.kind)}</td><td>{e(p.rater)}</td><td>{p.tasks}</td><td>{p.labelled}</td></tr>"
                   for p in report.progress)
    outs = ""
    for status, n in report.outcomes.items():
        extra = report.details.get(status) or {}
        why = "" if not extra else "<br>" + e("; ".join(f"{k}: {v}" for k, v in extra.items()))
        outs += f"<tr><td>{status}</td><td>{n}</td><td>{_prose(OUTCOME_MEANINGS[status])}{why}</td></tr>"
    per = "".join(f"<tr><td>{e(report.names.get(d, d))}</td><td>{'' if k is None else f'{k:.3f}'}</td></tr>"
                  for d, k in report.agreement.per_diagnosis.items())
    k = report.agreement.kappa
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Labeling report</title><style>{CSS}</style></head><body>
<h1>Labeling report</h1><p class="date">Generated {e(report.generated_at)}</p>
<h2>Progress</h2><table><tr><th>round</th><th>kind</th><th>rater</th><th>tasks</th><th>labelled</th></tr>{rows}</table>
<h2>Outcomes</h2><table><tr><th>outcome</th><th>images</th><th>what it means</th></tr>{outs}</table>
<h2>Agreement</h2><p>Cohen's kappa (all diagnoses): <b>{'n/a' if k is None else f'{k:.3f}'}</b> over {report.agreement.n} doubly-rated images</p>
<table><tr><th>diagnosis (one vs rest)</th><th>kappa</th></tr>{per}</table>
<img alt="rater vs rater confusion matrix" src="data:image/png;base64,{b64encode(png_bytes).decode()}">
<p>Also saved as <a href="{e(png.name)}">{e(png.name)}</a>.</p>
<h2>Examples</h2><p>A few images (lowest image id first); raters are shown as Rater 1 and Rater 2 in round order.
Images flagged as identifiable are never shown.</p>
<h3>Disputed</h3>{_gallery(report, thumbs, "disputed", "The raters chose different diagnoses.")}
<h3>Discarded</h3>{_gallery(report, thumbs, "discarded", _prose(OUTCOME_MEANINGS["discarded"]))}
<script type="application/json" id="data">{page_json(report)}</script></body></html>"""
    return ReportFiles(write_atomic(dest, page, tmp_dir=ws.tmp), png)
