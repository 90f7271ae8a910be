"""The steward's next run: `curate dedupe` after an ingest of a few new files, with and without the cache of
local features kept between runs (`curate.dedupe.stored`), beside imagededup run on the whole folder again.

    python bench/dedupe_next_run.py [--photos DIR] [--new 20] [--seed 0] [--json] [bench/dedupe.py's corpus options]

The folder is `bench/dedupe.py`'s main corpus (scikit-image's photos re-posted, or those of `--photos DIR`);
`--new` files drawn at random (`--seed`) arrive last. Two workspaces get the rest and a first run each, one
keeping features on disk and one with the cache off (`$CURATE_DEDUPE_CACHE_MB=0`), then the new files and
a second run. Both must store the same pairs, kind for kind: the cache only saves work. imagededup keeps
nothing between runs; its next run is its encode + find over the whole folder again. Last, each workspace
verifies every pair again, as the first run after a new version of the verification rules does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def _run(ws, folder: Path, cache_mb: str, workers: int) -> dict:
    """Ingest `folder` into `ws` and run dedupe with the cache limit `cache_mb`: seconds and counts."""
    from curate.dedupe.run import DedupeOptions, run_dedupe
    from curate.dedupe.stored import LIMIT_ENV
    from curate.intake.ingest import IngestOptions, ingest_folder

    t = time.perf_counter()
    ingest_folder(ws, folder, IngestOptions(source="bench", kind="public", workers=workers))
    ingest_s = time.perf_counter() - t
    os.environ[LIMIT_ENV] = cache_mb
    t = time.perf_counter()
    rep = run_dedupe(ws, DedupeOptions(min_side=1, workers=workers))
    dedupe_s = time.perf_counter() - t
    return {
        "ingest_s": ingest_s,
        "dedupe_s": dedupe_s,
        "verify_s": rep.seconds["verify"],
        "taken": rep.features_taken,
        "read": rep.features_read,
    }


def _again(ws, cache_mb: str, workers: int) -> dict:
    """Every pair verified again, as the first run after a new version of the rules or codes does."""
    from sqlalchemy import update

    from db.models import DedupeCode

    with ws.session() as s:
        s.exec(update(DedupeCode).values(searched_with=None))
    with tempfile.TemporaryDirectory() as nothing:
        return _run(ws, Path(nothing), cache_mb, workers)


def _pairs(ws) -> set[tuple[str, str, str]]:
    """The stored pairs by file name and kind: what the two workspaces must agree on."""
    from sqlmodel import select

    from db.models import DedupePair, Provenance

    with ws.session() as s:
        name = {i: Path(loc).name for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all()}
        return {(*sorted((name[p.image_a], name[p.image_b])), p.kind) for p in s.exec(select(DedupePair)).all()}


def main(argv: list[str] | None = None) -> None:
    import numpy as np
    from dedupe import build_corpus, corpus_dirs, own_photos, parser, run_imagededup

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=Path, help="a folder of your own photos (as bench/dedupe.py --photos)")
    p.add_argument("--new", type=int, default=20, help="files that arrive for the next run (default: 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="0: one per core")
    p.add_argument("--json", action="store_true")
    args, corpus = p.parse_known_args(argv)  # the rest is bench/dedupe.py's: --corpus, --synthetic, ...
    main_args = parser().parse_args(corpus + (["--photos", str(args.photos)] if args.photos else []))
    web, _ = corpus_dirs(main_args)
    workers = args.workers or os.cpu_count() or 1
    build_corpus(
        web / "images", main_args.synthetic, main_args.per_photo, main_args.closeups, workers, own_photos(main_args)
    )
    files = sorted(f for f in (web / "images").iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
    rng = np.random.default_rng(args.seed)
    late = {files[k] for k in rng.choice(len(files), size=min(args.new, len(files) - 2), replace=False)}
    from curate.workspace import Workspace

    out: dict = {"files": len(files), "new": len(late)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        first, then = tmp / "first", tmp / "then"
        first.mkdir()
        then.mkdir()
        for f in files:
            shutil.copy(f, (then if f in late else first) / f.name)
        # the cache off first: a first run reads the files from disk, the second from memory
        spaces = {"no cache": ("0", Workspace.init(tmp / "plain")), "cache": ("2048", Workspace.init(tmp / "cached"))}
        for name, (mb, ws) in spaces.items():
            print(f"{name}: first run on {len(files) - len(late)} files", file=sys.stderr)
            out[name] = {"first": _run(ws, first, mb, workers)}
        for name, (mb, ws) in spaces.items():
            print(f"{name}: next run, {len(late)} new files", file=sys.stderr)
            out[name]["next"] = _run(ws, then, mb, workers)
        for name, (mb, ws) in spaces.items():
            print(f"{name}: every pair verified again (as after a change of the rules)", file=sys.stderr)
            out[name]["again"] = _again(ws, mb, workers)
        plain, kept = (_pairs(ws) for _, ws in spaces.values())
        out["same_pairs"] = kept == plain
        out["pairs"] = len(kept)
        out["cache_mb"] = sum(f.stat().st_size for f in (tmp / "cached" / "cache").rglob("*") if f.is_file()) / 2**20
        shutil.copytree(then, first, dirs_exist_ok=True)
        try:
            out["imagededup_s"] = run_imagededup(first)["seconds"]
        except ImportError:  # not installed here (it is not a dependency of the project)
            out["imagededup_s"] = None
    if args.json:
        print(json.dumps(out))
        return
    c, n = out["cache"], out["no cache"]
    rows = [
        ("first run: dedupe seconds", f"{c['first']['dedupe_s']:.1f}", f"{n['first']['dedupe_s']:.1f}", "—"),
        (
            f"next run ({out['new']} new files): ingest + dedupe seconds",
            f"**{c['next']['ingest_s'] + c['next']['dedupe_s']:.1f}**",
            f"{n['next']['ingest_s'] + n['next']['dedupe_s']:.1f}",
            "not installed"
            if out["imagededup_s"] is None
            else f"{out['imagededup_s']:.1f} (encode + find on all {out['files']} files)",
        ),
        ("next run: verification seconds", f"{c['next']['verify_s']:.1f}", f"{n['next']['verify_s']:.1f}", ""),
        (
            "every pair verified again (a new version of the rules): dedupe seconds",
            f"**{c['again']['dedupe_s']:.1f}**",
            f"{n['again']['dedupe_s']:.1f}",
            "",
        ),
        (
            "next run: pictures' features read back / taken",
            f"{c['next']['read']} / {c['next']['taken']}",
            f"{n['next']['read']} / {n['next']['taken']}",
            "",
        ),
        ("pairs stored, the same in both", f"{out['pairs']}, {'yes' if out['same_pairs'] else 'NO'}", "", ""),
        ("cache on disk, MB", f"{out['cache_mb']:.0f}", "", ""),
    ]
    print("| | mpox-curate, features kept | mpox-curate, cache off | imagededup 0.3.3 PHash |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
