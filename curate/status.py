"""`curate status`: where every image stands, from the catalogue; and what the workspace's files say beside
it (a writer running now, originals missing from the store, files other users can read)."""

from __future__ import annotations

import json
import shlex
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import func
from sqlmodel import Session, select

from curate.audit import WRITER_KEY, writer_folder
from curate.dedupe import cluster_map, undecided_pairs
from curate.export.flagged import flagged_in_versions
from curate.export.writer import folder_state, unrecorded_folders
from curate.intake.catalogue import conflicting_labels, standing_rejections
from curate.intake.incoming import INCOMING
from curate.label.rounds import rated_image_ids, unrated_image_ids
from curate.lock import holder, outcomes_left, runs_left
from curate.privacy import exposure
from db.models import CommandRun, Consensus, DedupeMember, Image, Provenance, Source
from db.models.export import DatasetVersionRecord


def catalogue_status(
    session: Session,
    live_runs: Iterable[int] = (),
    left: Mapping[int, str] | None = None,
    unknown_writer: bool = False,
    w_option: Sequence[str] = (),
    here: str | None = None,
    mine: Iterable[int] = (),
) -> dict:
    """Counts by source, prior label and stage; `unfinished_runs` leaves out `live_runs` (a writer's own);
    `w_option` (`Workspace.w_option`) goes on each re-run's command line; `here` (`audit.writer_folder`): runs
    another folder began are not this folder's to call killed, unless `mine` (`lock.runs_left`: its lock file's)
    names them."""
    images = session.exec(select(func.count()).select_from(Image)).one()
    by_source = []
    rejected_by_source = Counter(name for name, _ in standing_rejections(session))
    for name, kind, n_img, n_arr in session.exec(
        select(Source.name, Source.kind, func.count(func.distinct(Provenance.image_id)), func.count(Provenance.id))
        .join(Provenance, Provenance.source_id == Source.id, isouter=True)
        .group_by(Source.id, Source.name, Source.kind)
        .order_by(Source.name)
    ).all():
        # a file rejected once and ingested since (copied again whole) is no longer a rejected file of the source
        rejected = rejected_by_source.get(name, 0)
        by_source.append({"source": name, "kind": kind, "images": n_img, "arrivals": n_arr, "rejected_files": rejected})

    by_label: dict[str, int] = {}
    labelled = select(Provenance.image_id).where(Provenance.prior_label.is_not(None))
    for label, n in session.exec(
        select(Provenance.prior_label, func.count(func.distinct(Provenance.image_id)))
        .where(Provenance.prior_label.is_not(None) | Provenance.image_id.not_in(labelled))
        .group_by(Provenance.prior_label)
    ).all():  # "(none)": images no arrival gave a label (before: also each labelled one arriving once without)
        by_label[label or "(none)"] = n

    consensus = dict(session.exec(select(Consensus.status, func.count()).group_by(Consensus.status)).all())
    clusters = cluster_map(session)
    stages = {
        "ingested": images,
        "dedupe_clusters": len(set(clusters.values())),
        "to_label": len(unrated_image_ids(session)),  # what `curate label push` would still send
        "in_label_rounds": len(rated_image_ids(session)),
        **{f"label_{k}": v for k, v in sorted(consensus.items())},
        "flagged_gps": session.exec(select(func.count()).select_from(Image).where(Image.has_gps)).one(),
        "flagged_camera_serial": session.exec(
            select(func.count()).select_from(Image).where(Image.has_camera_serial)
        ).one(),
    }
    stages["dataset_versions"] = session.exec(select(func.count()).select_from(DatasetVersionRecord)).one()
    unfinished = unfinished_commands(session, live_runs, left, unknown_writer, w_option, here, mine)
    return {
        "images": images,
        "by_source": by_source,
        "by_prior_label": by_label,
        "conflicting_prior_labels": conflicting_labels(session),  # images recorded under two prior labels
        "stages": stages,
        # pairs dedupe found alike and the steward has not decided: export keeps each in one split meanwhile
        "dedupe_undecided_pairs": len(undecided_pairs(session, clusters)),
        # images no dedupe run has compared: each a cluster of its own above, and to label, until `curate dedupe`
        "dedupe_not_compared": session.exec(
            select(func.count()).select_from(Image).where(Image.id.not_in(select(DedupeMember.image_id)))
        ).one(),
        "unfinished_runs": len(unfinished),
        "unfinished": unfinished,
    }


# a run's outcomes that leave its work half done: "aborted" is a fault met mid-work (the catalogue's server gone, a
# full disk; `CurateError.midway`), where "failed" is a refusal of the input before any work (a missing folder)
UNFINISHED = ("running", "killed", "interrupted", "aborted")

# arguments that do not make another command: how, not what (a re-run with other --workers finishes the same work)
HOW = frozenset({"workers", "json", "json_out", "quiet", WRITER_KEY})
# commands whose work these arguments alone name: an export of NAME@VERSION killed is finished by any later export of
# it (before: one with another --size was "written", and status still asked to re-run the killed one, which the
# version then refused as "already exists with different content"); a dedupe or a label pull by any later one run
# to the end, since each redoes the whole catalogue's (before: a dedupe stopped at --similarity 0.85 was listed
# for good once the steward ran dedupe with the default)
WHAT = {"export": ("name", "version"), "dedupe": (), "label pull": ()}


def _what(run: CommandRun, folder: bool = True) -> tuple[str, str]:
    """A run's command and the arguments that say what it works on (an ingest's folder and source); without
    `folder`, an ingest's folder left out (what a run recorded before the folder was is keyed by)."""
    args = _arguments(run)
    left_out = HOW if folder else HOW | {"folder_digest"}
    kept = {k: v for k, v in args.items() if k not in left_out and k in WHAT.get(run.command, (k,))}
    return run.command, json.dumps(kept, sort_keys=True, default=str)


def _arguments(run: CommandRun) -> dict:
    """The run's recorded arguments ({} when they do not read as an object)."""
    try:
        args = json.loads(run.arguments or "{}")
    except ValueError:
        return {}
    return args if isinstance(args, dict) else {}


def unfinished_commands(
    session: Session,
    live_runs: Iterable[int] = (),
    left: Mapping[int, str] | None = None,
    unknown_writer: bool = False,
    w_option: Sequence[str] = (),
    here: str | None = None,
    mine: Iterable[int] = (),
) -> list[dict]:
    """Each command whose latest run with the same arguments (`_what`) did not finish: stopped (Ctrl-C,
    SIGTERM), killed, aborted by a fault mid-work (`UNFINISHED`), or "running" with its process gone. It stays
    listed until that command runs again to the end (before: an interrupted ingest was never mentioned, and a
    killed one only until the next writer marked it "killed"); an ingest of another source does not finish it,
    and one being re-run now is not listed. `left`: outcomes a writer could not record and left for the next
    (`lock.outcomes_left`), taken as recorded."""
    live, left = set(live_runs), left or {}
    latest: dict[tuple[str, str], CommandRun] = {}
    running: set[tuple[str, str]] = set()
    for r in session.exec(select(CommandRun).order_by(CommandRun.id)).all():
        keys = dict.fromkeys((_what(r), _what(r, folder=False)))  # the second: finishes a run that recorded no folder
        if r.id in live:
            running.update(keys)
        elif r.status != "failed":  # a refusal of its input did no work: it neither finishes a run nor leaves one
            latest.update(dict.fromkeys(keys, r))
    status = {r.id: left.get(r.id, r.status) if r.status == "running" else r.status for r in latest.values()}
    if unknown_writer:  # a writer runs whose lock file was deleted: its runs are not known, so none is called killed
        status = {k: "live" if v == "running" else v for k, v in status.items()}
    if here is not None:  # another folder's run on a shared catalogue: its own lock knows whether it lives
        mine = set(mine) | set(left)  # this folder's lock names it: ours, though the host or the path changed since
        elsewhere = {
            r.id for r in latest.values() if _arguments(r).get(WRITER_KEY) not in (None, here) and r.id not in mine
        }
        status = {k: "live" if v == "running" and k in elsewhere else v for k, v in status.items()}
    return [
        {
            "command": r.command,
            "status": "killed" if status[r.id] == "running" else status[r.id],
            "run_id": r.id,
            "started_at": r.started_at.strftime("%Y-%m-%d %H:%M UTC"),
            "source": source if isinstance(source := _arguments(r).get("source"), str) else None,  # an ingest's
            "rerun": rerun(r, w_option),
        }
        for r in sorted({r.id: r for r in latest.values()}.values(), key=lambda r: r.id)
        if status[r.id] in UNFINISHED and _what(r) not in running and latest[_what(r)] is r
    ]


def rerun(run: CommandRun, w_option: Sequence[str] = ()) -> str | None:
    """The command line that finishes an unfinished scrape or export, with its arguments (`curate scrape` alone
    is a usage error, and two stopped scrapes read alike; a killed export said neither its version nor how to
    finish it, and its partial build stays in tmp/ until the same export runs again); another command's name with
    `w_option`; None where it needs nothing more (an ingest needs its folder, which status does not know).
    `w_option`: `-w ROOT` when the steward is elsewhere (`Workspace.w_option`)."""
    if run.command == "export":
        return _rerun_export(_arguments(run), w_option)
    if run.command != "scrape":  # from elsewhere, the command with `-w` (before: without, which failed pasted there)
        return " ".join(["curate", run.command, *w_option]) if w_option and run.command != "ingest" else None
    a = _arguments(run)
    queries = a.get("queries")
    if not isinstance(queries, list) or not queries or not all(isinstance(q, str) for q in queries):
        return None
    parts = ["curate scrape"]
    options = (("--engine", "engine"), ("--max", "max"), ("--license", "licence"), ("--source", "source"))
    parts += _options(a, (*options, ("--min-side", "min_side")))
    if a.get("allow_private_hosts") is True:
        parts.append("--allow-private-hosts")
    return " ".join([*parts, *w_option, "--", *map(shlex.quote, queries)])  # `--`: a query may begin with "-"


EXPORT_OPTIONS = (
    ("--name", "name"),
    ("--version", "version"),
    ("--task", "task"),
    ("--size", "size"),
    ("--resize-policy", "resize_policy"),
    ("--roi-margin", "roi_margin"),
    ("--test-fraction", "test_fraction"),
    ("--folds", "folds"),
    ("--seed", "seed"),
    ("--parent", "parent"),
)


def _rerun_export(a: dict, w_option: Sequence[str] = ()) -> str | None:
    """The same export (same arguments: same plan, so its partial build is reused), or None if unrecorded."""
    if not isinstance(a.get("name"), str) or not isinstance(a.get("version"), str):
        return None
    parts = ["curate export", *_options(a, EXPORT_OPTIONS)]
    external = a.get("external")
    for source in external if isinstance(external, list) else ():
        if isinstance(source, str):
            parts += ["--external", shlex.quote(source)]
    parts += [flag for flag in ("--reshuffle", "--archive") if a.get(flag[2:]) is True]
    return " ".join([*parts, *w_option])


def _options(a: dict, options: tuple[tuple[str, str], ...]) -> list[str]:
    """`--option value` for each recorded argument that is a string or a number (not a flag, not empty)."""
    parts = []
    for option, key in options:
        value = a.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
            parts += [option, shlex.quote(str(value))]
    return parts


def exposed_entries(ws) -> list[dict]:
    """What in the workspace other local users may read, by top-level entry (a source under incoming/ apart),
    each with how many files and folders in it are open: never a deeper path, which can name a patient."""
    found = exposure(ws.private_paths(), base=ws.root, deeper=(INCOMING,))
    return [{"path": path, **counts} for path, counts in found.items()]


def workspace_status(ws) -> dict:
    """`catalogue_status` with what only the workspace's files tell: `running_now` (the writer holding the lock:
    pid, command, since; None), `unfinished_runs` counting only runs whose process is gone (the running
    writer's own are not "unfinished"), `missing_originals` (images whose original is not in the store),
    `unreadable_originals` (there, but the file system refuses them), `unlisted_originals` (stored originals no
    row lists), `flagged_in_versions` (`curate.export.flagged`), `versions_not_whole` and `versions_unrecorded`
    (`version_folders`) and `exposed_paths`."""
    running = holder(ws.root)
    live = [] if running is None else [r for r in running.get("runs") or [] if isinstance(r, int)]
    with ws.session() as s:
        data = catalogue_status(
            s,
            live_runs=live,
            left=outcomes_left(ws.root),
            unknown_writer=running == {},
            w_option=ws.w_option(),
            here=writer_folder(ws),
            mine=runs_left(ws.root),
        )
        data["missing_originals"], data["unreadable_originals"] = missing_originals(ws, s)
        # a writer at work stores each photo before it records it: only counted when none runs
        data["unlisted_originals"] = unlisted_originals(ws, s) if running is None else 0
        data["flagged_in_versions"] = [f.as_dict() for f in flagged_in_versions(s, ws.root)]
        data["versions_not_whole"], data["versions_unrecorded"] = version_folders(ws, s)
    data["running_now"] = None if running is None else {k: running.get(k) for k in ("command", "pid", "since")}
    data["exposed_paths"] = exposed_entries(ws)
    return data


def version_folders(ws, session: Session) -> tuple[list[dict], list[str]]:
    """The recorded versions whose folder is there but not whole (`export.writer.folder_state`: damaged, changed
    since written), and the version folders the catalogue does not record (a restore, a copy): before, only
    `curate versions` said so, and a steward who looked at status alone saw nothing amiss. A folder gone is
    `curate versions`' to say: a steward deletes old versions on purpose, and status would warn of each for good."""
    records = session.exec(select(DatasetVersionRecord)).all()
    not_whole = [
        {"version": f"{r.name}@{r.version}", "folder": state}
        for r in sorted(records, key=lambda r: (r.name, r.id))
        if (state := folder_state(ws, r)) != "ok" and not state.startswith("folder missing")
    ]
    return not_whole, [str(p.relative_to(ws.root)) for p in unrecorded_folders(ws, records)]


def unlisted_originals(ws, session: Session) -> int:
    """Originals in the store that no catalogue row lists: an ingest or scrape killed between storing a photo and
    recording it (the same command run again records them), or a catalogue restored from an older backup. A
    listing of objects/, nothing read; such files are never labelled or exported, and nothing deletes them."""
    listed = set(session.exec(select(Image.sha256)).all())
    try:
        return sum(1 for sha in ws.store.iter_shas() if sha not in listed)
    except OSError:
        return 0


def missing_originals(ws, session: Session) -> tuple[int, int]:
    """(missing, unreadable): images the catalogue lists whose original is absent from the store or of another
    size, and those the file system refuses to read (`ImageStore.fault`; a stat each, no hashing: cheap enough
    for every `curate status`). Before, an unreadable folder of objects/ was "missing: re-run curate ingest"."""
    faults = Counter(ws.store.fault(sha, size) for sha, size in session.exec(select(Image.sha256, Image.size_bytes)))
    return faults["missing"], faults["unreadable"]
