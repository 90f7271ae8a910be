"""What reaches the terminal: a name holding control characters cannot drive the terminal or split a row."""

from pathlib import Path

from typer.testing import CliRunner

from curate.cli import app
from curate.workspace import Workspace

NAME = "esc\x1b[2J\x1b[31mJohn Smith\nP99999\u202egpj.jpg"


def test_a_hostile_file_name_is_shown_escaped(tmp_path: Path):
    ws = Workspace.init(tmp_path / "ws")
    src = tmp_path / "in"
    src.mkdir()
    (src / NAME).write_text("not an image")
    r = CliRunner().invoke(app, ["ingest", str(src), "--source", "web", "-w", str(ws.root)])
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.output and "\u202e" not in r.output
    assert "esc\\x1b[2J\\x1b[31mJohn Smith\\x0aP99999\\u202egpj.jpg" in r.stdout.replace("\n", "")


def test_an_error_naming_such_a_file_is_one_escaped_line(tmp_path: Path):
    ws = Workspace.init(tmp_path / "ws")
    r = CliRunner().invoke(app, ["audit", "leakage", str(tmp_path / NAME), "-w", str(ws.root)])
    assert r.exit_code == 1
    assert r.stderr.strip().count("\n") == 0 and "\x1b" not in r.stderr and "\\x1b[31mJohn Smith P99999" in r.stderr


def test_what_a_source_name_may_not_hold_is_what_tables_escape(tmp_path: Path):
    """One definition of a control character: a line separator, a zero-width space or an undecodable byte in a
    file name is shown escaped, and the same character is refused in a source name."""
    import os

    ws = Workspace.init(tmp_path / "ws")
    src = tmp_path / "in"
    src.mkdir()
    (src / "line\u2028sep\u200bzw.jpg").write_text("not an image")
    (src / os.fsdecode(b"raw\xffbyte.jpg")).write_text("not an image")
    r = CliRunner().invoke(app, ["ingest", str(src), "--source", "web", "-w", str(ws.root)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "line\\u2028sep\\u200bzw.jpg" in r.stdout and "raw\\xffbyte.jpg" in r.stdout and "\u2028" not in r.stdout
    for name in ("clinic\u2028b", "clinic\u200bb"):
        bad = CliRunner().invoke(app, ["ingest", str(src), "--source", name, "-w", str(ws.root)])
        assert bad.exit_code == 1 and "--source must not contain control characters" in bad.stderr, bad.output


def test_a_file_system_refusal_is_one_line_naming_the_file(tmp_path: Path):
    """A folder where a report belongs (or a read-only, full folder) is said as a file-system error naming the
    report, not as an "unexpected" exception naming its temporary file."""
    from PIL import Image

    ws = Workspace.init(tmp_path / "ws")
    src = tmp_path / "in"
    src.mkdir()
    for n, colour in enumerate(("red", "blue")):
        Image.new("RGB", (64, 48), colour).save(src / f"{n}.jpg")
    assert CliRunner().invoke(app, ["ingest", str(src), "-s", "c", "-w", str(ws.root)]).exit_code == 0
    (ws.root / "reports" / "dedupe-review.html").mkdir(parents=True)
    r = CliRunner().invoke(app, ["dedupe", "-w", str(ws.root)])
    assert r.exit_code == 1 and r.stderr.strip().count("\n") == 0, r.output
    assert f"cannot write or read {ws.root / 'reports' / 'dedupe-review.html'} (Is a directory)" in r.stderr
    assert "unexpected" not in r.stderr and ".part" not in r.stderr


def test_a_name_too_long_for_the_file_system_is_said_as_that_cut_short(tmp_path: Path):
    """Before: the 5,006-character name printed whole, with advice to check permissions and free space."""
    ws = Workspace.init(tmp_path / "ws")
    r = CliRunner().invoke(app, ["audit", "leakage", "x" * 5000 + "@1.0.0", "-w", str(ws.root)])
    assert r.exit_code == 1
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: a name longer than the file system takes (5006 characters): xxx"), line
    assert line.endswith("…; use a shorter one") and len(line) < 200, line
