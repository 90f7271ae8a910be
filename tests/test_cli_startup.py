"""The first hour at the command line: fast `--help`, refusals before heavy imports, tables whole when piped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import images as I
import pytest
from rich.console import Console
from typer.testing import CliRunner

from curate.cli import app
from curate.cli.choices import DedupeMethod, ExportTask, PushOrder, ResizePolicy, SearchBackend, SourceKind
from curate.output import PlainWhenPiped, table

ROOT = Path(__file__).resolve().parents[1]
# What importing the CLI must not load: each costs 0.05-0.5 s and only some commands need it.
HEAVY = (
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "icrawler",
    "requests",
    "bs4",
    "scipy",
    "sklearn",
    "matplotlib",
    "cv2",
    "numpy",
    "faiss",
    "label_studio_sdk",
    "httpx",
    "torch",
    "torchvision",
    "pillow_heif",
    "PIL",
)
runner = CliRunner()


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = _python(probe)
    assert out.returncode == 0, out.stderr
    return [m for m in json.loads(out.stdout.splitlines()[-1]) if m in HEAVY]


def test_importing_the_cli_loads_no_heavy_library():
    assert _loaded_after("import curate.cli") == []


def test_help_loads_no_heavy_library():
    code = "from curate.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass"
    assert _loaded_after(code) == []


@pytest.mark.parametrize(
    "args",
    [
        ["scrape", "mpox", "--max", "-1"],
        ["scrape", "mpox", "--engine", "yandex"],
        ["export", "--name", "mpox", "--version", "1.0.0", "--task", "segmentation"],
        ["dedupe", "--radius", "99"],
        ["ingest", ".", "--source", "x", "--kind", "hospital"],
    ],
)
def test_refusals_come_before_any_heavy_import(args):
    code = (
        f"from curate.cli import app\ntry:\n    app({args!r})\nexcept SystemExit as e:\n    assert e.code == 2, e.code"
    )
    assert _loaded_after(code) == []


def test_curate_help_is_fast():
    """Measured against a generous bound (a loaded CI machine); bench/startup.py gives the real figure."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "curate", "--help"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=60,
        )
        best = min(best, time.perf_counter() - started)
        assert out.returncode == 0 and "scrape" in out.stdout
    assert best < 1.0, f"curate --help took {best:.2f} s"


def test_cli_choices_are_the_librarys():
    from curate.dataset import RESIZE_POLICIES
    from curate.dedupe.hashing import METHODS
    from curate.dedupe.search import Backend
    from curate.export.plan import TASKS
    from curate.intake.catalogue import SOURCE_KINDS
    from curate.label.order import Order

    assert [k.value for k in SourceKind] == list(SOURCE_KINDS)
    assert [t.value for t in ExportTask] == list(TASKS)
    assert [p.value for p in ResizePolicy] == list(RESIZE_POLICIES)
    assert [o.value for o in PushOrder] == [o.value for o in Order]
    assert sorted(m.value for m in DedupeMethod) == sorted(METHODS)
    assert [b.value for b in SearchBackend] == [b.value for b in Backend]


def test_help_lists_choices_and_bounds():
    out = runner.invoke(app, ["scrape", "--help"]).output
    assert "<bing|baidu|flickr|google|urls>" in out and "1<=x<=16" in out and "x>=0" in out
    out = runner.invoke(app, ["export", "--help"]).output
    assert "<stretch|pad|center-crop>" in out and "<binary|diagnosis>" in out


LONG = "EfficientNet-lite0-fold3-" + "x" * 150 + "/predictions.csv"


def test_piped_tables_keep_every_value_whole():
    out = StringIO()
    PlainWhenPiped(file=out).print(table("runs", ["run", "path"], [["lite0", LONG]]))
    assert LONG in out.getvalue() and "…" not in out.getvalue()


def test_narrow_terminal_tables_wrap_instead_of_cutting():
    out = StringIO()
    Console(file=out, width=60, force_terminal=True, color_system=None).print(
        table("runs", ["run", "path"], [["lite0", LONG]])
    )
    text = out.getvalue()
    assert "…" not in text
    assert LONG in "".join(ch for ch in text if ch not in "│ \n")


def test_ingest_rejections_name_the_whole_file_when_piped(tmp_path):
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws)]).exit_code == 0
    folder = tmp_path / "in" / ("a-very-long-clinic-export-folder-name-" * 3)
    folder.mkdir(parents=True)
    (folder / "case0.jpg").write_bytes(I.jpeg(0))
    (folder / ("not-a-photo-but-a-saved-web-page-" * 3 + ".jpg")).write_bytes(I.html_as_image())
    r = runner.invoke(app, ["ingest", str(tmp_path / "in"), "--source", "clinic", "-w", str(ws)])
    assert r.exit_code == 0, r.output
    assert ("not-a-photo-but-a-saved-web-page-" * 3 + ".jpg") in r.stdout and "…" not in r.stdout


def test_label_push_reports_images_and_tasks_per_rater(capsys):
    from curate.cli.label import render_push
    from curate.label.rounds import PushResult

    render_push(
        PushResult(
            round_id=3,
            raters=["a@clinic.test", "b@clinic.test"],
            pushed=6,
            projects={"a@clinic.test": 11, "b@clinic.test": 12},
        )
    )
    out = capsys.readouterr().out
    assert "round 3: 3 image(s) sent to 2 raters (6 task(s))" in out
    rows = [line.split("│")[1:-1] for line in out.splitlines() if "@clinic.test" in line]
    assert [[c.strip() for c in r] for r in rows] == [
        ["a@clinic.test", "11", "3", "3"],
        ["b@clinic.test", "12", "3", "3"],
    ]
    assert "{" not in out  # no raw dict


def test_a_library_error_is_one_line_from_the_root_handler(tmp_path):
    """No command catches CurateError itself: the root group turns it into one line and exit 1."""
    r = runner.invoke(app, ["status", "-w", str(tmp_path / "missing")])
    assert r.exit_code == 1 and r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.output
    src = "\n".join(p.read_text() for p in (ROOT / "curate" / "cli").glob("*.py"))
    assert "reported(" not in src


def test_label_push_counts_a_task_made_again_for_its_rater_alone(capsys):
    """The probe's case: a task a rater deleted in Label Studio, made again by the next push. Before: "0 image(s)
    sent to 2 raters (1 task(s))" over rows of 0 tasks each."""
    from curate.cli.label import render_push
    from curate.label.rounds import PushResult

    render_push(
        PushResult(
            round_id=1,
            raters=["a@clinic.test", "b@clinic.test"],
            pushed=1,
            projects={"a@clinic.test": 1, "b@clinic.test": 2},
            tasks={"a@clinic.test": 1, "b@clinic.test": 0},
        )
    )
    out = capsys.readouterr().out
    assert "round 1: 1 image(s) sent to 1 of 2 raters (1 task(s))" in out
    rows = [line.split("│")[1:-1] for line in out.splitlines() if "@clinic.test" in line]
    assert [[c.strip() for c in r] for r in rows] == [
        ["a@clinic.test", "1", "1", "1"],
        ["b@clinic.test", "2", "0", "0"],
    ]


@pytest.mark.parametrize("columns", ["²", "٣", "wide", "0", "9" * 5000], ids=["super", "arabic", "word", "0", "long"])
def test_a_terminal_size_that_is_no_number_is_ignored(tmp_path, columns):
    """rich took COLUMNS="²" for a number (str.isdigit) and int() refused it: a traceback before any command.
    COLUMNS=0 made a console of no width: the command's error vanished, only its exit status left; 5,000 digits
    passed int()'s limit (a ValueError before any command)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": columns, "LINES": columns}
    for args in (["--help"], ["status", "-w", str(tmp_path / "none")]):
        out = subprocess.run(
            [sys.executable, "-m", "curate", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
        )
        assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 1 and out.stderr.startswith("error: no workspace at"), out.stderr
