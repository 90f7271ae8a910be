"""`curate studio`: one Label Studio server per clinician (start, stop, status, add-user, install)."""

from __future__ import annotations

import os
import secrets
import sys
from typing import Annotated

import typer

from curate.cli.options import JsonOpt, WorkspaceOpt, http_url, open_workspace
from curate.output import console, err_console, fail, print_json, shown, table

app = typer.Typer(
    help="Run the workspace's Label Studio servers (one per clinician), or add a clinician.\n\n"
    "Example: curate studio add-user a@clinic.org",
    no_args_is_help=True,
    rich_markup_mode=None,
)
STEWARD_ENV = "CURATE_STEWARD_EMAIL"
# the steward's account is an admin on every clinician's server; `label-studio init` sets it up without the checks
# Label Studio's sign-up gives a clinician's password (8 to 64 characters), and takes any key of 6 characters or more
PASSWORD_LEAST, PASSWORD_MOST = 8, 64
KEY_LEAST = 20


def read_secret(prompt: str, confirm: bool = True) -> str:
    """A password from the terminal (hidden, asked twice), or one line of piped stdin (no getpass warning)."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            fail(f"{prompt}: nothing on standard input")
        return line
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)  # stdout: the answer


@app.command()
def start(
    workspace: WorkspaceOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind (default: 127.0.0.1, this machine only).")] = "127.0.0.1",
    admin_email: Annotated[
        str | None,
        typer.Option(
            envvar=STEWARD_ENV,
            show_envvar=True,
            help="Steward's Label Studio account, set up on the first start only (asked for when missing).",
        ),
    ] = None,
    json_out: JsonOpt = False,
):
    """Start every clinician's Label Studio server (data in <workspace>/studio, telemetry off).

    A server still running under another document root (one that served the whole workspace) is
    started again under `studio/served`. The first start sets up the steward's account (email from
    --admin-email, $CURATE_STEWARD_EMAIL or a prompt; password prompted, or one line on stdin). Each
    clinician then gets a server of their own with `curate studio add-user`.

    Example: curate studio start
    """
    from curate.label.client import API_KEY_ENV
    from curate.studio.fleet import Fleet

    ws = open_workspace(workspace, None)
    fleet = Fleet(ws.root)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(
            f"[bold yellow]WARNING: Label Studio will listen on {host}: anyone who can reach this "
            "machine can try to log in and see patient images.[/]"
        )
    if not fleet.initialised:
        email = admin_email or typer.prompt("Steward's email (your Label Studio admin account)", err=True)
        if "@" not in email or "=" in email:
            fail(f"steward email {email!r} is not an email address")
        token = os.environ.get(API_KEY_ENV) or secrets.token_hex(20)
        if len(token) < KEY_LEAST:  # Label Studio keeps a random key of its own for one of 5 or fewer, and says nothing
            fail(
                f"${API_KEY_ENV} is {len(token)} characters: a key to every clinician's server needs {KEY_LEAST} or "
                f"more (unset it, and `curate studio start` makes one)"
            )
        password = read_secret("Password for the steward account")
        if not PASSWORD_LEAST <= len(password) <= PASSWORD_MOST:  # the rule Label Studio's sign-up applies to raters
            fail(f"the steward's password must be {PASSWORD_LEAST} to {PASSWORD_MOST} characters, as a clinician's is")
        fleet.init(email.strip().lower(), password, token)
        made_key = None if os.environ.get(API_KEY_ENV) else token
        if made_key and not json_out:
            console.print(
                f"Steward API key (shown once, not stored by curate): [bold]{token}[/]\n  export {API_KEY_ENV}={token}"
            )
    else:
        made_key = None
    try:
        states = fleet.start_all(host=host)
    except BaseException:  # a server that did not start, Ctrl-C: the key made is still said, once, before the error
        if made_key and json_out:
            err_console.print(f"Steward API key (shown once, not stored by curate): {made_key}", highlight=False)
        raise
    if json_out:  # the key made on the first start is in it, once, as on the terminal
        servers = [
            {
                "clinician": st.name,
                "url": st.url,
                "pid": st.running.pid,
                "restarted_from": st.stale_root and str(st.stale_root),
            }
            for st in states
        ]
        print_json({"servers": servers, "api_key": made_key})
        return
    if not states:
        console.print("No clinician servers yet: add each clinician with `curate studio add-user EMAIL`.")
    for st in states:
        console.print(f"{st.name}: {st.url} (pid {st.running.pid})")
        if st.stale_root is not None:
            console.print(f"  restarted: it was serving {st.stale_root}, which every account of it could read")


@app.command()
def stop(workspace: WorkspaceOpt = None, json_out: JsonOpt = False):
    """Stop every Label Studio server of the workspace.

    Example: curate studio stop
    """
    from curate.studio.fleet import Fleet

    ws = open_workspace(workspace, None)
    stopped = Fleet(ws.root).stop_all()
    if json_out:
        print_json({"stopped": stopped})
    else:
        console.print(f"stopped {len(stopped)} server(s)" if stopped else "not running")


@app.command()
def status(workspace: WorkspaceOpt = None, json_out: JsonOpt = False):
    """Each clinician's server: URL, running or not.

    Example: curate studio status --json
    """
    from curate.studio.fleet import Fleet
    from curate.studio.server import find_executable, healthy

    ws = open_workspace(workspace, None)
    fleet = Fleet(ws.root)
    exe = find_executable()
    servers = [
        {
            "clinician": st.name,
            "url": st.url,
            "running": st.running is not None,
            "pid": st.running.pid if st.running else None,
            "healthy": healthy(st.url) if st.running else False,
            "stale_root": str(st.stale_root) if st.stale_root else None,
        }
        for st in fleet.status()
    ]
    data = {"initialised": fleet.initialised, "servers": servers, "executable": str(exe) if exe else None}
    if json_out:
        print_json(data)
        return
    if not fleet.initialised:
        console.print("not set up yet (curate studio start)")
    console.print(
        table(
            "Label Studio servers",
            ["clinician", "url", "state"],
            [
                [
                    s["clinician"],
                    s["url"],
                    (("running" if s["healthy"] else "not answering") if s["running"] else "stopped")
                    + (f"; serving {s['stale_root']}: run `curate studio start`" if s["stale_root"] else ""),
                ]
                for s in servers
            ],
        )
    )
    console.print(f"label-studio: {shown(exe) if exe else 'not installed (curate studio install)'}")


@app.command("add-user")
def add_user(
    email: Annotated[str, typer.Argument(help="The clinician's email address: their Label Studio login.")],
    workspace: WorkspaceOpt = None,
    url: Annotated[
        str | None,
        typer.Option(
            callback=http_url,
            help=(
                "An external Label Studio, holding no account but the steward's, to add the account to instead of "
                "a server of their own."
            ),
        ),
    ] = None,
    generate: Annotated[bool, typer.Option(help="Generate a password and show it once instead of prompting.")] = False,
    port: Annotated[
        int | None,
        typer.Option(
            min=1024, max=65535, help="Port of this clinician's server (default: the next free one from 8081)."
        ),
    ] = None,
    json_out: JsonOpt = False,
):
    """Give a clinician a Label Studio server of their own and an account on it (password never stored).

    Example: curate studio add-user a@clinic.org --generate
    """
    from curate.label.client import api_key_from_env
    from curate.label.servers import add_clinician, add_own_account

    ws = open_workspace(workspace, None)
    password = secrets.token_urlsafe(12) if generate else read_secret(f"Password for {email}")
    if url:
        add_own_account(url, api_key_from_env(), email, password)  # never a server another clinician is on
        where = url
    else:
        where = add_clinician(ws, email, password, port)
    if json_out:  # a generated password in it, once, as on the terminal
        print_json({"email": email, "url": where, "password": password if generate else None})
    else:
        once = f"; password (shown once): [bold]{password}[/]" if generate else ""
        console.print(f"created {email} on {where}{once}")


@app.command()
def key(
    workspace: WorkspaceOpt = None,
    url: Annotated[
        str | None,
        typer.Option(
            callback=http_url,
            help="A Label Studio you run yourself: log in there as the steward (password prompted) to read the key.",
        ),
    ] = None,
    admin_email: Annotated[
        str | None, typer.Option(envvar=STEWARD_ENV, help="The steward's email, with --url (default: a prompt).")
    ] = None,
    json_out: JsonOpt = False,
):
    """Show the steward's API key again (the key `curate studio start` showed once; curate stores none).

    The workspace's servers are copies of one template, whose database holds the key; a server of your own
    (--url) gives it to the steward's email and password.

    Example: export LABEL_STUDIO_API_KEY=$(curate studio key --json | jq -r .api_key)
    """
    from curate.label.client import API_KEY_ENV, steward_token
    from curate.studio.fleet import Fleet

    if url:  # no workspace needed
        email = admin_email or typer.prompt("Steward's email (your Label Studio admin account)", err=True)
        token = steward_token(url, email.strip().lower(), read_secret("Password for the steward account", False))
    else:
        ws = open_workspace(workspace, None)
        fleet = Fleet(ws.root)
        token = fleet.steward_key()
        if token is None:
            fail(f"no Label Studio set up in {ws.root} yet: `curate studio start` makes the steward's account and key")
    if json_out:
        print_json({"api_key": token})
    else:
        key_shown = shown(token)  # a database's text: control characters and markup shown, not obeyed
        console.print(f"Steward API key: [bold]{key_shown}[/]\n  export {API_KEY_ENV}={key_shown}", highlight=False)


@app.command()
def install(json_out: JsonOpt = False):
    """Install Label Studio into its own virtualenv under the user data folder.

    Label Studio pins its own Django and SDK, so it never shares the toolkit's environment.

    Example: curate studio install
    """
    from curate.studio.server import install as do_install

    exe = do_install()
    if json_out:
        print_json({"executable": str(exe)})
    else:
        console.print(f"installed {shown(exe)}")


def register(root: typer.Typer) -> None:
    """Mount this module's commands on the root app."""
    root.add_typer(app, name="studio")
