"""`curate`: the data steward's command line. Each noun lives in its own module."""
from __future__ import annotations

import typer

from curate.cli import audit, dedupe, export, intake, label, pipeline, scrape, studio
from curate.output import SafeGroup
from curate.privacy import make_private_by_default

app = typer.Typer(
    name="curate",
    help="Turn raw skin-lesion photos into a clinician-verified, versioned mpox dataset.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=SafeGroup,
)

for module in (pipeline, intake, scrape, dedupe, studio, label, export, audit):
    module.register(app)


def main() -> None:
    make_private_by_default()  # umask 0o077: every file this process (or a server it starts) writes is private
    app()
