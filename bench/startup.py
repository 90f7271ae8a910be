"""How long the command line takes to answer, beside other tools a steward runs.

    python bench/startup.py [--runs 10] [--before ../main]

`--before` names another checkout of the project (e.g. before a change) whose `curate --help` is timed too.

Each command runs `--runs` times in a fresh process; the table gives the fastest and the median wall time
and the fastest CPU time (user + system, which a busy machine inflates less than wall time), plus the
load average, since on a shared machine every figure rises with it.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


def measure(cmd: list[str], runs: int, env: dict, cwd: Path = ROOT) -> tuple[float, float, float]:
    """(fastest wall s, median wall s, fastest CPU s) over `runs` runs; a failing command stops the bench."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, env=env, cwd=cwd)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if out.returncode not in (0, 2):  # 2: a usage error, which is what some rows measure
            raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr.decode()[-500:]}")
    return min(walls), statistics.median(walls), min(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--before", type=Path, help="another checkout whose `curate --help` to time as well")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    py = [sys.executable]
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        subprocess.run([*py, "-m", "curate", "init", str(ws)], check=True, capture_output=True, env=env)
        rows = [
            ("python -c pass (the floor)", [*py, "-c", "pass"]),
            ("curate --help", [*py, "-m", "curate", "--help"]),
            ("curate scrape --help", [*py, "-m", "curate", "scrape", "--help"]),
            ("curate scrape x --max -1 (refused)", [*py, "-m", "curate", "scrape", "x", "--max", "-1"]),
            ("curate status (empty workspace)", [*py, "-m", "curate", "status", "-w", str(ws)]),
            (
                "train --help",
                [*py, "-c", "import sys; sys.argv[0] = 'train'; from train.cli import app; app()", "--help"],
            ),
        ]
        if args.before:  # run from that checkout: `-m` puts the working folder first on sys.path
            rows.insert(2, (f"curate --help ({args.before})", [*py, "-m", "curate", "--help"], args.before.resolve()))
        studio = os.environ.get("CURATE_LABEL_STUDIO") or shutil.which("label-studio")
        if studio:
            rows.append(("label-studio --help", [studio, "--help"]))
        table = Table(
            title=f"start-up, {args.runs} runs each (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
            title_justify="left",
        )
        for c in ("command", "fastest wall s", "median wall s", "fastest CPU s"):
            table.add_column(c, justify="left" if c == "command" else "right")
        for label, cmd, *cwd in rows:
            run_env = {**env, "PYTHONPATH": str(cwd[0])} if cwd else env
            fastest, median, cpu = measure(cmd, args.runs, run_env, *cwd)
            table.add_row(label, f"{fastest:.2f}", f"{median:.2f}", f"{cpu:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
