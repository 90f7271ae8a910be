"""How long does `curate label pull` take for 10,000 annotations? Prints a table.

Starts a throw-away embedded Label Studio (needs $CURATE_LABEL_STUDIO or `curate studio install`),
creates two rater projects of N/2 tasks each with one annotation per task (imported in bulk),
records them in a fresh catalogue, then times the first pull (all new) and a re-pull (no change).

    .venv/bin/python bench/label_pull.py [--annotations 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import select

from curate.label.client import StudioClient
from curate.label.config import render
from curate.label.diagnoses import PAPER
from curate.label.pull import pull
from curate.net import free_port
from curate.studio.server import EmbeddedServer, init_data_dir
from curate.workspace import Workspace
from db.models import Image
from db.models.label import Consensus, LabelProject, LabelRound, LabelTask

TOKEN = "bench-admin-token-0123456789abcdef"
EMAIL = "steward@bench.test"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--annotations", type=int, default=10_000)
    ap.add_argument("--template", type=Path, help="reuse an initialised Label Studio data dir (skips ~20 s init)")
    ap.add_argument("--token", default=os.environ.get("LABEL_STUDIO_API_KEY", TOKEN), help="admin token of --template")
    args = ap.parse_args(argv)
    per = args.annotations // 2
    base = Path(tempfile.mkdtemp(prefix="curate-bench-pull-"))
    ws = Workspace.init(base / "ws")
    server = EmbeddedServer(ws.root, files_root=base)
    t = time.perf_counter()
    if args.template:
        shutil.copytree(args.template, server.data_dir)
    else:
        init_data_dir(server.data_dir, base, EMAIL, "bench-Pa55word!", TOKEN)
    info = server.start(port=free_port())
    print(f"server ready in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    try:
        client = StudioClient(info.url, args.token if args.template else TOKEN)
        rnd_raters = [EMAIL, "second@bench.test"]
        rng = random.Random(0)
        with ws.session() as s:
            images = [
                Image(sha256=f"{i:064x}", size_bytes=1, format="JPEG", width=640, height=480, mode="RGB")
                for i in range(per)
            ]
            s.add_all(images)
            s.flush()
            image_ids = [i.id for i in images]
            rnd = LabelRound(kind="rating", name="bench", raters=json.dumps(rnd_raters), server_url=info.url)
            s.add(rnd)
            s.flush()
            round_id = rnd.id
        t = time.perf_counter()
        for rater in rnd_raters:
            remote = client.create_round(f"bench {rater}", render(PAPER), None)
            tasks = [
                {
                    "data": {"image": f"/data/local-files/?d=x/{i}.jpg", "context": ""},
                    "annotations": [
                        {
                            "result": [
                                {
                                    "from_name": "diagnosis",
                                    "to_name": "image",
                                    "type": "choices",
                                    "value": {"choices": [rng.choice(list(PAPER.names.values()))]},
                                },
                                {
                                    "from_name": "lesion",
                                    "to_name": "image",
                                    "type": "rectanglelabels",
                                    "value": {
                                        "x": 10,
                                        "y": 10,
                                        "width": 20,
                                        "height": 20,
                                        "rotation": 0,
                                        "rectanglelabels": ["Lesion"],
                                    },
                                },
                            ]
                        }
                    ],
                }
                for i in image_ids
            ]
            ids = client.import_tasks(remote.id, tasks)
            with ws.session() as s:
                p = LabelProject(round_id=round_id, rater=rater, ls_project_id=remote.id)
                s.add(p)
                s.flush()
                s.add_all(
                    LabelTask(project_id=p.id, image_id=i, ls_task_id=tid)
                    for i, tid in zip(image_ids, ids, strict=True)
                )
        print(f"set-up (import {2 * per} annotated tasks) {time.perf_counter() - t:.1f} s", file=sys.stderr)
        spent = {"fetch": 0.0}
        fetch = client.fetch_annotations

        def timed_fetch(pid):  # split server time (Label Studio's export) from ours
            t0 = time.perf_counter()
            try:
                return fetch(pid)
            finally:
                spent["fetch"] += time.perf_counter() - t0

        client.fetch_annotations = timed_fetch
        t = time.perf_counter()
        first = pull(ws, client)
        t_first, f_first = time.perf_counter() - t, spent["fetch"]
        spent["fetch"] = 0.0
        t = time.perf_counter()
        again = pull(ws, client)
        t_again, f_again = time.perf_counter() - t, spent["fetch"]
        with ws.session() as s:
            n_cons = len(s.exec(select(Consensus.image_id)).all())
        print(
            f"{'run':<28}{'annotations':>12}{'new':>8}{'unchanged':>10}{'seconds':>9}"
            f"{'LS export':>10}{'catalogue':>10}{'ann/s':>8}"
        )
        for name, r, dt, ft in (
            ("first pull (all new)", first, t_first, f_first),
            ("re-pull (nothing changed)", again, t_again, f_again),
        ):
            print(
                f"{name:<28}{r.annotations:>12}{r.new:>8}{r.unchanged:>10}{dt:>9.2f}{ft:>10.2f}{dt - ft:>10.2f}"
                f"{r.annotations / dt:>8.0f}"
            )
        print(f"consensus rows: {n_cons}; server {info.url}, catalogue SQLite")
    finally:
        server.stop()
        if not os.environ.get("KEEP"):
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
