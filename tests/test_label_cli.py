"""`curate label` / `curate studio` without a server: clear one-line errors, empty report."""

import json

from typer.testing import CliRunner

from curate.cli import app


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


def test_a_rater_typo_is_told_before_the_api_key(sqlite_ws, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    for raters, message in [
        ("notanemail,b@x", "rater 'notanemail' is not an email address"),
        ("a@x,A@x", "each rater must be a different person"),
        ("a@x", "exactly two raters"),
    ]:
        out = CliRunner().invoke(app, ["label", "push", "--raters", raters, "-w", str(sqlite_ws.root)])
        assert out.exit_code == 1 and message in out.output and "LABEL_STUDIO_API_KEY" not in out.output


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
