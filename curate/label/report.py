"""Labeling progress and agreement: per round and rater, Cohen's kappa, confusion matrix, outcomes."""
from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlmodel import Session, func, select

from curate.files import write_atomic
from curate.label.agreement import Agreement, agreement
from curate.label.diagnoses import STATUSES, DiagnosisList
from curate.label.pull import collect
from db.models.label import Consensus, LabelAnnotation, LabelProject, LabelRound, LabelTask



@dataclass
class Progress:
    round: str
    kind: str
    rater: str
    ls_project_id: int
    tasks: int
    labelled: int


@dataclass
class LabelReport:
    progress: list[Progress]
    outcomes: dict[str, int]
    agreement: Agreement
    names: dict[str, str]  # diagnosis code -> the name clinicians read

    def to_dict(self) -> dict:
        return {"progress": [asdict(p) for p in self.progress], "outcomes": self.outcomes,
                "agreement": asdict(self.agreement), "diagnoses": self.names}


def build(s: Session, diagnoses: DiagnosisList) -> LabelReport:
    progress = []
    for rnd, proj in s.exec(select(LabelRound, LabelProject).join(LabelProject).order_by(LabelRound.id, LabelProject.id)).all():
        tasks = s.exec(select(func.count()).select_from(LabelTask).where(LabelTask.project_id == proj.id)).one()
        done = s.exec(select(func.count(func.distinct(LabelTask.id))).select_from(LabelTask)
                      .join(LabelAnnotation, LabelAnnotation.task_id == LabelTask.id)
                      .where(LabelTask.project_id == proj.id, LabelAnnotation.withdrawn == False)).one()  # noqa: E712
        progress.append(Progress(rnd.name, rnd.kind, proj.rater, proj.ls_project_id, tasks, done))
    outcomes = {k: 0 for k in STATUSES}
    for status, n in s.exec(select(Consensus.status, func.count()).group_by(Consensus.status)).all():
        outcomes[status] = n
    return LabelReport(progress, outcomes, rater_agreement(s, diagnoses.codes), diagnoses.names)


def rater_agreement(s: Session, labels: list[str]) -> Agreement:
    """Cohen's kappa between the two blind raters, over images both diagnosed (the export's card uses it too)."""
    pairs = [(i.ratings[0].diagnosis, i.ratings[1].diagnosis) for i in collect(s).values()
             if len(i.ratings) == 2 and i.ratings[0].diagnosis and i.ratings[1].diagnosis]
    return agreement(pairs, labels)


def confusion_png(ag: Agreement, names: dict[str, str]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [names.get(d, d) for d in ag.labels]
    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=100)
    ax.imshow(ag.matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("second rater")
    ax.set_ylabel("first rater")
    for i, row in enumerate(ag.matrix):
        for j, v in enumerate(row):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", color="black")
    kappa = "n/a" if ag.kappa is None else f"{ag.kappa:.3f}"
    ax.set_title(f"Rater vs rater (n={ag.n}, Cohen's kappa {kappa})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_html(report: LabelReport, dest: Path, tmp: Path) -> Path:
    """One self-contained page (the matrix is embedded); written to tmp and renamed into place."""
    png = base64.b64encode(confusion_png(report.agreement, report.names)).decode()
    e = html.escape
    rows = "".join(f"<tr><td>{e(p.round)}</td><td>{e(p.kind)}</td><td>{e(p.rater)}</td><td>{p.tasks}</td><td>{p.labelled}</td></tr>"
                   for p in report.progress)
    outs = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in report.outcomes.items())
    per = "".join(f"<tr><td>{e(report.names.get(d, d))}</td><td>{'' if k is None else f'{k:.3f}'}</td></tr>"
                  for d, k in report.agreement.per_diagnosis.items())
    k = report.agreement.kappa
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Labeling report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1.5em}}td,th{{border:1px solid #ccc;padding:4px 8px}}</style></head><body>
<h1>Labeling report</h1>
<h2>Progress</h2><table><tr><th>round</th><th>kind</th><th>rater</th><th>tasks</th><th>labelled</th></tr>{rows}</table>
<h2>Outcomes</h2><table>{outs}</table>
<h2>Agreement</h2><p>Cohen's kappa (all diagnoses): <b>{'n/a' if k is None else f'{k:.3f}'}</b> over {report.agreement.n} doubly-rated images</p>
<table><tr><th>diagnosis (one vs rest)</th><th>kappa</th></tr>{per}</table>
<img alt="rater vs rater confusion matrix" src="data:image/png;base64,{png}">
<script type="application/json" id="data">{e(json.dumps(report.to_dict()))}</script></body></html>"""
    return write_atomic(dest, page, tmp_dir=tmp)
