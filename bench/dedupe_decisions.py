"""A steward's decision on a big catalogue: `curate dedupe merge` and `curate dedupe split`, timed as the
steward runs them, the record step every `curate dedupe` run ends with, and the review sheet the steward
decides from, beside imagededup finding its duplicates again from stored hashes.

    python bench/dedupe_decisions.py [--sizes 2000,20000,100000] [--repeat 3] [--imagededup-max 20000] [--json]

Each decision re-clusters the whole catalogue from its stored pairs (`curate.dedupe.run.recluster`), so
its cost grows with the catalogue, not with the decision. The catalogues are rows, not photos: N images
with their provenance and content boxes, in groups of copies (60 % alone, 20 % pairs, 20 % three to six,
every pair inside a group a verified "same") and 0.3 pairs a picture to review or untested between
groups, about what `bench/dedupe.py`'s v6 corpus stores (1,924 pairs for 1,172 pictures). A decision never
looks at pixels; the sheet shows a thumbnail of each picture it lists, so each image has small JPEG bytes in
the store (`photos`).

imagededup keeps no decisions: a steward edits its duplicates map by hand, and the map is found again
from the stored hashes (`PHash().find_duplicates(encoding_map=...)`, every pair compared: brute force
in Cython). It runs up to `--imagededup-max` pictures; beyond, the line says so. difPy keeps nothing
between runs: its next grouping is a search of the whole folder again (bench/dedupe.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REVIEW_PER_IMAGE = 0.3  # pairs to review or untested, a picture
NOW = "2026-12-04 00:00:00"


def groups(n: int, rng: random.Random) -> list[list[int]]:
    """Image ids 1..n in groups of copies: 60 % alone, 20 % in pairs, 20 % in groups of three to six."""
    out, nxt = [], 1
    while nxt <= n:
        r = rng.random()
        size = 1 if r < 0.6 else 2 if r < 0.8 else rng.randint(3, 6)
        out.append(list(range(nxt, min(n, nxt + size - 1) + 1)))
        nxt += size
    return out


def photos(store, n: int, seed: int = 0, kinds: int = 200) -> list[str]:
    """`n` stored pictures, for the review sheet's thumbnails: `kinds` small noise photos (96 x 72 JPEG), each
    stored many times with a different trailer after its end (decoded alike, a digest of its own). Written
    straight into the store's layout, not synced: a fixture, not an ingest."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    jpegs = []
    for _ in range(kinds):
        out = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (72, 96, 3), dtype=np.uint8)).save(out, "JPEG", quality=80)
        jpegs.append(out.getvalue())
    shas = []
    for i in range(n):
        data = jpegs[i % kinds] + i.to_bytes(8, "big")
        sha = hashlib.sha256(data).hexdigest()
        path = store.path_for(sha)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.write_bytes(data)
        shas.append(sha)
    return shas


def build(root: Path, n: int, seed: int = 0) -> dict:
    """A workspace at `root` whose catalogue holds `n` images and a dedupe run's pairs (rows only)."""
    from curate.dedupe.run import ALGO
    from curate.workspace import Workspace

    ws = Workspace.init(root)
    rng = random.Random(seed)
    shas = photos(ws.store, n, seed)
    parts = groups(n, rng)
    same = [(a, b, "hash") for g in parts for k, a in enumerate(g) for b in g[k + 1 :]]
    linked, apart = {(a, b) for a, b, _ in same}, set()
    while len(apart) < int(REVIEW_PER_IMAGE * n):  # one row a pair, as a run stores them
        a, b = sorted(rng.sample(range(1, n + 1), 2))
        if (a, b) not in linked:
            linked.add((a, b))
            apart.add((a, b, rng.choice(("review", "untested"))))
    db = sqlite3.connect(root / "catalogue.db")
    with db:
        db.execute(
            "insert into sources(id, name, kind, priority, created_at) values(1, 'bench', 'public', 1, ?)", (NOW,)
        )
        db.executemany(
            "insert into images(id, sha256, size_bytes, format, width, height, mode, frames, has_exif, has_gps, "
            "has_camera_serial, created_at) values(?, ?, 1000, 'JPEG', 800, 600, 'RGB', 1, 0, 0, 0, ?)",
            [(i, shas[i - 1], NOW) for i in range(1, n + 1)],
        )
        db.executemany(
            "insert into provenance(image_id, source_id, locator, created_at) values(?, 1, ?, ?)",
            [(i, f"photo_{i}.jpg", NOW) for i in range(1, n + 1)],
        )
        db.executemany(
            "insert into dedupe_codes(image_id, algo, codes, thumb, masked, box, flat, created_at) "
            "values(?, ?, x'00', x'00', 0.0, '0,0,1,1', 0, ?)",
            [(i, ALGO, NOW) for i in range(1, n + 1)],
        )
        db.executemany(
            "insert into dedupe_pairs(image_a, image_b, kind, similarity, inliers, reason) values(?, ?, ?, 0.9, 30, ?)",
            [(a, b, kind, "verified: 30 matching keypoints") for a, b, kind in sorted(same) + sorted(apart)],
        )
        db.executemany(  # as a run's last transaction leaves them: every image compared (a decision asks)
            "insert into dedupe_members(image_id, cluster_key, representative, low_res) values(?, ?, 1, 0)",
            [(i, f"img{i}") for i in range(1, n + 1)],
        )
    db.close()
    lone = [g[0] for g in parts if len(g) == 1]
    return {"pairs": len(same) + len(apart), "merge": (lone[0], lone[len(lone) // 2])}


# A small process runs each command and says its peak memory: a child's peak counts the memory of the process
# it was forked from (Linux keeps it across exec), which for this script, with imagededup loaded, is 0.9 GB.
LAUNCH = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
    "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def curate(root: Path, *args: str) -> tuple[float, float]:
    """Seconds and peak memory (MB) of `curate ARGS -w ROOT`, run as a steward runs it (a process of its own)."""
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH, sys.executable, "-m", "curate", *args, "-w", str(root)],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t
    code, peak_kb = (int(v) for v in done.stdout.split()[-2:])
    if code:
        raise SystemExit(f"curate {' '.join(args)} failed ({code}): {done.stderr[-500:]}")
    return seconds, peak_kb / 1024


def together(root: Path, a: int, b: int, merged: bool) -> None:
    """Stop unless the catalogue's clustering holds every image once and `a`, `b` as decided."""
    db = sqlite3.connect(root / "catalogue.db")
    try:
        key = dict(db.execute("select image_id, cluster_key from dedupe_members"))
        images = db.execute("select count(*) from images").fetchone()[0]
    finally:
        db.close()
    if len(key) != images or (key.get(a) == key.get(b)) != merged:
        raise SystemExit(f"after the {'merge' if merged else 'split'} of {a} and {b}: the clustering is not as decided")


def record(root: Path) -> float:
    """Seconds of what every `curate dedupe` run ends with, in one transaction: the stored pairs written again
    and the catalogue re-clustered (`run_dedupe`'s record step), rolled back after."""
    from sqlmodel import select

    from curate.dedupe.pairs import Pair
    from curate.dedupe.run import recluster, store_pairs
    from curate.workspace import Workspace
    from db.models import DedupePair

    ws = Workspace.open(root)
    with ws.session() as s:
        columns = (DedupePair.image_a, DedupePair.image_b, DedupePair.kind, DedupePair.similarity)
        pairs = [Pair(a, b, kind, sim, None, 30, "verified") for a, b, kind, sim in s.exec(select(*columns)).all()]
        t = time.perf_counter()
        store_pairs(s, pairs)
        recluster(s, min_side=128, hashed_only=True)
        s.flush()
        seconds = time.perf_counter() - t
        s.rollback()
    return seconds


def imagededup_find(n: int, seed: int = 0) -> float:
    """Seconds imagededup 0.3.3 takes to find the duplicates of `n` stored 64-bit hashes again."""
    # its CNN module builds an ImageNet model when imported, and PHash never uses it (no weights offline)
    cnn = types.ModuleType("imagededup.methods.cnn")
    cnn.CNN = None
    sys.modules.setdefault("imagededup.methods.cnn", cnn)
    import logging
    import warnings

    from imagededup.methods import PHash

    for name in list(logging.root.manager.loggerDict):  # its loggers say INFO on every find
        if name.startswith("imagededup"):
            logging.getLogger(name).setLevel(logging.WARNING)
    rng = random.Random(seed)
    encodings = {f"photo_{i}.jpg": f"{rng.getrandbits(64):016x}" for i in range(n)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "num_enc_workers has no effect": it has no files
        t = time.perf_counter()
        PHash(verbose=False).find_duplicates(encoding_map=encodings)
        return time.perf_counter() - t


def measure(n: int, repeat: int, imagededup_max: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        made = build(root, n)
        a, b = made["merge"]
        merges, splits = [], []
        for _ in range(repeat):  # each merge is taken back by a split: every run decides something
            merges.append(curate(root, "dedupe", "merge", str(a), str(b)))
            together(root, a, b, True)
            splits.append(curate(root, "dedupe", "split", str(a), str(b)))
            together(root, a, b, False)
        recorded = statistics.median(record(root) for _ in range(repeat))
        sheet_s, sheet_mb = curate(root, "dedupe", "review")
        sheet_size = (root / "reports" / "dedupe-review.html").stat().st_size / 2**20
    return {
        "images": n,
        "pairs": made["pairs"],
        "merge_s": statistics.median(s for s, _ in merges),
        "split_s": statistics.median(s for s, _ in splits),
        "peak_mb": max(mb for _, mb in merges + splits),
        "record_s": recorded,
        "sheet_s": sheet_s,
        "sheet_mb": sheet_size,
        "imagededup_s": imagededup_find(n) if n <= imagededup_max else None,
    }


def table(rows: list[dict]) -> str:
    out = [
        "| images | stored pairs | `curate dedupe merge`, s | `curate dedupe split`, s | peak memory of a decision, MB "
        "| a `curate dedupe` run's record step (pairs stored, re-clustered), s "
        "| `curate dedupe review`: s, MB of HTML "
        "| imagededup 0.3.3: duplicates found again from stored hashes, s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        found = f"{r['imagededup_s']:.1f}" if r["imagededup_s"] is not None else "not run (every pair compared)"
        out.append(
            f"| {r['images']:,} | {r['pairs']:,} | {r['merge_s']:.2f} | {r['split_s']:.2f} | {r['peak_mb']:.0f} "
            f"| {r['record_s']:.2f} | {r['sheet_s']:.1f}, {r['sheet_mb']:.1f} | {found} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="2000,20000,100000", help="catalogue sizes, comma-separated")
    p.add_argument("--repeat", type=int, default=3, help="decisions of each kind timed (the median is shown)")
    p.add_argument("--imagededup-max", type=int, default=20_000, help="largest catalogue imagededup runs on")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        p.error(f"--sizes {args.sizes!r}: whole numbers, comma-separated")
    if any(s < 20 for s in sizes) or args.repeat < 1:
        p.error("--sizes: 20 images or more each; --repeat: 1 or more")
    rows = [measure(n, args.repeat, args.imagededup_max) for n in sizes]
    print(json.dumps(rows, indent=2) if args.json else table(rows))


if __name__ == "__main__":
    main()
