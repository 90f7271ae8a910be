"""`curate export` commands (filled in by the export work)."""
import typer


def register(app: typer.Typer) -> None:
    """Mount this module's commands on the root app."""
