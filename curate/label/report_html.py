"""The labelling report as one self-contained HTML page, with the rater-vs-rater confusion matrix and each
rater's confusion matrix against the consensus also written as PNGs beside it (for slides and papers)."""

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

from curate.errors import StoreError
from curate.files import write_atomic
from curate.imaging import thumbnail
from curate.label.agreement import Agreement
from curate.label.diagnoses import NEITHER, NEITHER_CHOICE
from curate.label.raters import MIN_DIAGNOSED, RaterQuality
from curate.label.recompute import identifiable_photos
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
    raters_png: Path | None = None  # None when no rater has an image with a final consensus yet


def confusion_png(ag: Agreement, names: dict[str, str]) -> bytes:
    """Rater 1 (rows) against rater 2 (columns), every diagnosis, a count in each cell."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 7), dpi=100)
    confusion_matrix_plot(
        ax, ag.matrix, [names.get(d, d) for d in ag.labels], "second rater", "first rater", rotate=True
    )
    ax.set_title(f"Rater vs rater (n={ag.n}, Cohen's kappa {_num(ag.kappa)}, Gwet's AC1 {_num(ag.ac1)})")
    fig.tight_layout()
    return _png(fig)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    pyplot().close(fig)
    return buf.getvalue()


def raters_png(quality: list[RaterQuality], names: dict[str, str]) -> bytes | None:
    """One panel per rater or reviewer: the consensus diagnosis (rows) against theirs (columns)."""
    shown = [q for q in quality if q.compared]
    if not shown:
        return None
    cols = min(len(shown), 3)
    rows = -(-len(shown) // cols)
    fig, axes = pyplot().subplots(rows, cols, figsize=(6.5 * cols, 6 * rows), dpi=100, squeeze=False)
    for ax, q in zip(axes.flat, shown, strict=False):
        confusion_matrix_plot(ax, q.matrix, [names.get(d, d) for d in q.labels], q.rater, "consensus", rotate=True)
        ax.set_title(f"{q.rater} ({q.role}): {q.agreement:.1%} of {q.compared} as consensus", fontsize=10)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.tight_layout()
    return _png(fig)


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _raters_section(report: LabelReport, png: Path | None, png_bytes: bytes | None) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(q.rater)}</td><td>{e(q.role)}</td><td>{q.diagnosed}</td><td>{q.compared}</td>"
        f"<td>{_num(q.agreement, '.1%')}</td><td>{_num(q.estimated_accuracy, '.1%')}</td></tr>"
        for q in report.raters
    )
    if not rows:
        return "<h2>Raters</h2><p>No diagnoses yet.</p>"
    img = (
        ""
        if png is None
        else (
            f'<img alt="each rater against the consensus" style="max-width:100%" src="data:image/png;base64,'
            f'{b64encode(png_bytes).decode()}"><p>Also saved as <a href="{e(png.name)}">{e(png.name)}</a>.</p>'
        )
    )
    return f"""<h2>Raters</h2><p><i>Agreement with consensus</i> counts the agreed and adjudicated images \
a person diagnosed;
it flatters everyone, since an agreed image is one both raters chose and a reviewer's pick usually becomes the
consensus. <i>Estimated accuracy</i> is a latent-class (Dawid&ndash;Skene) estimate from all ratings, which
does not take the consensus as the truth: the expected share of that person's diagnoses that are right. A
reviewer sees only the disputed images, so their estimate rests on fewer, harder images and is less precise;
n/a means fewer than {MIN_DIAGNOSED} images diagnosed, too few for a stable estimate.</p>
<table><tr><th>email</th><th>role</th><th>diagnosed</th><th>with a consensus</th><th>agreement with consensus</th>
<th>estimated accuracy (Dawid&ndash;Skene)</th></tr>{rows}</table>{img}"""


def _prose(text: str) -> str:
    """Escaped text with `command` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def display_name(d: str | None, names: dict[str, str]) -> str:
    """The name clinicians read; the reviewer's "neither" as the choice she clicked."""
    return "no diagnosis" if d is None else names.get(d, NEITHER_CHOICE if d == NEITHER else d)


def _figure(x: Sample, thumb: str | None, names: dict[str, str]) -> str:
    e = html.escape
    img = (
        f'<img alt="image {x.image_id}" src="data:image/jpeg;base64,{thumb}">'
        if thumb
        else "<p>(image unavailable)</p>"
    )
    chose = [f"Rater {n}: {e(display_name(d, names))}" for n, d in enumerate(x.raters, 1)]
    if x.reviewer is not None or x.status == "adjudicated":
        chose.append(f"Reviewer: {e(display_name(x.reviewer, names))}")
    elif x.group == "disputed":
        chose.append("Reviewer: not yet")
    return (
        f'<figure class="{x.group}">{img}<figcaption>image {x.image_id} ({x.status})<br>{"<br>".join(chose)}'
        "</figcaption></figure>"
    )


def thumbnails_of(ws, ids: list[int]) -> dict[int, str | None]:
    """Small re-encoded JPEGs (no metadata); a missing or unreadable original shows as unavailable, and so does a
    photo flagged as identifiable, by its consensus or on a copy in its dedupe cluster (the flag is on the photo, as
    export has it): `label audit` showed one (a face, a tattoo) among the images relabelled since its run."""
    with ws.session() as s:
        shas = dict(s.exec(select(Image.id, Image.sha256).where(Image.id.in_(ids))).all()) if ids else {}
        flagged = identifiable_photos(s)
    out: dict[int, str | None] = {}
    for i in ids:
        try:
            out[i] = thumbnail(ws.store.read(shas[i])) if i in shas and i not in flagged else None
        except (StoreError, UnidentifiedImageError, OSError):
            out[i] = None
    return out


def _gallery(report: LabelReport, thumbs: dict[int, str | None], group: str, intro: str) -> str:
    shown = [x for x in report.samples if x.group == group]
    figs = "".join(_figure(x, thumbs.get(x.image_id), report.names) for x in shown) or "<p>None.</p>"
    return f'<p>{intro}</p><div class="gallery">{figs}</div>'


def page_json(report: LabelReport) -> str:
    """The report's data for scripts, safe inside <script>: `<`, `>` and `&` as JSON \\u escapes (still valid JSON)."""
    text = json.dumps(report.to_dict(), ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def write_html(report: LabelReport, dest: Path, ws) -> ReportFiles:
    """labeling.html with labeling-confusion.png and labeling-raters.png beside it; each written to ws.tmp and
    renamed into place (a raters PNG left from an earlier report is removed when there is none to draw)."""
    dest = Path(dest)
    png_bytes = confusion_png(report.agreement, report.names)
    png = write_atomic(dest.with_name(dest.stem + "-confusion.png"), png_bytes, tmp_dir=ws.tmp)
    raters_bytes, raters_path = raters_png(report.raters, report.names), dest.with_name(dest.stem + "-raters.png")
    if raters_bytes is None:
        raters_path.unlink(missing_ok=True)
    raters_file = None if raters_bytes is None else write_atomic(raters_path, raters_bytes, tmp_dir=ws.tmp)
    thumbs = thumbnails_of(ws, [x.image_id for x in report.samples])
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(p.round)}</td><td>{e(p.kind)}</td><td>{e(p.rater)}</td><td>{p.tasks}</td><td>{p.labelled}</td>"
        f"<td>{p.skipped}</td></tr>"
        for p in report.progress
    )
    outs = ""
    for status, n in report.outcomes.items():
        extra = report.details.get(status) or {}
        why = "" if not extra else "<br>" + e("; ".join(f"{k}: {v}" for k, v in extra.items()))
        outs += f"<tr><td>{status}</td><td>{n}</td><td>{_prose(OUTCOME_MEANINGS[status])}{why}</td></tr>"
    ag = report.agreement
    per = "".join(
        f"<tr><td>{e(report.names.get(d, d))}</td><td>{_num(k)}</td><td>{_num(ag.ac1_per_diagnosis.get(d))}</td></tr>"
        for d, k in ag.per_diagnosis.items()
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Labeling report</title>\
<style>{CSS}</style></head><body>
<h1>Labeling report</h1><p class="date">Generated {e(report.generated_at)}</p>
<h2>Progress</h2><table><tr><th>round</th><th>kind</th><th>rater</th><th>tasks</th><th>labelled</th><th>skipped</th></tr>{rows}</table>
<h2>Outcomes</h2><table><tr><th>outcome</th><th>images</th><th>what it means</th></tr>{outs}</table>
<h2>Agreement</h2><p>Over {ag.n} doubly-rated images (all diagnoses): Cohen's kappa <b>{_num(ag.kappa)}</b>,
Gwet's AC1 <b>{_num(ag.ac1)}</b>, observed agreement {_num(ag.observed, ".1%")}. Kappa collapses when a diagnosis
is rare even if the raters almost always agree; AC1 does not, so read the two together.</p>
<table><tr><th>diagnosis (one vs rest)</th><th>kappa</th><th>AC1</th></tr>{per}</table>
<img alt="rater vs rater confusion matrix" src="data:image/png;base64,{b64encode(png_bytes).decode()}">
<p>Also saved as <a href="{e(png.name)}">{e(png.name)}</a>.</p>
{_raters_section(report, raters_file, raters_bytes)}
<h2>Examples</h2><p>A few images (lowest image id first); raters are shown as Rater 1 and Rater 2 in round order.
Images flagged as identifiable are never shown.</p>
<h3>Disputed</h3>{_gallery(report, thumbs, "disputed", "The raters chose different diagnoses.")}
<h3>Discarded</h3>{_gallery(report, thumbs, "discarded", _prose(OUTCOME_MEANINGS["discarded"]))}
<script type="application/json" id="data">{page_json(report)}</script></body></html>"""
    return ReportFiles(write_atomic(dest, page, tmp_dir=ws.tmp), png, raters_file)
