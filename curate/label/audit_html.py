"""The label audit as one self-contained HTML page: the most likely label errors first, each with its
thumbnail (no metadata), both raters' diagnoses and the reviewer's, the consensus and the model's probability."""

from __future__ import annotations

import html
from pathlib import Path

from curate.files import write_atomic
from curate.label.audit import AuditReport, AuditRow
from curate.label.report_html import CSS, display_name, thumbnails_of

SHOWN = 200  # rows with a thumbnail; the JSON has every row


def _row(r: AuditRow, thumb: str | None, names: dict[str, str]) -> str:
    e = html.escape
    img = (
        f'<img alt="image {r.image_id}" src="data:image/jpeg;base64,{thumb}" style="max-width:120px">'
        if thumb
        else "(unavailable)"
    )
    raters = "<br>".join(
        f"Rater {n} ({e(who or '')}): {e(display_name(d, names))}" for n, (who, d) in enumerate(r.raters, 1)
    )
    rev = f"{e(r.reviewer[0] or '')}: {e(display_name(r.reviewer[1], names))}" if r.reviewer else "—"
    p = "" if r.self_confidence is None else f"{r.self_confidence:.3f}"
    probs = ", ".join(f"{e(k)} {v:.2f}" for k, v in sorted(r.probabilities.items(), key=lambda kv: -kv[1])[:3])
    rank = "—" if r.rank is None else str(r.rank)
    score = "" if r.score is None else f"{r.score:.3f}"
    flag = "yes" if r.issue else ""
    note = e(r.why_not_ranked or ("in an audit round" if r.audited else ""))
    return (
        f"<tr><td>{rank}</td><td>{img}<br>image {r.image_id} ({e(r.set)})</td><td>{raters}</td><td>{rev}</td>"
        f"<td>{e(display_name(r.consensus, names))}<br><small>{e(r.method)}</small></td>"
        f"<td>{p}<br><small>{probs}</small></td>"
        f"<td>{score}</td><td>{flag}</td><td>{e(r.suggested or '')}</td><td>{note}</td></tr>"
    )


def write_html(report: AuditReport, dest: Path, ws) -> Path:
    names = ws.diagnoses.names
    shown = report.ranked[:SHOWN]
    thumbs = thumbnails_of(ws, [r.image_id for r in shown + report.unranked])
    head = (
        "<tr><th>rank</th><th>image</th><th>raters</th><th>reviewer</th><th>consensus</th>"
        "<th>model P(consensus class)</th><th>P(consensus wrong)</th><th>confident issue</th><th>likely class</th>"
        "<th>note</th></tr>"
    )
    body = "".join(_row(r, thumbs.get(r.image_id), names) for r in shown)
    flagged = "".join(_row(r, thumbs.get(r.image_id), names) for r in report.unranked)
    e = html.escape
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Label audit</title>\
<style>{CSS}</style></head><body>
<h1>Label audit</h1>
<p class="date">Run {e(report.run)} on {e(report.dataset)} ({e(report.task)}: {e(", ".join(report.classes))});\
 generated {e(report.generated_at)}.</p>
<p>{len(report.ranked)} images ranked; about {report.expected_errors:.1f} consensus labels are likely wrong.
Ranked by the probability that the consensus is wrong, from the model's out-of-fold probability and the raters'
and reviewer's diagnoses (Dawid–Skene); images the model confidently assigns to another class \
(confident learning) first.
Send the top ones to a clinician with <code>curate label audit --run RUN --push --reviewer EMAIL --top K</code>.</p>
<table>{head}{body}</table>
<h2>Not ranked ({len(report.unranked)})</h2>
<p>Images whose consensus changed since the run's export (the model learnt the old label) or is no longer final.</p>
<table>{head}{flagged or '<tr><td colspan="10">None.</td></tr>'}</table>
</body></html>"""
    return write_atomic(dest, page, tmp_dir=ws.tmp)
