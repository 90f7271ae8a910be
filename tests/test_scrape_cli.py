"""`curate scrape` through the command line (CliRunner on curate.cli.app)."""

from __future__ import annotations

import json

import pytest
from engine_server import DISTINCT_GOOD, FLICKR_KEY, rows
from typer.testing import CliRunner

from curate.cli import app
from db.models import CommandRun, Provenance

runner = CliRunner()


def invoke(ws, srv, *args, env=None):
    env = {"CURATE_SCRAPE_BASE_URL": srv.base, **(env or {})}
    return runner.invoke(app, ["scrape", *args, "-w", str(ws.root)], env=env)


def test_scrape_json_and_audit(ws, engine_server):
    res = invoke(ws, engine_server, "mpox", "monkey pox", "--engine", "bing", "--max", "4", "--license", "cc", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["engine"] == "bing" and data["licence_requested"] == "cc"
    assert [q["images_now"] for q in data["queries"]] == [4, 4]
    (run,) = rows(ws, CommandRun)
    assert run.command == "scrape" and run.status == "ok"
    assert json.loads(run.arguments)["queries"] == ["mpox", "monkey pox"]
    assert {p.run_id for p in rows(ws, Provenance)} == {run.id}


def test_scrape_table_output(sqlite_ws, engine_server):
    res = invoke(sqlite_ws, engine_server, "mpox", "--max", "0", "--threads", "2")
    assert res.exit_code == 0, res.output
    assert "rejected" in res.stdout and "decompression bomb" in res.stdout and str(DISTINCT_GOOD) in res.stdout


def test_google_is_refused_in_one_line(sqlite_ws, engine_server):
    res = invoke(sqlite_ws, engine_server, "mpox", "--engine", "google")
    assert res.exit_code == 1
    assert "--engine google is not supported" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert rows(sqlite_ws, CommandRun) == []  # refused before anything is written


@pytest.mark.parametrize(
    "args,message",
    [
        (["--engine", "baidu", "--license", "cc"], "cannot filter by licence"),
        (["--engine", "flickr"], "FLICKR_API_KEY"),
        (["--engine", "urls"], "not a file"),
        (["--source", ""], "--source must be a non-empty name"),  # before: quietly web-bing
        (["--source", " "], "--source must be a non-empty name"),
    ],
)
def test_bad_options_exit_1(sqlite_ws, engine_server, monkeypatch, args, message):
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    res = invoke(sqlite_ws, engine_server, "mpox", *args)
    assert res.exit_code == 1 and message in res.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--max", "-1"], "'--max' / '-n': Input should be greater than or equal to 0"),
        (["--threads", "17"], "'--threads': Input should be less than or equal to 16"),
        (["--timeout", "inf"], "'--timeout': Input should be less than or equal to 600"),
        (["--engine", "yandex"], "'yandex' is not one of"),
        (["--license", "cc-by-magic"], "'cc-by-magic' is not one of"),
    ],
)
def test_out_of_range_options_are_usage_errors(sqlite_ws, engine_server, args, message):
    """The CLI's types refuse them (exit 2, the choices and bounds named) before any library runs."""
    res = invoke(sqlite_ws, engine_server, "mpox", *args)
    assert res.exit_code == 2 and message in " ".join(res.stderr.replace("│", "").split())
    assert rows(sqlite_ws, CommandRun) == []


def test_flickr_key_never_stored(sqlite_ws, engine_server):
    res = invoke(
        sqlite_ws,
        engine_server,
        "mpox",
        "--engine",
        "flickr",
        "--max",
        "2",
        "--json",
        env={"FLICKR_API_KEY": FLICKR_KEY},
    )
    assert res.exit_code == 0, res.output
    raw = (sqlite_ws.root / "catalogue.db").read_bytes() + (sqlite_ws.root / "curate.toml").read_bytes()
    wal = sqlite_ws.root / "catalogue.db-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert FLICKR_KEY.encode() not in raw and FLICKR_KEY not in res.output


def test_a_servers_error_message_cannot_drive_the_terminal_or_show_the_key(sqlite_ws, engine_server):
    """Before: Flickr's message reached stderr raw (it set the terminal's title and cleared the screen), its
    markup was rendered (a link to another site) and the key it echoed was printed."""
    res = invoke(sqlite_ws, engine_server, "mpox", "hostile", "--engine", "flickr", env={"FLICKR_API_KEY": FLICKR_KEY})
    assert res.exit_code == 0, res.output
    out = res.stdout + res.stderr
    assert "\x1b" not in out and "\x07" not in out and FLICKR_KEY not in out
    assert "flickr API error 105" in out and "[link=http://evil.example/]" in out  # shown as text
    assert "\\x1b]0;PWNED" in out  # the escape written out, not obeyed


def test_the_table_says_why_urls_failed(sqlite_ws, engine_server, tmp_path):
    """A refused private host is told on the terminal, with how to allow it, not only counted."""
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.2:9/a.jpg\nhttp://127.0.0.2:9/b.jpg\n")
    res = invoke(sqlite_ws, engine_server, str(urls), "--engine", "urls", env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    out = " ".join(res.stdout.split())
    assert "failed (tried again on the next run)" in out
    assert "refused: 127.0.0.2 resolves to a loopback address (127.0.0.2); --allow-private-hosts to fetch it │ 2" in out
