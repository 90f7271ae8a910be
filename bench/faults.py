"""Fault injection: kill -9 each writing command at seeded random moments, re-run it, check the result.

    python bench/faults.py [--kills 20] [--seed 0] [--commands ingest,scrape,dedupe,export,"label pull"]
                           [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432 [--skip-sqlite]]

Prints kills survived / attempted per command and backend (SQLite always; PostgreSQL when --pg-url
names a server whose user may create databases). Label pull starts three real Label Studio servers
(tests/studio_server.py; CURATE_LABEL_STUDIO names the executable) and is skipped with a note without one.
A kill is survived when the re-run exits 0 without a
traceback and the catalogue, store and exports are consistent and equal to an uninterrupted run's
(see tests/faults.py for the checks). The tool a steward would otherwise have is none: a killed run
is found out by hand.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from faults import CASES, Backend, run_case
from rich.console import Console
from rich.table import Table
from studio_server import studio_fleet

from curate.studio.server import find_executable


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20, help="kills per command and backend (default: 20)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments (default: 0)")
    ap.add_argument("--commands", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    ap.add_argument("--pg-url", default=None, help="PostgreSQL server URL without a database (default: SQLite only)")
    ap.add_argument("--skip-sqlite", action="store_true", help="with --pg-url: PostgreSQL only")
    args = ap.parse_args()
    backends = ([] if args.skip_sqlite and args.pg_url else [Backend()]) + (
        [Backend(args.pg_url)] if args.pg_url else []
    )
    table = Table(
        title=f"kill -9 at {args.kills} seeded random moments, then re-run (seed {args.seed})", title_justify="left"
    )
    for col in ("command", "backend", "kills survived / attempted", "landed mid-run", "seconds"):
        table.add_column(col, justify="left" if col in ("command", "backend") else "right")
    failed = False
    with ExitStack() as stack:
        studio = None
        if "label pull" in args.commands.split(","):
            exe = find_executable()
            if exe is None:
                Console(stderr=True).print("label pull skipped: Label Studio not installed (set CURATE_LABEL_STUDIO)")
            else:
                base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="faults-studio-")))
                studio = stack.enter_context(studio_fleet(exe, base))
                os.environ["LABEL_STUDIO_API_KEY"] = studio.admin_token
                os.environ["CURATE_STUDIO_DOCUMENT_ROOT"] = str(base)
        for backend in backends:
            for name in args.commands.split(","):
                if name == "label pull" and studio is None:
                    continue
                extra = {"studio": studio} if name == "label pull" else {}
                with tempfile.TemporaryDirectory(prefix=f"faults-{name.replace(' ', '-')}-") as tmp:
                    r = run_case(name, args.kills, args.seed, Path(tmp), backend, **extra)
                failed |= r.survived != r.attempted
                table.add_row(
                    name, backend.name, f"{r.survived} / {r.attempted}", str(r.landed_mid_run), f"{r.seconds:.0f}"
                )
                for f in r.failures:
                    Console(stderr=True).print(f"[red]{name} ({backend.name}):[/] {f}", highlight=False)
    Console().print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
