"""`curate label` commands (filled in by the label work)."""
import typer


def register(app: typer.Typer) -> None:
    """Mount this module's commands on the root app."""
