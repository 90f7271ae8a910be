"""`curate`: the data steward's command line. Each noun lives in its own module.

Start-up stays light on purpose: building the command tree (and so `curate --help`, and refusing a bad
option) imports only typer, rich and the small option types. Each command imports the library it calls
(the catalogue stack, icrawler, OpenCV, scipy, scikit-learn, matplotlib, the Label Studio SDK) inside its
body, when it runs. That keeps `curate --help` under 0.4 s instead of over a second, and it is the only
reason for those function-level imports: none of them avoids an import cycle. tests/test_cli_startup.py
checks both the time and which modules importing the CLI loads.

Errors: `SafeGroup` (curate.output) is the one handler, at the root; commands never catch CurateError.
"""

from __future__ import annotations

import typer

from curate.cli import audit, dedupe, export, intake, label, pipeline, scrape, studio
from curate.output import SafeGroup, stop_on_sigterm
from curate.privacy import make_private_by_default

app = typer.Typer(
    name="curate",
    help="Turn raw skin-lesion photos into a clinician-verified, versioned mpox dataset.\n\n"
    "Example: curate pipeline --demo",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=SafeGroup,
    rich_markup_mode=None,  # click's plain help: typer's rich help costs 0.1 s of start-up (markdown-it, pygments)
)

for module in (pipeline, intake, scrape, dedupe, studio, label, export, audit):
    module.register(app)


def main() -> None:
    make_private_by_default()  # umask 0o077: every file this process (or a server it starts) writes is private
    stop_on_sigterm()  # a killed command ends like an interrupted one: its run recorded, its workers gone
    app()
