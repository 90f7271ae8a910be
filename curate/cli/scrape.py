"""`curate scrape`: images from a web search engine (or a list of URLs), with provenance."""
from __future__ import annotations

from collections import Counter
from typing import Annotated, List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from curate.audit import audited
from curate.cli.options import DbOpt, JsonOpt, WorkspaceOpt, console, err_console, open_workspace, print_json, reported, table
from curate.intake.scrape import DEFAULT_MAX, ScrapeOptions, ScrapeReport, scrape as run_scrape, validate
from curate.intake.scrape_engines import ENGINES, LICENCES


def scrape(
    queries: Annotated[List[str], typer.Argument(help="Search terms (one crawl each); with --engine urls, files of image URLs.")],
    engine: Annotated[str, typer.Option("--engine", "-e", help=f"One of: {', '.join(ENGINES)} (google is refused: its parser finds nothing today).")] = "bing",
    max_num: Annotated[int, typer.Option("--max", "-n", help="Images each query should have in total, across runs; 0: no limit.")] = DEFAULT_MAX,
    licence: Annotated[Optional[str], typer.Option("--license", "--licence", help=f"Licence filter asked of the engine: {', '.join(LICENCES)}. Recorded as requested, not verified.")] = None,
    source: Annotated[Optional[str], typer.Option("--source", "-s", help="Source name (default: web-<engine>).")] = None,
    threads: Annotated[int, typer.Option(help="Download threads.")] = 4,
    min_side: Annotated[int, typer.Option(help="Reject images whose shorter side is below this many pixels (0: off).")] = 0,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each network read; a download or result page gets 6 x this in all.")] = 10.0,
    allow_private_hosts: Annotated[bool, typer.Option("--allow-private-hosts", help="Also fetch images from loopback, private and link-local addresses (refused by default, except the engine's own host).")] = False,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Fetch search results, keep only fully decodable images, record where each came from.

    Safe to interrupt and re-run: URLs already recorded are skipped and each query fills up to --max.
    Flickr needs $FLICKR_API_KEY.

    Example: curate scrape "monkeypox" "mpox rash" --engine bing --max 200 --license cc
    """
    options = ScrapeOptions(engine=engine, queries=tuple(queries), max_num=max_num, licence=licence, source=source,
                            threads=threads, min_side=min_side, timeout=timeout,
                            allow_private_hosts=allow_private_hosts)
    with reported():
        validate(options)  # refuse before the workspace is touched (e.g. --engine google)
    ws = open_workspace(workspace, db)
    with reported():
        args = {"engine": engine, "queries": list(queries), "max": max_num, "licence": licence, "source": source,
                "allow_private_hosts": allow_private_hosts}
        with audited(ws, "scrape", args) as run, Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            console=err_console, disable=json_out, transient=True,  # one bar per query, on stderr like every bar
        ) as progress:
            bars: dict[str, int] = {}

            def on_progress(query: str, now: int, wanted: Optional[int]) -> None:
                if query not in bars:
                    bars[query] = progress.add_task(f"{engine}: {query[:40]}", total=wanted)
                progress.update(bars[query], completed=now, total=wanted)

            report = run_scrape(ws, options, run_id=run.id, on_progress=on_progress)
            run.summary = report.as_dict()
    if json_out:
        print_json(report.as_dict())
    else:
        render_scrape(report)


def render_scrape(report: ScrapeReport) -> None:
    rows = [[q.query, q.total, q.new_for_query, q.added, q.provenance, q.skipped, len(q.rejected), len(q.failed)]
            for q in report.queries]
    console.print(table(f"scrape {report.engine} (source {report.source}, licence requested: {report.licence_requested or 'any'})",
                        ["query", "images now", "new this run", "new to store", "new provenance", "known URLs skipped",
                         "rejected", "failed (retried next run)"], rows))
    reasons = Counter(r for q in report.queries for _, r in q.rejected)
    if reasons:
        console.print(table("rejected", ["reason", "files"], [[r, n] for r, n in reasons.most_common()]))
    for q in report.queries:
        for e in q.page_errors:
            console.print(f"[yellow]warning:[/] {report.engine} {q.query!r}: {e}", highlight=False)
    console.print(f"done in {report.seconds:.1f} s")


def register(app: typer.Typer) -> None:
    """Mount this module's commands on the root app."""
    app.command()(scrape)
