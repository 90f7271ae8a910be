"""Every command explains itself with an example, and the generated CLI reference is current."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import cli_reference

COMMANDS = [(prog, path, cmd) for prog, _, path, cmd in cli_reference.commands()]


@pytest.mark.parametrize("prog, path, cmd", COMMANDS, ids=[" ".join([p, *path]) for p, path, _ in COMMANDS])
def test_every_command_has_help_with_an_example(prog, path, cmd):
    """Groups too (`curate`, `curate label`, `train`…): README says every command's --help has one."""
    assert cmd.help and cmd.help.strip(), f"{prog} {' '.join(path)} has no help text"
    assert "Example" in cmd.help, f"{prog} {' '.join(path)}: add an 'Example:' line to its help"
    for arg in (p for p in cmd.params if p.param_type_name == "argument"):
        assert getattr(arg, "help", None), f"{prog} {' '.join(path)}: argument {arg.name} has no help"


def test_cli_reference_is_current():
    current = (ROOT / "docs" / "cli-reference.md").read_text()
    assert current == cli_reference.render(), "docs/cli-reference.md is stale: run python scripts/cli_reference.py"


def test_readme_opens_with_the_two_setup_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```")]
    assert block == [
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/curate pipeline --demo",
        "bash scripts/test-all.sh",
    ]
    assert "bash scripts/test-all.sh" in (ROOT / ".ci" / "run").read_text()
