"""Where a reading command's --html page may go, and what a failed command says first."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "target, said",
    [
        ("catalogue.db", "part of the workspace (its catalogue)"),
        ("curate.toml", "part of the workspace (its settings)"),
        (".curate.lock", "part of the workspace (its writers' lock file)"),
        ("exports/page.html", "part of the workspace (its dataset versions)"),
        ("objects/page.html", "part of the workspace (its image store)"),
        ("pipe", "is a named pipe, not a file"),
        ("link.html", "is a symbolic link"),
        ("folder", "is a folder, not a file"),
    ],
)
def test_a_page_is_never_written_over_the_workspace_or_a_special_file(tmp_path: Path, target: str, said: str):
    """Before, `--html catalogue.db` replaced the catalogue with the page (every later command: "catalogue … is
    damaged"), `--html exports/…/README.md` broke a sealed version, and a pipe, a link or a device (as root,
    /dev/stdout) was replaced by a file: the page is renamed into place."""
    ws = Workspace.init(tmp_path / "ws")
    os.mkfifo(ws.root / "pipe")
    (tmp_path / "mine.html").write_text("mine")
    (ws.root / "link.html").symlink_to(tmp_path / "mine.html")
    (ws.root / "folder").mkdir()
    before = {p: p.read_bytes() for p in (ws.root / "catalogue.db", ws.root / "curate.toml", tmp_path / "mine.html")}
    r = CliRunner().invoke(app, ["dedupe", "review", "--html", str(ws.root / target), "-w", str(ws.root)])
    assert r.exit_code == 1 and said in r.stderr and r.stderr.count("\n") == 1, r.output
    assert {p: p.read_bytes() for p in before} == before
    assert stat.S_ISFIFO(os.stat(ws.root / "pipe").st_mode) and (ws.root / "link.html").is_symlink()
    assert not (ws.exports / "page.html").exists() and not (ws.objects / "page.html").exists()
    assert CliRunner().invoke(app, ["status", "-w", str(ws.root)]).exit_code == 0


def test_a_page_outside_the_workspace_or_in_its_reports_is_written(tmp_path: Path):
    ws = Workspace.init(tmp_path / "ws")
    for page in (tmp_path / "elsewhere" / "sheet.html", ws.reports / "mine.html"):
        for _ in range(2):  # and again over the page it wrote
            r = CliRunner().invoke(app, ["dedupe", "review", "--html", str(page), "-w", str(ws.root)])
            assert r.exit_code == 0 and "</html>" in page.read_text(), r.output


@pytest.mark.parametrize(
    "target, said",
    [
        ("other/catalogue.db", "is inside another workspace"),
        ("other/curate.toml", "is inside another workspace"),
        ("other/notes/page.html", "is inside another workspace"),
        ("clinic/photo.jpg", "exists and is not an HTML page"),
    ],
)
def test_a_page_is_never_written_over_another_workspace_or_a_file_that_is_no_page(tmp_path, target, said):
    """A probe wrote one workspace's review sheet with `--html` over another workspace's catalogue.db (that
    workspace's every row gone) and its curate.toml, and over a clinic photo already ingested."""
    ws = Workspace.init(tmp_path / "ws")
    Workspace.init(tmp_path / "other").engine.dispose()  # else its WAL is folded into the file at a later gc
    (tmp_path / "clinic").mkdir()
    (tmp_path / "clinic" / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 a clinic's photo")
    kept = {p: p.read_bytes() for p in (tmp_path / "other" / "catalogue.db", tmp_path / "other" / "curate.toml")}
    kept[tmp_path / "clinic" / "photo.jpg"] = (tmp_path / "clinic" / "photo.jpg").read_bytes()
    r = CliRunner().invoke(app, ["dedupe", "review", "--html", str(tmp_path / target), "-w", str(ws.root)])
    assert r.exit_code == 1 and said in r.stderr and r.stderr.count("\n") == 1, r.output
    assert {p: p.read_bytes() for p in kept} == kept and not (tmp_path / "other" / "notes").exists()
    assert CliRunner().invoke(app, ["status", "-w", str(tmp_path / "other")]).exit_code == 0


def test_an_error_is_the_only_line_on_stderr(tmp_path: Path):
    """Before, every command with progress bars wrote a blank line first when stderr was a log or a pipe (rich
    ends a bar it cannot draw with one): "\\nerror: …"."""
    ws = Workspace.init(tmp_path / "ws")
    proc = subprocess.run(
        [sys.executable, "-m", "curate", "audit", "leakage", "mpox@9.9.9", "-w", str(ws.root)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr


@pytest.mark.parametrize(
    "args, said",
    [
        (["dedupe", "merge", "0", "1"], "Invalid value for 'image_a'"),
        (["export"], "Missing option '--name'"),
        (["dedupe", "merge", "-1", "1"], "No such option: -1"),
        (["dedupe", "--method", "foo"], "Invalid value for '--method'"),  # before: exit 1, "unknown method"
        (["dedupe", "--backend", "foo"], "Invalid value for '--backend'"),
    ],
)
def test_a_usage_error_under_json_gives_the_error_object_too(tmp_path: Path, args, said):
    """Before, exit 2 and click's usage text on stderr, and nothing on stdout for the script that asked for JSON
    (`fail` gives `{"error", "exit_code"}` for every other error)."""
    ws = Workspace.init(tmp_path / "ws")
    r = CliRunner().invoke(app, [*args, "--json", "-w", str(ws.root)])
    assert r.exit_code == 2 and "Usage:" in r.stderr
    got = json.loads(r.stdout)
    assert got["exit_code"] == 2 and said in got["error"], got
    plain = CliRunner().invoke(app, [*args, "-w", str(ws.root)])
    assert plain.exit_code == 2 and plain.stdout == ""


@pytest.mark.parametrize("args", [["--json", "status"], ["label", "--json", "report"]])
def test_json_before_the_command_says_where_it_goes(tmp_path: Path, args):
    """`curate --json status` was click's "No such option: --json" on stderr alone: no JSON for the script, and no
    word that the option is the command's."""
    ws = Workspace.init(tmp_path / "ws")
    r = CliRunner().invoke(app, [*args, "-w", str(ws.root)])
    assert r.exit_code == 2 and "it goes after the command" in r.stderr
    assert json.loads(r.stdout)["error"].endswith(f"{args[-1]} --json)")
    typo = CliRunner().invoke(app, ["--jsn", "status"])  # another option: no such advice
    assert typo.exit_code == 2 and "goes after" not in typo.stderr
    from train.cli import app as train_app

    none = CliRunner().invoke(train_app, ["--json", "serve"])  # a command without --json: no such advice
    assert none.exit_code == 2 and "goes after" not in none.stderr
