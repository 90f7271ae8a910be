"""`curate label`: dual-rater rounds in Label Studio, pull, adjudication, consensus report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from curate.cli import label_audit
from curate.cli.choices import PushOrder
from curate.cli.options import DbOpt, JsonOpt, WorkspaceOpt, http_urls, open_workspace, write_page
from curate.label.consensus import LowQuality, ThirdOpinion
from curate.output import console, err_console, print_json, progress_bar, table

app = typer.Typer(
    help="Label images in Label Studio: two blind raters, a reviewer for disputes.\n\n"
    "Example: curate label push --raters a@clinic.org,b@clinic.org",
    no_args_is_help=True,
    rich_markup_mode=None,
)
UrlOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--url",
        metavar="[EMAIL=]URL",
        callback=http_urls,
        help=(
            "Label Studio server of one clinician as EMAIL=URL (repeat for each), or one URL for everyone not mapped "
            "(default: each clinician's own server from `curate studio`). "
            "One steward key, $LABEL_STUDIO_API_KEY, opens them all."
        ),
    ),
]
RuleOpt = Annotated[
    ThirdOpinion | None,
    typer.Option(
        "--third-opinion",
        help="When the reviewer picks a diagnosis neither rater gave: discard the image (the paper) or "
        "take the reviewer's. Recorded in the catalogue; default: the recorded rule (discard until changed).",
    ),
]
LowQualityOpt = Annotated[
    LowQuality | None,
    typer.Option(
        "--low-quality",
        help="Which \"Image quality too low\" flags exclude an image: any (either rater's), both (both raters', "
        "the default) or never. Recorded in the catalogue; default: the recorded rule (both until changed).",
    ),
]


@app.command()
def push(
    raters: Annotated[str, typer.Option(help="Two rater emails, comma-separated.")],
    limit: Annotated[int | None, typer.Option(min=1, help="Push at most N new images.")] = None,
    order: Annotated[
        PushOrder,
        typer.Option(
            help="Order of the new tasks (the order raters get them): catalogue (image id, the default), "
            "random (--seed), or uncertainty (most informative first, from --predictions)."
        ),
    ] = PushOrder.CATALOGUE,
    seed: Annotated[int, typer.Option(help="Seed of --order random (default: 0).")] = 0,
    predictions: Annotated[
        Path | None,
        typer.Option(
            help="`train predict --json` output for the candidates (--order uncertainty); "
            "see `curate label candidates`."
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
):
    """Send new dedupe representatives to each rater's project on the rater's own server.

    Raters never see a model output: --order uncertainty only changes the order of the tasks.

    Example: curate label push --raters a@clinic.org,b@clinic.org --limit 200 --order uncertainty --predictions p.json
    """
    from curate.audit import audited
    from curate.errors import ConfigError
    from curate.label.order import Order, read_predictions
    from curate.label.rounds import COPIES_BAR, rating_pair
    from curate.label.rounds import push as do_push
    from curate.label.servers import resolve

    rating_pair(raters.split(","))  # a typo in --raters is told before any server or key is asked for
    ws = open_workspace(workspace, db)
    if order == PushOrder.UNCERTAINTY and predictions is None:
        raise ConfigError("--order uncertainty needs --predictions FILE (train predict --json output)")
    probs = read_predictions(predictions) if predictions else None
    servers = resolve(ws, url)
    with audited(
        ws, "label push", {"raters": raters, "limit": limit, "url": url, "order": order.value, "seed": seed}
    ) as run:
        with progress_bar(COPIES_BAR, json_out) as on_progress:
            res = do_push(ws, servers, raters.split(","), limit, Order(order.value), seed, probs, on_progress)
        run.summary = {"round": res.round_id, "pushed": res.pushed}
    if json_out:
        print_json(res.__dict__)
    else:
        render_push(res)


def render_push(res) -> None:
    """Images and tasks per rater: every image of a rating round goes to both raters, one task each."""
    if not res.projects:
        console.print("nothing to push: every labelable image is already in a rating round")
        return
    tasks = res.tasks or dict.fromkeys(res.projects, res.pushed // len(res.projects))
    # before: pushed // raters for every row, so a task made again for one rater showed as 0 for both
    got = sum(1 for n in tasks.values() if n)  # before: every rater of the round, though one got a task
    whom = f"{len(res.projects)} raters" if got == len(res.projects) else f"{got} of {len(res.projects)} raters"
    console.print(
        table(
            f"round {res.round_id}: {max(tasks.values(), default=0)} image(s) sent to {whom} ({res.pushed} task(s))",
            ["rater", "Label Studio project", "images", "tasks"],
            [[r, project, tasks.get(r, 0), tasks.get(r, 0)] for r, project in sorted(res.projects.items())],
        )
    )
    if res.uncompared:
        console.print(
            f"[yellow]warning:[/] {res.uncompared} of them were never compared by `curate dedupe`: a copy of one may "
            "be labelled twice or land in another split; run `curate dedupe` before pushing"
        )


@app.command()
def pull(
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    third_opinion: RuleOpt = None,
    low_quality: LowQualityOpt = None,
    json_out: JsonOpt = False,
):
    """Fetch every annotation of every round (each project from its clinician's server) and recompute consensus.

    Rules given with --low-quality or --third-opinion are recorded in the catalogue; every later recomputation
    uses the recorded ones.

    Example: curate label pull --low-quality any
    """
    from curate.audit import audited
    from curate.export.flagged import flagged_in_versions, flagged_note
    from curate.label.pull import pull as do_pull
    from curate.label.rules import explain
    from curate.label.servers import resolve

    ws = open_workspace(workspace, db)
    args = {"third_opinion": third_opinion and third_opinion.value, "low_quality": low_quality and low_quality.value}
    servers = resolve(ws, url)
    with audited(ws, "label pull", {"url": url, **args}) as run:
        with progress_bar("tasks read from Label Studio", json_out) as on_progress:
            res = do_pull(ws, servers, low_quality=low_quality, third_opinion=third_opinion, on_progress=on_progress)
        run.summary = res.__dict__
    with ws.session() as s:  # a flag pulled now may concern a version exported before it
        flagged = flagged_in_versions(s, ws.root)
    if json_out:
        print_json({**res.__dict__, "flagged_in_versions": [f.as_dict() for f in flagged]})
    else:
        console.print(
            f"{res.annotations} annotation(s) in {res.projects} project(s): {res.new} new, {res.revised} revised, "
            f"{res.withdrawn} withdrawn, {res.unchanged} unchanged"
        )
        console.print(f"rules{' (changed and recorded)' if res.rules_changed else ''}: {explain(res.rules)}")
        if res.audit.get("tasks"):
            a = res.audit
            console.print(
                f"audit: {a['answered']} of {a['tasks']} image(s) answered: {a['kept']} kept, "
                f"{a['relabelled']} relabelled, {a['discarded']} discarded (history: consensus_history)"
            )
        console.print(table("Consensus", ["status", "images"], [[k, v] for k, v in sorted(res.consensus.items())]))
    for line in res.warnings + ([flagged_note(flagged)] if flagged else []):
        err_console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)


@app.command()
def adjudicate(
    reviewer: Annotated[str, typer.Option(help="Email of the third clinician.")],
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    third_opinion: RuleOpt = None,
    json_out: JsonOpt = False,
):
    """Push exactly the disputed images to the reviewer: raters shown as Rater 1 / Rater 2 with their boxes.

    Which rater is "Rater 1" is drawn for each image, so the reviewer cannot follow one clinician's answers.

    Under the paper's rule (discard) the reviewer chooses one of the two disputed diagnoses or
    "Neither (discard this image)"; under the reviewer rule every declared diagnosis is offered.
    The rule is the one recorded in the catalogue; --third-opinion changes and records it, as on pull.

    Example: curate label adjudicate --reviewer c@clinic.org
    """
    from curate.audit import audited
    from curate.label.rounds import COPIES_BAR
    from curate.label.rounds import adjudicate as do_adj
    from curate.label.servers import resolve

    ws = open_workspace(workspace, db)
    servers = resolve(ws, url)
    with audited(
        ws,
        "label adjudicate",
        {"reviewer": reviewer, "url": url, "third_opinion": third_opinion and third_opinion.value},
    ) as run:
        with progress_bar(COPIES_BAR, json_out) as on_progress:
            res = do_adj(ws, servers, reviewer, third_opinion, on_progress)
        run.summary = {"round": res.round_id, "pushed": res.pushed}
    if json_out:
        print_json(res.__dict__)
    else:
        console.print(f"pushed {res.pushed} disputed image(s) to {reviewer}")
        if res.asked_again:
            console.print(
                f"of which {len(res.asked_again)} asked again (image {', '.join(map(str, res.asked_again[:10]))}"
                f"{' …' if len(res.asked_again) > 10 else ''}): a rater changed their diagnosis after {reviewer} "
                "answered, so that answer no longer counts"
            )
        if res.left_queue:
            console.print(
                f"took {len(res.left_queue)} image(s) out of {reviewer}'s queue (image "
                f"{', '.join(map(str, res.left_queue[:10]))}{' …' if len(res.left_queue) > 10 else ''}): their raters "
                "agree now, or one withdrew"
            )
        if res.rated_by_reviewer:
            console.print(
                f"left {len(res.rated_by_reviewer)} disputed image(s) that {reviewer} rated for another reviewer "
                "(curate label adjudicate --reviewer <a clinician who rated neither>)"
            )


@app.command()
def report(
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    html: Annotated[
        Path | None,
        typer.Option(
            help="Write the HTML page here (default: <workspace>/reports/labeling.html); "
            "the confusion-matrix PNGs go beside it as <name>-confusion.png and <name>-raters.png."
        ),
    ] = None,
):
    """Progress per round and rater, Cohen's kappa and Gwet's AC1, confusion matrix, outcome counts and what each means.

    Per rater and reviewer: agreement with the final consensus, a confusion matrix against it, and a Dawid-Skene
    estimate of their accuracy. The dated HTML page also shows a few disputed and discarded images (never one
    flagged as identifiable).

    Example: curate label report --json
    """
    from curate.label.report import OUTCOME_MEANINGS, build
    from curate.label.report_html import write_html

    ws = open_workspace(workspace, db)
    with ws.session() as s:
        rep = build(s, ws.diagnoses)
    files = write_page(lambda dest: write_html(rep, dest, ws), ws, ws.reports / "labeling.html", html)
    if json_out:
        print_json(
            {
                **rep.to_dict(),
                "html": files and str(files.html),
                "confusion_png": files and str(files.confusion_png),
                "raters_png": files and files.raters_png and str(files.raters_png),
            }
        )
        return
    console.print(
        table(
            "Progress",
            ["round", "kind", "rater", "tasks", "labelled", "skipped"],
            [[p.round, p.kind, p.rater, p.tasks, p.labelled, p.skipped] for p in rep.progress],
        )
    )
    console.print(
        table(
            "Outcomes",
            ["status", "images", "of which"],
            [
                [k, v, "; ".join(f"{why}: {n}" for why, n in rep.details.get(k, {}).items())]
                for k, v in rep.outcomes.items()
            ],
        )
    )
    for k in rep.outcomes:
        console.print(f"  {k}: {OUTCOME_MEANINGS[k]}", highlight=False, markup=False)
    ag = rep.agreement
    console.print(
        table(
            "Agreement (Cohen's kappa, Gwet's AC1)",
            ["diagnosis", "kappa", "AC1"],
            [["all", ag.kappa, ag.ac1]]
            + [
                [rep.names.get(d, d), k, ag.ac1_per_diagnosis.get(d)]
                for d, k in ag.per_diagnosis.items()
                if k is not None or ag.ac1_per_diagnosis.get(d) is not None  # a rare diagnosis: AC1 is why it's here
            ],
        )
    )
    console.print(
        table(
            "Raters (agreement with the final consensus; accuracy estimated by Dawid-Skene)",
            ["email", "role", "diagnosed", "with consensus", "agreement", "estimated accuracy"],
            [
                [
                    q.rater,
                    q.role,
                    q.diagnosed,
                    q.compared,
                    q.agreement,
                    "n/a (too few images)" if q.estimated_accuracy is None else q.estimated_accuracy,
                ]
                for q in rep.raters
            ],
        )
    )
    if files:
        console.print(
            f"HTML report: {files.html} (generated {rep.generated_at}); confusion matrix: {files.confusion_png}"
            + (f"; per rater: {files.raters_png}" if files.raters_png else "")
        )


def register(root: typer.Typer) -> None:
    """Mount this module's commands on the root app."""
    label_audit.register(app)
    root.add_typer(app, name="label")
