"""`curate label` / `curate studio` without a server: clear one-line errors, empty report."""

import json

import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.errors import StudioError


def test_push_without_a_server_is_one_clear_line(sqlite_ws, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "x")
    out = CliRunner().invoke(app, ["label", "push", "--raters", "a@x.test,b@x.test", "-w", str(sqlite_ws.root)])
    assert out.exit_code == 1 and "a@x.test has no Label Studio server in this workspace" in out.output
    assert "curate studio add-user a@x.test" in out.output


def test_missing_api_key(sqlite_ws, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    out = CliRunner().invoke(
        app, ["label", "push", "--raters", "a@x,b@x", "-w", str(sqlite_ws.root), "--url", "http://127.0.0.1:9"]
    )
    assert out.exit_code == 1 and "LABEL_STUDIO_API_KEY" in out.output
    assert "curate studio start" not in out.output  # a server of one's own was named


def test_label_commands_before_studio_start_say_to_start_it(sqlite_ws, monkeypatch):
    """The probe's case: `label push`, `pull` and `adjudicate` in a workspace where `curate studio start` never ran
    said only "set LABEL_STUDIO_API_KEY", a key no server of that workspace could have given."""
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    w = ["-w", str(sqlite_ws.root)]
    for args in (["push", "--raters", "a@x.test,b@x.test"], ["pull"], ["adjudicate", "--reviewer", "c@x.test"]):
        out = CliRunner().invoke(app, ["label", *args, *w])
        assert out.exit_code == 1 and len(out.stderr.strip().splitlines()) == 1, out.output
        assert "LABEL_STUDIO_API_KEY" in out.stderr and "`curate studio start` starts it" in out.stderr


def test_a_rater_typo_is_told_before_the_api_key(sqlite_ws, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    for raters, message in [
        ("notanemail,b@x", "rater 'notanemail' is not an email address"),
        ("a=b@x,c@x", "rater 'a=b@x' is not an email address"),  # before: a rater --url EMAIL=URL could never name
        ("a@x,A@x", "each rater must be a different person"),
        ("a@x", "exactly two raters"),
    ]:
        out = CliRunner().invoke(app, ["label", "push", "--raters", raters, "-w", str(sqlite_ws.root)])
        assert out.exit_code == 1 and message in out.output and "LABEL_STUDIO_API_KEY" not in out.output


def test_a_blank_reviewer_is_one_line(sqlite_ws, monkeypatch):
    """Before: "unexpected IndexError: list index out of range" for `--reviewer ""`."""
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "0123456789abcdef0123456789")
    out = CliRunner().invoke(app, ["label", "adjudicate", "--reviewer", " ", "-w", str(sqlite_ws.root)])
    assert out.exit_code == 1 and "--reviewer: give the clinician's email address" in out.stderr, out.output
    assert "unexpected" not in out.output


def test_empty_report(sqlite_ws):
    out = CliRunner().invoke(app, ["label", "report", "--json", "-w", str(sqlite_ws.root)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["outcomes"]["agreed"] == 0 and data["agreement"]["kappa"] is None


def test_studio_status_when_stopped(sqlite_ws):
    out = CliRunner().invoke(app, ["studio", "status", "--json", "-w", str(sqlite_ws.root)])
    assert out.exit_code == 0 and json.loads(out.stdout)["servers"] == []
    assert json.loads(out.stdout)["initialised"] is False


def test_add_user_before_start_is_one_clear_line(sqlite_ws, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "x")
    out = CliRunner().invoke(app, ["studio", "add-user", "a@x.test", "-w", str(sqlite_ws.root)], input="pw-Pa55word!\n")
    assert out.exit_code == 1 and "run `curate studio start` first" in out.output
    assert "GetPassWarning" not in out.output


def test_url_mapping_is_checked(sqlite_ws, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "x")
    out = CliRunner().invoke(
        app, ["label", "pull", "-w", str(sqlite_ws.root), "--url", "http://127.0.0.1:9", "--url", "http://127.0.0.1:10"]
    )
    assert out.exit_code == 1 and "only one URL may be given without an email" in out.output
    out = CliRunner().invoke(app, ["label", "pull", "-w", str(sqlite_ws.root), "--url", "a@x.test=ftp://host"])
    assert out.exit_code == 2 and "--url" in out.output and "http(s) URL" in out.output  # a usage error


def test_studio_refuses_a_busy_port(sqlite_ws):
    import socket

    import pytest

    from curate.errors import StudioError
    from curate.studio.server import EmbeddedServer

    server = EmbeddedServer(sqlite_ws.root)
    (server.data_dir).mkdir(parents=True)
    (server.data_dir / "label_studio.sqlite3").write_bytes(b"")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(StudioError, match="busy"):
            server.start(port=s.getsockname()[1])


def test_push_table_warns_of_images_dedupe_never_compared(capsys):
    """The steward reading the table, not only a script reading --json, is told the round holds uncompared images."""
    from curate.cli.label import render_push
    from curate.label.rounds import PushResult

    sent = PushResult(round_id=3, raters=["a@x.org", "b@x.org"], pushed=10, projects={"a@x.org": 7, "b@x.org": 8})
    render_push(sent)
    out = " ".join(capsys.readouterr().out.split())
    assert "round 3: 5 image(s) sent to 2 raters" in out and "warning" not in out
    render_push(PushResult(**{**sent.__dict__, "uncompared": 4}))
    out = " ".join(capsys.readouterr().out.split())
    assert "warning: 4 of them were never compared by `curate dedupe`" in out and "run `curate dedupe` before" in out


def test_a_url_for_one_clinician_leaves_the_others_on_their_own_servers(sqlite_ws, monkeypatch):
    """Before: `label push --raters a,b --url b@…=URL` said "a@… has no Label Studio server in this workspace"
    although a's own server ran: one --url email=URL dropped every clinician's own server. A bare URL still
    puts everyone --url does not map there."""
    from curate.label.servers import resolve
    from curate.studio.fleet import Fleet

    own = {e: f"http://127.0.0.1:{8081 + i}" for i, e in enumerate(["a@x.test", "b@x.test", "c@x.test"])}
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "x")
    monkeypatch.setattr(Fleet, "urls", lambda self: dict(own))
    servers = resolve(sqlite_ws, ["b@x.test=http://127.0.0.1:9999"])
    assert servers.url_for("a@x.test") == own["a@x.test"] and servers.url_for("c@x.test") == own["c@x.test"]
    assert servers.url_for("b@x.test") == "http://127.0.0.1:9999"
    # a project is fetched from the URL it recorded unless --url names its rater
    assert servers.project_url("a@x.test", "http://127.0.0.1:8181") == "http://127.0.0.1:8181"
    assert servers.project_url("b@x.test", "http://127.0.0.1:8182") == "http://127.0.0.1:9999"
    everyone = resolve(sqlite_ws, ["http://127.0.0.1:7777", "b@x.test=http://127.0.0.1:9999"])
    assert everyone.url_for("a@x.test") == "http://127.0.0.1:7777"
    assert everyone.project_url("a@x.test", "http://127.0.0.1:8181") == "http://127.0.0.1:7777"


def test_a_server_answering_json_unlike_label_studio_is_one_line(sqlite_ws, monkeypatch):
    """Before: a --url answering `{"weird": true}` to everything (another service on that port) gave "unexpected
    AttributeError: 'str' object has no attribute 'id'" for `studio add-user --url` and `label pull`."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Weird(BaseHTTPRequestHandler):
        def _answer(self):
            body = b'{"weird": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Weird)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "x")
    try:
        from curate.label.client import StudioClient

        out = CliRunner().invoke(
            app, ["studio", "add-user", "d@x.test", "--generate", "--url", url, "-w", str(sqlite_ws.root)]
        )
        assert out.exit_code == 1, out.output
        assert f"{url} does not answer like Label Studio" in out.stderr and "unexpected" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
        with pytest.raises(StudioError, match="does not answer like Label Studio"):
            StudioClient(url, "x").user_emails()
    finally:
        server.shutdown()


def test_an_api_key_pasted_with_a_no_break_space_is_named_as_the_cause(sqlite_ws, monkeypatch):
    """Before: httpx's UnicodeEncodeError for a key holding U+00A0 (a copy from a web page) read as a server that
    does not answer like Label Studio, or as "unexpected"."""
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "abc\u00a0def")
    out = CliRunner().invoke(app, ["label", "pull", "-w", str(sqlite_ws.root), "--url", "http://127.0.0.1:9"])
    assert out.exit_code == 1 and "LABEL_STUDIO_API_KEY holds a character no API key has" in out.stderr


def test_a_server_that_takes_the_request_and_never_answers_is_not_called_stopped():
    """A frozen Label Studio (kill -STOP) took the connection and said nothing: after the timeout pull said "not
    reachable; is it running?", and the steward looked for a server that was running."""
    import socket

    from curate.label.client import StudioClient

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(StudioError, match=r"took the request but did not answer within 1 s \(ReadTimeout\)"):
            StudioClient(url, "x", timeout=1).whoami()
    with pytest.raises(StudioError, match="is not reachable .*is it running"):  # nothing listens there now
        StudioClient(url, "x", timeout=1).whoami()


def test_an_address_with_equals_is_no_clinician(sqlite_ws):
    """`--url EMAIL=URL` splits at the first "=": an account "a=b@clinic.org" was made, and its server could then
    never be named. It is refused before anything else is asked."""
    out = CliRunner().invoke(app, ["studio", "add-user", "a=b@clinic.org", "--generate", "-w", str(sqlite_ws.root)])
    assert out.exit_code == 1 and "'a=b@clinic.org' is not an email address" in out.stderr, out.output
    plain = CliRunner().invoke(app, ["studio", "add-user", "ab@clinic.org", "--generate", "-w", str(sqlite_ws.root)])
    assert plain.exit_code == 1 and "curate studio start" in plain.stderr  # a plain address passes the check


def test_label_candidates_with_nothing_left_says_so(sqlite_ws):
    """A newcomer's `train predict … $(curate label candidates)` stopped on "Missing argument 'images'" with no word
    why: nothing waits for a rating round. stdout stays empty (or []) for the script; stderr says it."""
    out = CliRunner().invoke(app, ["label", "candidates", "-w", str(sqlite_ws.root)])
    assert out.exit_code == 0 and out.stdout == "" and "nothing to send" in out.stderr
    as_json = CliRunner().invoke(app, ["label", "candidates", "--json", "-w", str(sqlite_ws.root)])
    assert json.loads(as_json.stdout) == []
