"""`curate dedupe` (run), `curate dedupe split|merge|review|decisions|score`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from curate.cli.choices import DedupeMethod, SearchBackend
from curate.cli.options import DbOpt, HtmlOpt, JsonOpt, WorkersOpt, WorkspaceOpt, open_workspace, write_page
from curate.output import console, print_json, stage_bars, table

ID_MAX = 2**63 - 1  # SQLite's largest INTEGER: a bigger id is refused by typer, naming the argument, not by SQLite
app = typer.Typer(rich_markup_mode=None)  # help comes from the `dedupe` callback below


def _refuse_options_before(ctx: typer.Context) -> None:
    """A usage error (exit 2) for options typed before a sub-command (`curate dedupe -w B split 5 6`): they are the
    run's own and never reached it. Before, they were dropped without a word, so that split went into the workspace
    of the current folder, not B's, and `--json` printed a table."""
    # by name: typer 0.2x carries its own click, whose ParameterSource is not click's
    given = [p for p in ctx.command.params if getattr(ctx.get_parameter_source(p.name), "name", "") == "COMMANDLINE"]
    if not given:
        return
    sub = ctx.invoked_subcommand
    takes = {o for p in ctx.command.get_command(ctx, sub).params for o in p.opts}

    def name(p) -> str:  # a flag by both its names: which was typed is not kept
        return "/".join([max(p.opts, key=len), *p.secondary_opts])

    moved = [name(p) for p in given if set(p.opts) & takes]
    kept = [name(p) for p in given if not set(p.opts) & takes]
    said = [f"put {', '.join(moved)} after `{sub}`"] if moved else []
    said += [f"`curate dedupe {sub}` has no {', '.join(kept)}"] if kept else []
    ctx.fail(f"options typed before `{sub}` do not reach it: {'; '.join(said)}")


@app.callback(invoke_without_command=True)
def dedupe(
    ctx: typer.Context,
    min_side: Annotated[
        int,
        typer.Option(
            min=1,
            max=10_000,
            help="Shorter side, in pixels, below which an image is kept out of labelling (default: 128).",
        ),
    ] = 128,
    neighbours: Annotated[
        int,
        typer.Option(
            min=1,
            max=50,
            help="How many most-alike pictures each picture proposes for verification, 1-50 (region-phash; default: "
            "5). More finds more heavily edited copies and costs more verification.",
        ),
    ] = 5,
    radius: Annotated[
        int, typer.Option(min=0, max=32, help="Hamming radius of the phash method's search, 0-32 bits (default: 14).")
    ] = 14,
    similarity: Annotated[
        float,
        typer.Option(
            min=0.5,
            max=1.0,
            help="Hash (DCT) correlation a candidate needs before geometric verification decides, 0.5-1.0 (default: "
            "0.60).",
        ),
    ] = 0.60,
    method: Annotated[
        DedupeMethod, typer.Option(help="region-phash (crop/rotation/bar robust) or phash (default: region-phash).")
    ] = DedupeMethod.REGION_PHASH,
    backend: Annotated[
        SearchBackend,
        typer.Option(help="The phash method's search back-end: auto, brute-force or multi-index (default: auto)."),
    ] = SearchBackend.AUTO,
    cnn: Annotated[
        bool, typer.Option("--cnn", help="Add the CNN-embedding stage (needs torch; hash-only without it).")
    ] = False,
    cnn_similarity: Annotated[
        float, typer.Option(min=0.5, max=1.0, help="Cosine similarity for a CNN match, 0.5-1.0 (default: 0.95).")
    ] = 0.95,
    review: Annotated[
        bool, typer.Option("--review/--no-review", help="Write the HTML review sheet (default: on).")
    ] = True,
    workers: WorkersOpt = 0,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Cluster exact and near-duplicate photos over the whole catalogue (only new images are hashed);
    `split`/`merge` record the steward's decisions, which every later run keeps.

    Example: curate dedupe --min-side 224 --json
    """
    if ctx.invoked_subcommand is not None:
        _refuse_options_before(ctx)
        return
    from curate.dedupe.run import DedupeOptions

    ws = open_workspace(workspace, db)
    options = DedupeOptions(
        min_side=min_side,
        neighbours=neighbours,
        radius=radius,
        similarity=similarity,
        method=method.value,
        backend=backend.value,
        cnn=cnn,
        cnn_similarity=cnn_similarity,
        workers=workers,
    )
    run_and_render(ws, options, review=review, json_out=json_out)


def run_and_render(ws, options=None, review: bool = True, json_out: bool = False, show: bool = True) -> dict:
    """One audited dedupe run with a progress bar per stage, then the summary (shared with `curate pipeline`, whose
    `--json` takes the returned `--json` data into its own: `show=False`)."""
    from curate.audit import audited
    from curate.dedupe.review import sheet_note, write_sheet
    from curate.dedupe.run import DedupeOptions, run_dedupe

    options = options or DedupeOptions()
    options.validate()
    with audited(ws, "dedupe", {**options.__dict__}) as run, stage_bars(json_out) as on_progress:
        report = run_dedupe(ws, options, run.id, on_progress)
        sheet, items = write_sheet(ws, in_labelling=in_labelling(ws)) if review else (None, None)
        run.summary = {k: v for k, v in report.as_dict().items() if k != "groups"}
    data = report.as_dict() | {"review_sheet": str(sheet) if sheet else None}
    if json_out and show:
        print_json(data)
    elif show:
        render(report, sheet, sheet_note(items) if items else None)
    return data


def in_labelling(ws) -> set[int]:
    """Images that already have a labelling task: the review sheet marks them (dedupe sits below
    the label stage, so the command reads this and passes it in)."""
    from sqlmodel import select

    from db.models.label import LabelTask

    with ws.session() as s:
        return set(s.exec(select(LabelTask.image_id).distinct()).all())


KIND_NOTES = {
    "untested": " (too little texture to tell; neither joins nor blocks)",
    "marks": " (different photos laid in place, a site's stamp's evidence; they block)",
}


def render(report, sheet, sheet_note: str | None = None) -> None:
    from curate.dedupe.run import SKIPS_SAID

    rows = [
        ["images", report.images],
        ["hashed this run", report.hashed],
        ["codes reused", report.reused],
        ["local features reused / computed", f"{report.local_cached} / {report.local_computed}"],
        ["verification features read back / taken", f"{report.features_read} / {report.features_taken}"],
        ["search", report.searched],
        *[[f"pairs: {k}" + KIND_NOTES.get(k, ""), v] for k, v in sorted(report.pairs.items())],
        ["to review (not merged)", report.to_review],
        ["clusters (2+ images)", report.clusters],
        ["duplicates", report.duplicates],
        ["low resolution", report.low_res],
        ["steward decisions", report.overrides],
        ["labelable (one a cluster; labelled or not: `curate status` says what is still to label)", report.labelable],
        ["byte-identical arrivals (merged at intake)", report.byte_duplicates],
        ["skipped", len(report.skipped)],
    ]
    console.print(table("dedupe summary", ["", "count"], rows))
    if report.groups:
        console.print(
            table(
                "largest clusters",
                ["cluster", "size", "representative", "members"],
                [
                    [g["cluster"], g["size"], g["representative"], " ".join(map(str, g["members"][:12]))]
                    for g in report.groups[:15]
                ],
            )
        )
    for _, reason in report.skipped[:SKIPS_SAID]:  # the reason names the image
        console.print(f"[yellow]skipped {escape(reason)}[/]")
    if len(report.skipped) > SKIPS_SAID:
        console.print(f"[yellow]… and {len(report.skipped) - SKIPS_SAID} more skipped (--json lists them all)[/]")
    for line in report.recomputed[:20]:
        console.print(f"[yellow]cache:[/] {escape(line)}")
    for image_id, reason in report.whole_picture[:20]:
        console.print(f"image {image_id}: {escape(reason)}")
    for reason, n in sorted(report.rejected_at_intake.items()):
        console.print(f"rejected at intake (never catalogued): {n} × {escape(reason)}")
    for note in report.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    if sheet:
        console.print(f"review sheet: {sheet}" + (f" ({escape(sheet_note)})" if sheet_note else ""))
    console.print(
        f"{report.seconds.get('total', 0):.1f} s (hash {report.seconds.get('hash', 0):.1f}, "
        f"search {report.seconds.get('search', 0):.1f}, verify {report.seconds.get('verify', 0):.1f})"
    )


def _decision_output(summary: dict, json_out: bool, message: str, ws) -> None:
    """The new clustering, and what the decision replaced or left alone: a reversal is never silent."""
    from curate.dedupe.review import SHEET

    if json_out:
        print_json(summary)
        return
    left = summary["undecided"]  # as `curate status` counts them
    console.print(
        message
        + f" — now {summary['clusters']} cluster{'s' * (summary['clusters'] != 1)}, {summary['labelable']} labelable, "
        f"{left} pair{'s' * (left != 1)} found alike still undecided"
    )
    for r in summary.get("replaced", []):
        if r["image_a"] == r["image_b"]:  # a keep: one image
            console.print(f"image {r['image_a']}: its {r['action']} of {r['at']} is taken back")
        else:
            console.print(f"images {r['image_a']} and {r['image_b']}: replaces the {r['action']} of {r['at']}")
    if summary.get("already_apart"):
        ids = ", ".join(map(str, summary["already_apart"]))
        console.print(f"already in another cluster, no pair between them: {ids} (nothing recorded for them)")
    if (ws.reports / SHEET).exists():  # it still offered the pair just decided (its other command undid it)
        console.print("the review sheet predates this decision: `curate dedupe review` writes it anew")


@app.command()
def split(
    image: Annotated[int, typer.Argument(min=1, max=ID_MAX, help="Image id to take out of its cluster.")],
    others: Annotated[
        list[int] | None,
        typer.Argument(min=1, max=ID_MAX, help="Only split from these image ids (default: every other member)."),
    ] = None,
    note: Annotated[str | None, typer.Option(help="Why (shown on the review sheet).")] = None,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Record "not duplicates": IMAGE never shares a cluster with the others again. An image already in
    another cluster with no dedupe pair between them is left out (nothing would change); a pair to
    review is decided so. A split that reverses a merge says which merge it replaced.

    Example: curate dedupe split 42 --note "same patient, different day"
    """
    from curate.audit import audited
    from curate.dedupe import overrides

    ws = open_workspace(workspace, db)
    with audited(ws, "dedupe split", {"image": image, "others": others, "note": note}) as run:
        summary = overrides.split(ws, image, others, note, run.id)
        run.summary = {k: v for k, v in summary.items() if k != "groups"}
    apart = set(summary["already_apart"])
    split_from = [o for o in dict.fromkeys(others or []) if o not in apart]
    _decision_output(
        summary,
        json_out,
        f"image {image} split from {', '.join(map(str, split_from))}" if others else f"image {image} split off",
        ws,
    )


@app.command()
def merge(
    image_a: Annotated[int, typer.Argument(min=1, max=ID_MAX, help="An image id.")],
    image_b: Annotated[int, typer.Argument(min=1, max=ID_MAX, help="An image id showing the same picture.")],
    more: Annotated[
        list[int] | None, typer.Argument(min=1, max=ID_MAX, help="More image ids showing the same picture.")
    ] = None,
    note: Annotated[str | None, typer.Option(help="Why (shown on the review sheet).")] = None,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Record "same picture": IMAGE_A, IMAGE_B and any MORE are one cluster from now on, whatever their pairs say
    (an earlier split between two of them is taken over, and said so). The rest of their clusters joins where it
    matches every member (those left out are named, with the command that takes them too); the review sheet's
    merge of two clusters names every picture of both.

    Example: curate dedupe merge 17 230
    """
    from curate.audit import audited
    from curate.dedupe import overrides

    ws = open_workspace(workspace, db)
    more = more or []
    params = {"image_a": image_a, "image_b": image_b, "more": more, "note": note}
    with audited(ws, "dedupe merge", params) as run:
        summary = overrides.merge(ws, image_a, image_b, note, run.id, more)
        run.summary = {k: v for k, v in summary.items() if k != "groups"}
    ids = summary["merged"]
    named = ", ".join(map(str, ids[:-1])) + f" and {ids[-1]}"
    # before: "images 4 and 5 merged" though 5 stayed in another cluster, said only on a later line
    headline = (
        f"merge of images {named} recorded, but not in image {ids[0]}'s cluster: "
        f"{', '.join(map(str, summary['apart']))} (an earlier split with a picture exactly like one of them, or "
        "merged with one: `curate dedupe decisions`)"
        if summary["apart"]
        else f"images {named} merged"
    )
    _decision_output(summary, json_out, headline, ws)
    if summary["left_out"] and not json_out:
        every = " ".join(map(str, [*ids, *summary["left_out"]]))
        console.print(
            f"[yellow]left out of the merged cluster: {', '.join(map(str, summary['left_out']))} (with a named image "
            "before; a picture joins only where it matches every member): to keep them with it, name them too: "
            f"curate dedupe merge {every}[/]",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def keep(
    image: Annotated[int, typer.Argument(min=1, max=ID_MAX, help="Image id to label and export for its cluster.")],
    note: Annotated[str | None, typer.Option(help="Why (shown on the review sheet).")] = None,
    undo: Annotated[bool, typer.Option("--undo", help="Take the keep back: the rule chooses again.")] = False,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Record "this one": IMAGE represents whatever cluster holds it, on every later run too, in place of the
    picture the rule chose (not low-resolution, not grey beside colour, nothing drawn on, not framed, most pixels,
    ...). Use it when the rule picked an enlarged crop, or a colour cast with no third copy to tell it by. If the
    picture it replaces is in labelling, its labels stay in the catalogue and IMAGE goes out at the next
    `curate label push`. An image under the minimum side is refused: it would never be labelled.

    Example: curate dedupe keep 230 --note "the clinic's original"
    """
    from curate.audit import audited
    from curate.dedupe import overrides

    ws = open_workspace(workspace, db)
    with audited(ws, "dedupe keep", {"image": image, "note": note, "undo": undo}) as run:
        summary = overrides.keep(ws, image, note, undo, run.id)
        run.summary = {k: v for k, v in summary.items() if k != "groups"}
    was, now, key = summary["was"], summary["now"], summary["cluster"]
    if undo:
        message = f"image {image} no longer kept: cluster {key} is represented by image {now}"
    else:
        message = f"image {image} represents cluster {key}" + (f" in place of image {was}" if was != image else "")
    _decision_output(summary, json_out, message, ws)
    if not json_out and was is not None and was != now and was in in_labelling(ws):
        console.print(
            f"image {was} is in labelling: its labels stay in the catalogue; image {now} goes out at the next "
            "`curate label push`"
        )


@app.command("review")
def review_sheet(
    workspace: WorkspaceOpt = None, db: DbOpt = None, json_out: JsonOpt = False, html: HtmlOpt = None
) -> None:
    """Write the HTML review sheet of the current clusters (no hashing); --json also lists what it
    shows, in its order: the pairs to review grouped by the two clusters each would join (one decision a
    group: its merge names every picture of both clusters, its splits decide every pair), the groups kept
    apart, the clusters (mixed prior labels first) with each member's prior labels, sources and, for a JPEG,
    the quality it was saved at. The sheet
    shows whole groups of pairs until 500 pairs, and the first 300 groups and clusters of each kind;
    --json lists every one.

    Example: curate dedupe review --json
    """
    from curate.dedupe.review import SHEET, sheet, sheet_note
    from curate.files import write_atomic

    ws = open_workspace(workspace, db)
    page, items = sheet(ws, in_labelling=in_labelling(ws))
    path = write_page(lambda dest: write_atomic(dest, page, tmp_dir=ws.tmp), ws, ws.reports / SHEET, html)
    if json_out:
        print_json({"review_sheet": path and str(path)} | items)
    else:
        note = sheet_note(items)
        console.print(f"review sheet: {path or 'not written'}" + (f" ({escape(note)})" if note else ""))


@app.command()
def decisions(workspace: WorkspaceOpt = None, db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """List the steward's merge, split and keep decisions.

    Example: curate dedupe decisions --json
    """
    from curate.dedupe import overrides
    from curate.dedupe.overrides import when

    ws = open_workspace(workspace, db)
    rows = overrides.decisions(ws)
    if json_out:  # the time as the table and `dedupe review --json` give it (before: no zone, microseconds)
        print_json([{**r, "at": when(r["at"])} for r in rows])
    else:
        console.print(
            table(
                "dedupe decisions",
                ["images", "decision", "note", "at"],
                [[_images(r), r["action"], r["note"], when(r["at"])] for r in rows],
            )
        )


@app.command()
def score(
    truth: Annotated[
        Path,
        typer.Argument(
            metavar="TRUTH.csv",
            help="Your answer for some or all of the photos: a CSV with the columns file (as ingested: its path "
            "inside the ingested folder, or its URL; its name alone when one image alone has it) and group (files "
            "of one group are one photo), and optionally kind (what was done to a copy, e.g. crop or watermark; "
            "empty for the original).",
        ),
    ],
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Score the current clusters against your own answer: pair precision over every pair inside a cluster,
    pair recall, and recall for each kind of copy (a copy is found in its group's original's cluster). Missed
    pairs that the review sheet lists are counted apart. --json lists the first 20 false and missed pairs by
    image id, as the review sheet names them (never a file name), and the truth's lines naming no one image.

    Example: curate dedupe score truth.csv --json
    """
    from curate.dedupe.evaluate import said_lines, score_catalogue

    ws = open_workspace(workspace, db)
    result = score_catalogue(ws, truth)
    if json_out:
        print_json(
            {
                **result.__dict__,
                "precision": round(result.precision, 4),
                "recall": round(result.recall, 4),
                "by_kind": {k: {"found": f, "copies": n} for k, (f, n) in result.by_kind.items()},
            }
        )
        return
    rows = [
        ["files scored", str(result.images)],
        ["pair precision (every pair inside a cluster)", f"{result.precision:.4f}"],
        ["false pairs", f"{result.false_pairs} of {result.cluster_pairs} inside clusters"],
        ["pair recall", f"{result.recall:.4f}"],
        [
            "missed pairs",
            f"{result.true_pairs - result.found_pairs} of {result.true_pairs} ({result.missed_to_review} to review)",
        ],
        *[[f"recall: {kind}", f"{f / n:.3f} ({f}/{n})"] for kind, (f, n) in result.by_kind.items()],
    ]
    if result.unknown:
        rows.append(
            ["files naming no one image (left out)", f"{len(result.unknown)} (line {said_lines(result.unknown)})"]
        )
    console.print(table("dedupe score", ["measure", "value"], rows))


def _images(decision: dict) -> str:
    """The images a decision is about: a pair, or the one image a keep is of."""
    a, b = decision["image_a"], decision["image_b"]
    return str(a) if a == b else f"{a} – {b}"


def register(root: typer.Typer) -> None:
    """Mount `curate dedupe` and its override commands."""
    root.add_typer(app, name="dedupe")
