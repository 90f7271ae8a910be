"""`curate label audit` and `curate label candidates`: model-assisted curation, mounted on `curate label`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.cli.options import DbOpt, JsonOpt, WorkspaceOpt, http_urls, open_workspace, write_page
from curate.output import console, err_console, print_json, progress_bar, shown, table


def audit_cmd(
    run: Annotated[
        Path, typer.Option("--run", "-r", help="A finished `train run` folder (its oof_predictions.csv and run.json).")
    ],
    dataset: Annotated[
        str | None,
        typer.Option(help="NAME@VERSION the run must have been trained on (default: the workspace's newest export)."),
    ] = None,
    html: Annotated[
        Path | None, typer.Option(help="Write the HTML page here (default: <workspace>/reports/label-audit.html).")
    ] = None,
    push: Annotated[
        bool,
        typer.Option("--push", help="Send the top images to a new audit round in --reviewer's Label Studio project."),
    ] = False,
    reviewer: Annotated[
        str | None,
        typer.Option(help="Email of the auditing clinician (with --push); never one of the images' raters."),
    ] = None,
    top: Annotated[
        int, typer.Option(help="How many of the most likely errors the audit round holds (default: 50).", min=1)
    ] = 50,
    url: Annotated[
        list[str] | None,
        typer.Option(
            "--url",
            metavar="[EMAIL=]URL",
            callback=http_urls,
            help="Label Studio server as in `curate label push` (default: the reviewer's own).",
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
):
    """Rank likely label errors: a run's out-of-fold probabilities against the consensus and every rating.

    Writes an HTML page (thumbnail, raters' and reviewer's diagnoses, consensus, model probability, rank).
    With --push the top K go to a round of kind "audit"; `curate label pull` then applies the answers
    (README, "Auditing labels") and records every change.

    Example: curate label audit --run runs/mpox-1.0.0/resnet18-s0 --push --reviewer c@clinic.org --top 40
    """
    from curate.audit import audited
    from curate.label.audit import build
    from curate.label.audit_html import write_html

    ws = open_workspace(workspace, db)
    if push and not reviewer:
        raise typer.BadParameter("--push needs --reviewer EMAIL", param_hint="--reviewer")
    rep = build(ws, run, dataset)
    page = write_page(lambda dest: write_html(rep, dest, ws), ws, ws.reports / "label-audit.html", html)
    pushed = None
    if push:
        from curate.label.audit_push import push_audit
        from curate.label.rounds import COPIES_BAR
        from curate.label.servers import resolve

        servers = resolve(ws, url)
        with audited(ws, "label audit", {"run": str(run), "reviewer": reviewer, "top": top, "url": url}) as cmd:
            with progress_bar(COPIES_BAR, json_out) as on_progress:
                pushed = push_audit(ws, servers, rep, reviewer, top, on_progress)
            cmd.summary = {"round": pushed.round_id, "pushed": pushed.pushed}
    if json_out:
        print_json({**rep.to_dict(), "html": page and str(page), "pushed": pushed and pushed.__dict__})
        return
    console.print(
        table(
            f"Most likely label errors ({rep.dataset}, about {rep.expected_errors:.1f} in {len(rep.ranked)})",
            ["rank", "image", "consensus", "raters", "reviewer", "P(consensus class)", "P(wrong)", "likely"],
            [
                [
                    r.rank,
                    r.image_id,
                    r.consensus,
                    ", ".join(str(d) for _, d in r.raters),
                    r.reviewer[1] if r.reviewer else "",
                    r.self_confidence,
                    r.score,
                    r.suggested,
                ]
                for r in rep.ranked[:20]
            ],
        )
    )
    if rep.unranked:
        console.print(
            f"{len(rep.unranked)} image(s) not ranked (relabelled since the run, or no longer final): "
            + ", ".join(f"{r.image_id} ({r.why_not_ranked})" for r in rep.unranked[:5]),
            highlight=False,
        )
    if page:
        console.print(f"HTML: {shown(page)}")
    if pushed is not None:
        held = f" ({pushed.already} of the top {top} already in it)" if pushed.already else ""
        console.print(f"pushed {pushed.pushed} image(s) to {reviewer}'s audit round {pushed.round_id}{held}")


def candidates_cmd(
    limit: Annotated[int | None, typer.Option(help="List at most N.", min=1)] = None,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
):
    """Files of the images `curate label push` would send next, one per line (to feed `train predict`).

    With --json: a list of {"image_id", "path"}, in the same order. None left: nothing on stdout, and a note on
    stderr (`train predict` given no file then says its argument is missing).

    Example: (umask 077; train predict --run RUN --json --no-gradcam $(curate label candidates) > predictions.json)
    """
    from sqlmodel import select

    from curate.label.rounds import unrated_image_ids
    from db.models import Image

    ws = open_workspace(workspace, db)
    with ws.session() as s:
        ids = unrated_image_ids(s)[:limit]
        shas = dict(s.exec(select(Image.id, Image.sha256).where(Image.id.in_(ids))).all()) if ids else {}
    paths = [(i, str(ws.store.path_for(shas[i]))) for i in ids]
    if not paths:
        err_console.print("no image waits for a rating round: nothing to send", highlight=False)
    if json_out:
        print_json([{"image_id": i, "path": path} for i, path in paths])
        return
    for _, path in paths:
        typer.echo(path)


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_cmd)
    app.command("candidates")(candidates_cmd)
