"""`curate studio`: the embedded Label Studio server (start, stop, status, add-user, install)."""
from __future__ import annotations

import secrets
from typing import Annotated, Optional

import typer

from curate.cli.options import JsonOpt, WorkspaceOpt, console, err_console, fail, http_url, open_workspace, print_json, reported

app = typer.Typer(help="Run the workspace's own Label Studio server, or manage its accounts.", no_args_is_help=True)


@app.command()
def start(
    workspace: WorkspaceOpt = None,
    port: Annotated[int, typer.Option(help="Port to listen on (default: 8080). A busy port is an error, never silently moved.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to bind (default: 127.0.0.1, this machine only).")] = "127.0.0.1",
    admin_email: Annotated[Optional[str], typer.Option(help="Steward account, created on the first start only.")] = None,
):
    """Start the embedded server (data in <workspace>/studio, telemetry off).

    Example: curate studio start --admin-email steward@clinic.org
    """
    from curate.label.client import API_KEY_ENV
    from curate.studio.server import EmbeddedServer

    ws = open_workspace(workspace, None)
    server = EmbeddedServer(ws.root)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(f"[bold yellow]WARNING: Label Studio will listen on {host}: anyone who can reach this "
                          f"machine on port {port} can try to log in and see patient images.[/]")
    with reported():
        if not server.initialised:
            if not admin_email:
                fail("first start: pass --admin-email for the steward's Label Studio account")
            password = typer.prompt("Password for the steward account", hide_input=True, confirmation_prompt=True)
            import os

            token = os.environ.get(API_KEY_ENV) or secrets.token_hex(20)
            server.init(admin_email, password, token)
            if not os.environ.get(API_KEY_ENV):
                console.print(f"Steward API key (shown once, not stored by curate): [bold]{token}[/]\n"
                              f"  export {API_KEY_ENV}={token}")
        info = server.start(port=port, host=host)
    console.print(f"Label Studio running at {info.url} (pid {info.pid})")


@app.command()
def stop(workspace: WorkspaceOpt = None):
    """Stop the embedded server.

    Example: curate studio stop
    """
    from curate.studio.server import EmbeddedServer

    ws = open_workspace(workspace, None)
    stopped = EmbeddedServer(ws.root).stop()
    console.print("stopped" if stopped else "not running")


@app.command()
def status(workspace: WorkspaceOpt = None, json_: JsonOpt = False):
    """Is the embedded server running, and where.

    Example: curate studio status --json
    """
    from curate.studio.server import EmbeddedServer, find_executable, healthy

    ws = open_workspace(workspace, None)
    info = EmbeddedServer(ws.root).status()
    exe = find_executable()
    data = {"running": info is not None, "url": info.url if info else None, "pid": info.pid if info else None,
            "healthy": healthy(info.url) if info else False, "executable": str(exe) if exe else None}
    if json_:
        print_json(data)
    else:
        console.print(f"running at {info.url} (pid {info.pid}, {'healthy' if data['healthy'] else 'not answering'})"
                      if info else "not running")
        console.print(f"label-studio: {exe or 'not installed (curate studio install)'}")


@app.command("add-user")
def add_user(
    email: str,
    workspace: WorkspaceOpt = None,
    url: Annotated[Optional[str], typer.Option(callback=http_url, help="Label Studio URL (default: the embedded server).")] = None,
    generate: Annotated[bool, typer.Option(help="Generate a password and show it once instead of prompting.")] = False,
):
    """Add a clinician account (password prompted or generated; never stored).

    Example: curate studio add-user a@clinic.org --generate
    """
    from curate.label import client as lc
    from curate.label.rounds import connect

    ws = open_workspace(workspace, None)
    password = secrets.token_urlsafe(12) if generate else typer.prompt(f"Password for {email}", hide_input=True, confirmation_prompt=True)
    with reported():
        c = connect(ws, url)
        lc.add_user(c.url, lc.api_key_from_env(), email, password)
    console.print(f"created {email}" + (f"; password (shown once): [bold]{password}[/]" if generate else ""))


@app.command()
def install():
    """Install Label Studio into its own virtualenv under the user data folder.

    Label Studio pins its own Django and SDK, so it never shares the toolkit's environment.

    Example: curate studio install
    """
    from curate.studio.server import install as do_install

    with reported():
        exe = do_install()
    console.print(f"installed {exe}")


def register(root: typer.Typer) -> None:
    """Mount this module's commands on the root app."""
    root.add_typer(app, name="studio")
