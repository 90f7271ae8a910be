"""`curate scrape`: images from a web search engine (or a list of URLs), with provenance."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer
from rich.markup import escape

from curate.cli.options import DbOpt, JsonOpt, WorkspaceOpt, open_workspace
from curate.intake.scrape.options import DEFAULT_MAX, MAX_THREADS, MAX_TIMEOUT, EngineName, Licence, ScrapeOptions
from curate.output import console, print_json, printable, shown, stage_bars, table


def scrape(
    queries: Annotated[
        list[str], typer.Argument(help="Search terms (one crawl each); with --engine urls, files of image URLs.")
    ],
    engine: Annotated[
        EngineName,
        typer.Option("--engine", "-e", help="Search engine (google is refused: its parser finds nothing today)."),
    ] = EngineName.BING,
    max_num: Annotated[
        int,
        typer.Option("--max", "-n", min=0, help="Images each query should have in total, across runs; 0: no limit."),
    ] = DEFAULT_MAX,
    licence: Annotated[
        Licence | None,
        typer.Option(
            "--license", "--licence", help="Licence filter asked of the engine. Recorded as requested, not verified."
        ),
    ] = None,
    source: Annotated[str | None, typer.Option("--source", "-s", help="Source name (default: web-<engine>).")] = None,
    threads: Annotated[int, typer.Option(min=1, max=MAX_THREADS, help="Download threads.")] = 4,
    min_side: Annotated[
        int, typer.Option(min=0, help="Reject images whose shorter side is below this many pixels (0: off).")
    ] = 0,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            max=MAX_TIMEOUT,
            help="Seconds to wait for each network read; a download or result page gets 6 x this in all.",
        ),
    ] = 10.0,
    allow_private_hosts: Annotated[
        bool,
        typer.Option(
            "--allow-private-hosts",
            help="Also fetch images from loopback, private and link-local addresses "
            "(refused by default, except the engine's own host).",
        ),
    ] = False,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Fetch search results, keep only fully decodable images, record where each came from.

    Safe to interrupt and re-run: URLs already recorded are skipped and each query fills up to --max; originals
    missing from the store are fetched again from their URLs first. Flickr needs $FLICKR_API_KEY.

    Example: curate scrape "monkeypox" "mpox rash" --engine bing --max 200 --license cc
    """
    from curate.audit import audited
    from curate.intake.scrape.run import scrape as run_scrape
    from curate.intake.scrape.run import validate

    options = ScrapeOptions(
        engine=engine,
        queries=tuple(queries),
        max_num=max_num,
        licence=licence,
        source=source,
        threads=threads,
        min_side=min_side,
        timeout=timeout,
        allow_private_hosts=allow_private_hosts,
    )
    validate(options)  # refuse before the workspace is touched (e.g. --engine google)
    ws = open_workspace(workspace, db)
    args = {
        "engine": engine.value,
        "queries": list(queries),
        "max": max_num,
        "licence": options.licence_requested,
        "source": source,
        "allow_private_hosts": allow_private_hosts,
        **({"min_side": min_side} if min_side else {}),  # only then: a default run's key is as it always was
    }
    with (
        audited(ws, "scrape", args) as run,
        stage_bars(json_out, lambda query: f"{engine}: {shown(query[:40])}") as on_progress,
    ):
        report = run_scrape(ws, options, run_id=run.id, on_progress=on_progress)
        run.summary = report.as_dict()
    if json_out:
        print_json(report.as_dict())
    else:
        render_scrape(report)


def render_scrape(report) -> None:
    """The per-query table, rejection and failure reasons, and each query's page warnings."""
    rows = [
        [q.query, q.total, q.new_for_query, q.added, q.provenance, q.skipped, len(q.rejected), len(q.failed)]
        for q in report.queries
    ]
    title = f"scrape {report.engine} (source {report.source}, licence requested: {report.licence_requested or 'any'})"
    console.print(
        table(
            title,
            [
                "query",
                "images now",
                "new this run",
                "new to store",
                "new provenance",
                "URLs skipped (known or repeated)",
                "rejected",
                "failed (retried next run)",
            ],
            rows,
        )
    )
    reasons = Counter(r for q in report.queries for _, r in q.rejected)
    if reasons:
        console.print(table("rejected", ["reason", "files"], [[r, n] for r, n in reasons.most_common()]))
    failures = Counter(r for q in report.queries for _, r in q.failed)  # a refused host is refused again: say why
    if failures:
        title = "failed (tried again on the next run)"
        console.print(table(title, ["reason", "URLs"], [[r, n] for r, n in failures.most_common()]))
    if report.restored:
        console.print(f"restored {report.restored} original(s) missing from the store, fetched again from their URL")
    for url, why in report.not_restored:
        said = printable(f"original of {url} missing from the store, not restored: {why}")
        console.print(f"[yellow]warning:[/] {escape(said)}", highlight=False)
    for q in report.queries:
        for e in q.page_errors:
            console.print(f"[yellow]warning:[/] {escape(f'{report.engine} {q.query!r}: {e}')}", highlight=False)
    console.print(f"done in {report.seconds:.1f} s")


def register(app: typer.Typer) -> None:
    """Mount this module's commands on the root app."""
    app.command()(scrape)
