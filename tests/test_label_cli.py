"""`curate label` / `curate studio` without a server: clear one-line errors, empty report."""
import json

from typer.testing import CliRunner

from curate.cli import app


def test_pull_without_a_server_is_one_clear_line(sqlite_ws, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "x")
    out = CliRunner().invoke(app, ["label", "pull", "-w", str(sqlite_ws.root)])
    assert out.exit_code == 1 and "no Label Studio" in out.output


def test_missing_api_key(sqlite_ws, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    out = CliRunner().invoke(app, ["label", "push", "--raters", "a@x,b@x", "-w", str(sqlite_ws.root), "--url", "http://127.0.0.1:9"])
    assert out.exit_code == 1 and "LABEL_STUDIO_API_KEY" in out.output


def test_empty_report(sqlite_ws):
    out = CliRunner().invoke(app, ["label", "report", "--json", "-w", str(sqlite_ws.root)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["outcomes"]["agreed"] == 0 and data["agreement"]["kappa"] is None


def test_studio_status_when_stopped(sqlite_ws):
    out = CliRunner().invoke(app, ["studio", "status", "--json", "-w", str(sqlite_ws.root)])
    assert out.exit_code == 0 and json.loads(out.stdout)["running"] is False


def test_studio_refuses_a_busy_port(sqlite_ws):
    import socket

    from curate.errors import StudioError
    from curate.studio.server import EmbeddedServer
    import pytest

    server = EmbeddedServer(sqlite_ws.root)
    (server.data_dir).mkdir(parents=True)
    (server.data_dir / "label_studio.sqlite3").write_bytes(b"")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(StudioError, match="busy"):
            server.start(port=s.getsockname()[1])
