"""`curate label`: dual-rater rounds in Label Studio, pull, adjudication, consensus report."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curate.cli.options import DbOpt, JsonOpt, WorkspaceOpt, console, open_workspace, print_json, reported, table

app = typer.Typer(help="Label images in Label Studio: two blind raters, a reviewer for disputes.", no_args_is_help=True)
UrlOpt = Annotated[Optional[list[str]], typer.Option("--url", metavar="[EMAIL=]URL", help=(
    "Label Studio server of one clinician as EMAIL=URL (repeat for each), or one URL for everyone not mapped "
    "(default: each clinician's own server from `curate studio`). One steward key, $LABEL_STUDIO_API_KEY, opens them all."))]
RuleOpt = Annotated[str, typer.Option("--third-opinion", help="When the reviewer picks a third diagnosis: 'discard' (the paper, default) or 'reviewer'.")]


def _rules(third: str):
    from curate.errors import ConfigError
    from curate.label.consensus import Rules

    if third not in ("discard", "reviewer"):
        raise ConfigError(f"--third-opinion must be 'discard' or 'reviewer', not {third!r}")
    return Rules(third_opinion=third)  # type: ignore[arg-type]


@app.command()
def push(
    raters: Annotated[str, typer.Option(help="Two rater emails, comma-separated.")],
    limit: Annotated[Optional[int], typer.Option(help="Push at most N new images.")] = None,
    workspace: WorkspaceOpt = None, db: DbOpt = None, url: UrlOpt = None, json_: JsonOpt = False,
):
    """Send new dedupe representatives to each rater's project on the rater's own server.

    Example: curate label push --raters a@clinic.org,b@clinic.org --limit 200
    """
    from curate.audit import audited
    from curate.label.rounds import push as do_push
    from curate.label.servers import resolve

    ws = open_workspace(workspace, db)
    with reported():
        servers = resolve(ws, url)
        with audited(ws, "label push", {"raters": raters, "limit": limit, "url": url}) as run:
            res = do_push(ws, servers, raters.split(","), limit)
            run.summary = {"round": res.round_id, "pushed": res.pushed}
    print_json(res.__dict__) if json_ else console.print(f"pushed {res.pushed} task(s) into round {res.round_id}: {res.projects}")


@app.command()
def pull(workspace: WorkspaceOpt = None, db: DbOpt = None, url: UrlOpt = None, third_opinion: RuleOpt = "discard", json_: JsonOpt = False):
    """Fetch every annotation of every round (each project from its clinician's server) and recompute consensus.

    Example: curate label pull
    """
    from curate.audit import audited
    from curate.label.pull import pull as do_pull
    from curate.label.servers import resolve

    ws = open_workspace(workspace, db)
    with reported():
        rules = _rules(third_opinion)
        servers = resolve(ws, url)
        with audited(ws, "label pull", {"url": url, "third_opinion": third_opinion}) as run:
            res = do_pull(ws, servers, rules)
            run.summary = res.__dict__
    if json_:
        print_json(res.__dict__)
    else:
        console.print(f"{res.annotations} annotation(s) in {res.projects} project(s): {res.new} new, {res.revised} revised, "
                      f"{res.withdrawn} withdrawn, {res.unchanged} unchanged")
        console.print(table("Consensus", ["status", "images"], [[k, v] for k, v in sorted(res.consensus.items())]))


@app.command()
def adjudicate(
    reviewer: Annotated[str, typer.Option(help="Email of the third clinician.")],
    workspace: WorkspaceOpt = None, db: DbOpt = None, url: UrlOpt = None, third_opinion: RuleOpt = "discard",
    json_: JsonOpt = False,
):
    """Push exactly the disputed images to the reviewer: raters shown as Rater 1 / Rater 2 with their boxes.

    Under the paper's rule (default) the reviewer chooses one of the two disputed diagnoses or
    "Neither (discard this image)"; with --third-opinion reviewer every diagnosis is offered.

    Example: curate label adjudicate --reviewer c@clinic.org
    """
    from curate.audit import audited
    from curate.label.rounds import adjudicate as do_adj
    from curate.label.servers import resolve

    ws = open_workspace(workspace, db)
    with reported():
        _rules(third_opinion)
        servers = resolve(ws, url)
        with audited(ws, "label adjudicate", {"reviewer": reviewer, "url": url, "third_opinion": third_opinion}) as run:
            res = do_adj(ws, servers, reviewer, third_opinion)
            run.summary = {"round": res.round_id, "pushed": res.pushed}
    print_json(res.__dict__) if json_ else console.print(f"pushed {res.pushed} disputed image(s) to {reviewer}")


@app.command()
def report(
    workspace: WorkspaceOpt = None, db: DbOpt = None, json_: JsonOpt = False,
    html: Annotated[Optional[Path], typer.Option(help="Write the HTML page here (default: <workspace>/reports/labeling.html).")] = None,
):
    """Progress per round and rater, Cohen's kappa, confusion matrix, outcome counts.

    Example: curate label report --json
    """
    from curate.label.report import build, write_html

    ws = open_workspace(workspace, db)
    with reported():
        with ws.session() as s:
            rep = build(s)
        page = write_html(rep, html or ws.reports / "labeling.html", ws.tmp)
    if json_:
        print_json({**rep.to_dict(), "html": str(page)})
        return
    console.print(table("Progress", ["round", "kind", "rater", "tasks", "labelled"],
                        [[p.round, p.kind, p.rater, p.tasks, p.labelled] for p in rep.progress]))
    console.print(table("Outcomes", ["status", "images"], [[k, v] for k, v in rep.outcomes.items()]))
    ag = rep.agreement
    console.print(table("Agreement (Cohen's kappa)", ["diagnosis", "kappa"],
                        [["all", ag.kappa]] + [[d, k] for d, k in ag.per_diagnosis.items() if k is not None]))
    console.print(f"HTML report: {page}")


def register(root: typer.Typer) -> None:
    """Mount this module's commands on the root app."""
    root.add_typer(app, name="label")
