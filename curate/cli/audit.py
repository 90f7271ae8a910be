"""`curate audit leakage`: an independent second look at an exported version for photos shared across splits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.cli.options import (
    DbOpt,
    HtmlOpt,
    JsonOpt,
    WorkersOpt,
    WorkspaceOpt,
    open_workspace,
    refuse_page_at,
    write_page,
)
from curate.output import console, print_json, shown, stage_bars, table

app = typer.Typer(
    help="Audit exported dataset versions.\n\nExample: curate audit leakage mpox@1.0.0 --strict",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("leakage")
def leakage(
    ref: Annotated[str, typer.Argument(metavar="NAME@VERSION", help="Exported version to audit (or its folder).")],
    threshold: Annotated[
        int | None,
        typer.Option(
            min=4,
            help="Matching keypoints that make a pair suspect (default: the threshold calibrated in bench/leakage.py).",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Exit with code 2 when any pair reaches the threshold, and with 3 when there was nothing to compare "
            "(1: the version could not be read).",
        ),
    ] = False,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    workers: WorkersOpt = 0,
    json_out: JsonOpt = False,
    html: HtmlOpt = None,
) -> None:
    """Find the same photo in two parts of a version: test or external vs train, or two train folds.

    Compares by local-feature geometry (ORB keypoints on the photo without its frame, mirror images
    included, verified by RANSAC), not by the dedupe hashes: watermarked, cropped, mirrored and framed
    copies are found. Writes reports/leakage-NAME-VERSION.html (or --html PATH) with both thumbnails of every
    pair, reports/leakage-NAME-VERSION-threshold-N.html at another --threshold (the page at the calibrated
    threshold, the one the card's audit.json matches, stays);
    a workspace that cannot be written (mounted read-only) gets the table or --json and no page.

    Example: curate audit leakage mpox@1.0.0 --strict
    """
    from curate.export.leakage import THRESHOLD, audit_version, require_comparisons
    from curate.export.leakage_report import report_path, write_report
    from curate.export.writer import recorded_checksum

    ws = open_workspace(workspace, db)
    if html is not None:
        refuse_page_at(html, ws)  # before the audit's minutes, not after
    with stage_bars(json_out) as on_progress:
        ds, audit = audit_version(
            ref, ws.root, threshold or THRESHOLD, on_progress, workers, lambda n, v: recorded_checksum(ws, n, v)
        )
        if strict:
            require_comparisons(ds.ref, audit)
        other = threshold if threshold not in (None, THRESHOLD) else None  # its own page (`report_path`)
        page = write_page(
            lambda dest: write_report(ws, ds.path, ds.ref, audit, dest),
            ws,
            report_path(ws, ds.path, ds.ref, other),
            html,
        )
    if json_out:
        print_json({"version": ds.ref, **audit.as_dict(), "report": page and str(page)})
    else:
        if audit.pairs:  # img<id>, unique in a version; --json and the report give full paths
            console.print(
                table(
                    f"suspect pairs in {ds.ref}",
                    ["first", "image", "second", "image", "matches", "seen as"],
                    [
                        [
                            p.a.part,
                            Path(p.a.file).stem,
                            p.b.part,
                            Path(p.b.file).stem,
                            p.inliers,
                            p.seen_as(),
                        ]
                        for p in audit.pairs
                    ],
                )
            )
        console.print(audit.summary(), highlight=False)
        if page:
            console.print(f"report: {shown(page)}", highlight=False)
    if strict and audit.suspects:
        raise typer.Exit(2)


def register(root: typer.Typer) -> None:
    """Mount `curate audit …` on the root app."""
    root.add_typer(app, name="audit")
