"""`curate dedupe`: image ids out of SQLite's range, and a damaged stored original, each told in one line."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from dedupe_corpus import photo, save
from sqlmodel import select
from typer.testing import CliRunner

from curate.cli import app
from curate.workspace import Workspace
from db.models import Image

runner = CliRunner()
HUGE = "99999999999999999999"  # over 2**63 - 1: SQLite's INTEGER cannot hold it


@pytest.fixture()
def two_photos(tmp_path):
    """A workspace holding two ingested photos, deduped once; (root, the photos' folder)."""
    folder = tmp_path / "photos"
    for k in range(2):
        save(photo(70 + k), folder / f"p{k}.jpg")
    root = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    r = runner.invoke(app, ["ingest", str(folder), "--source", "clinic-x", "--workers", "1", "-w", str(root)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["dedupe", "-w", str(root), "--workers", "1", "--min-side", "64", "--no-review"])
    assert r.exit_code == 0, r.output
    return root, folder


def _clean(r) -> None:
    """No traceback, no "unexpected": the error, if any, is the project's one line or typer's usage error."""
    assert "Traceback" not in r.output and "unexpected" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["merge", HUGE, "2"], "image_a"),
        (["merge", "1", HUGE], "image_b"),
        (["merge", "0", "1"], "image_a"),
        (["split", HUGE], "image"),
        (["split", "1", "2", HUGE], "others"),
        (["split", "--", "-3"], "image"),
    ],
)
def test_ids_out_of_range_are_refused_naming_the_argument(tmp_path, args, name):
    root = tmp_path / "ws"
    Workspace.init(root)
    r = runner.invoke(app, ["dedupe", *args, "-w", str(root)])
    _clean(r)
    assert r.exit_code == 2, r.output
    assert re.search(rf"Invalid value for '{name}'", r.output, re.IGNORECASE), r.output
    assert "OverflowError" not in r.output


def test_largest_id_reaches_the_catalogue_and_is_missing(tmp_path):
    root = tmp_path / "ws"
    Workspace.init(root)
    r = runner.invoke(app, ["dedupe", "merge", str(2**63 - 1), "2", "-w", str(root)])
    _clean(r)
    assert r.exit_code == 1 and f"no image with id {2**63 - 1}" in r.output, r.output


def test_damaged_original_is_named_with_its_path_and_fix(two_photos):
    root, _ = two_photos
    ws = Workspace.open(root)
    with ws.session() as s:
        image_id, sha = s.exec(select(Image.id, Image.sha256).order_by(Image.id)).first()
    obj = ws.store.path_for(sha)
    obj.chmod(0o600)
    obj.write_bytes(b"hello")
    with sqlite3.connect(root / "catalogue.db") as db:
        db.execute("delete from dedupe_codes")
    r = runner.invoke(app, ["dedupe", "-w", str(root), "--workers", "1", "--min-side", "64", "--no-review", "--json"])
    _clean(r)
    assert r.exit_code == 0, r.output
    [skipped] = json.loads(r.stdout)["skipped"]
    reason = skipped["reason"]
    rel = f"objects/{sha[:2]}/{sha[2:]}"
    assert skipped["image_id"] == image_id and reason.startswith(f"image {image_id}: its stored original {rel}")
    assert str(root) not in reason and "curate ingest" in reason and "damaged" in reason and "SHA-256" in reason
    assert " at 0x" not in reason and "BytesIO" not in reason and "\n" not in reason

    r = runner.invoke(app, ["dedupe", "-w", str(root), "--workers", "1", "--min-side", "64", "--no-review"])
    line = " ".join(r.stdout.split())
    assert f"skipped image {image_id}: its stored original {rel} is damaged" in line, r.stdout
    assert f"skipped image {image_id}: image" not in line  # the id once, not twice


def _overwrite_first_with_second(root):
    """Overwrite the first photo's stored original with the second's bytes (it decodes fine: it is the other
    photo); ((first id, its sha), (second id, its sha))."""
    ws = Workspace.open(root)
    with ws.session() as s:
        (first, sha0), (second, sha1) = s.exec(select(Image.id, Image.sha256).order_by(Image.id)).all()
    obj = ws.store.path_for(sha0)
    obj.chmod(0o600)
    obj.write_bytes(ws.store.path_for(sha1).read_bytes())
    return (first, sha0), (second, sha1)


def test_a_damaged_original_that_still_decodes_is_skipped_until_restored(two_photos):
    """A stored original overwritten by another photo's bytes (bit rot that still decodes, a wrong backup
    restored) is skipped with its reason, not hashed as a duplicate of that photo; once `curate ingest`
    writes it back, dedupe hashes it again and the two photos stay apart."""
    root, folder = two_photos
    (first, sha0), (second, sha1) = _overwrite_first_with_second(root)
    with sqlite3.connect(root / "catalogue.db") as db:
        db.execute("delete from dedupe_codes")
    args = ["dedupe", "-w", str(root), "--workers", "1", "--min-side", "64", "--no-review", "--json"]
    r = runner.invoke(app, args)
    _clean(r)
    out = json.loads(r.stdout)
    assert [x["image_id"] for x in out["skipped"]] == [first] and "damaged" in out["skipped"][0]["reason"]
    assert out["pairs"] == {} or not any(out["pairs"].values()), out["pairs"]  # no pair with the other photo

    r = runner.invoke(app, ["ingest", str(folder), "--source", "clinic-x", "--workers", "1", "-w", str(root)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, args)
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and out["skipped"] == [] and not any(out["pairs"].values()), r.output
    with sqlite3.connect(root / "catalogue.db") as db:
        hashed = dict(db.execute("select image_id, image_sha256 from dedupe_codes").fetchall())
    assert hashed == {first: sha0, second: sha1}


def test_ingest_restores_what_the_reason_names(two_photos):
    """The fix the reason gives works: ingest writes the damaged original again, and dedupe hashes it."""
    root, folder = two_photos
    ws = Workspace.open(root)
    with ws.session() as s:
        sha = s.exec(select(Image.sha256).order_by(Image.id)).first()
    obj = ws.store.path_for(sha)
    obj.chmod(0o600)
    obj.unlink()
    with sqlite3.connect(root / "catalogue.db") as db:
        db.execute("delete from dedupe_codes")
    r = runner.invoke(app, ["dedupe", "-w", str(root), "--workers", "1", "--min-side", "64", "--no-review", "--json"])
    [skipped] = json.loads(r.stdout)["skipped"]
    assert "is unreadable (No such file or directory)" in skipped["reason"] and "curate ingest" in skipped["reason"]
    r = runner.invoke(app, ["ingest", str(folder), "--source", "clinic-x", "--workers", "1", "-w", str(root)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["dedupe", "-w", str(root), "--workers", "1", "--min-side", "64", "--no-review", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["skipped"] == [], r.output


def test_verification_takes_no_features_of_an_original_damaged_since_it_was_hashed(two_photos):
    """An original damaged after its codes were stored is not read again as if intact: verification takes no
    features of it (its pairs are judged on no evidence, never on the other photo's pixels) and says why."""
    from curate.dedupe import verify
    from curate.dedupe.pairs import Verifier

    root, _ = two_photos
    (first, _), (second, _) = _overwrite_first_with_second(root)
    verifier = Verifier(Workspace.open(root), 1)
    assert verifier.feature((first, verify.COARSE)) is None
    assert verifier.feature((second, verify.COARSE)) is not None
    assert list(verifier.unread) == [first] and "is damaged" in verifier.unread[first]
    assert "curate ingest" in verifier.unread[first]


def test_options_typed_before_a_sub_command_are_refused_not_dropped(two_photos, tmp_path, monkeypatch):
    """A probe: `curate dedupe -w B split 5 6`, typed in workspace A's folder, recorded the split in A (replacing A's
    own merge), and `curate dedupe --json split` printed text: the group's options never reached the sub-command."""
    root, _ = two_photos
    other = tmp_path / "other"
    Workspace.init(other)
    monkeypatch.chdir(other)
    r = runner.invoke(app, ["dedupe", "-w", str(root), "merge", "1", "2"])
    _clean(r)
    assert r.exit_code == 2 and "put --workspace after `merge`" in r.output, r.output
    r = runner.invoke(app, ["dedupe", "--json", "--min-side", "5", "merge", "1", "2", "-w", str(root)])
    assert r.exit_code == 2 and json.loads(r.stdout)["error"].endswith(
        "put --json after `merge`; `curate dedupe merge` has no --min-side"
    ), r.output
    r = runner.invoke(app, ["dedupe", "decisions", "-w", str(root), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout) == [], r.output  # nothing recorded
    r = runner.invoke(app, ["dedupe", "merge", "1", "2", "-w", str(root)])  # after it: taken
    assert r.exit_code == 0, r.output
