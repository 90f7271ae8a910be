"""`curate dedupe` commands (filled in by the dedupe work)."""
import typer


def register(app: typer.Typer) -> None:
    """Mount this module's commands on the root app."""
