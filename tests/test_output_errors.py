"""What `SafeGroup` (the one error handler of `curate` and `train`) says for a file-system refusal no command
anticipated: one line, naming the file when there is one, and saying a full disk is a full disk."""

from __future__ import annotations

import errno

import pytest
import typer
from typer.testing import CliRunner

from curate.output import SafeGroup

app = typer.Typer(cls=SafeGroup)


@app.command()
def fails(code: int, named: bool = False) -> None:
    if named:
        raise OSError(code, "refused", "/data/runs/r1/fold0/checkpoint.pt")
    raise OSError(code, "No space left on device" if code == errno.ENOSPC else "refused")


@app.command()
def other() -> None:  # a second command: typer then keeps the command names
    pass


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_without_a_file_name_is_said_as_such(code):
    """Before: matplotlib's or torch's write hitting a full disk ended in "unexpected OSError: [Errno 28] …"."""
    res = CliRunner().invoke(app, ["fails", str(code)])
    assert res.exit_code == 1
    assert "the disk being written to is full" in res.output and "unexpected" not in res.output


def test_a_refusal_with_a_file_names_it_and_others_stay_unexpected():
    res = CliRunner().invoke(app, ["fails", str(errno.EACCES), "--named"])
    assert res.exit_code == 1 and "cannot write or read /data/runs/r1/fold0/checkpoint.pt (refused)" in res.output
    res = CliRunner().invoke(app, ["fails", str(errno.EIO)])
    assert res.exit_code == 1 and "unexpected OSError" in res.output


def test_an_error_under_json_is_a_json_document_on_stdout(tmp_path):
    """A script reading `--json` output got an empty stdout on an error (the line was on stderr alone) and had
    to parse the terminal's text. Now stdout holds {"error", "exit_code"}; without --json stdout stays empty,
    also for the next command run in the same process."""
    import json

    from curate.cli import app as curate_app
    from train.cli import app as train_app

    missing = str(tmp_path / "no-such-workspace")
    runner = CliRunner()
    res = runner.invoke(curate_app, ["status", "--json", "-w", missing])
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert doc["exit_code"] == 1 and doc["error"].startswith(f"no workspace at {missing}")
    assert "error:" in res.stderr

    res = runner.invoke(curate_app, ["status", "-w", missing])
    assert res.exit_code == 1 and res.stdout == "" and "no workspace at" in res.stderr
    runner.invoke(curate_app, ["status", "--json", "-w", missing])
    res = runner.invoke(curate_app, ["studio", "stop", "-w", missing])  # a command without --json of its own
    assert res.exit_code == 1 and res.stdout == "" and "no workspace at" in res.stderr

    res = runner.invoke(train_app, ["predict", "--json", "--run", missing, str(tmp_path / "x.jpg")])
    assert res.exit_code == 1
    assert "is not a run folder" in json.loads(res.stdout)["error"]
