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
