"""Special files under an ingested folder: every one a clear outcome, named, and nothing hangs or blows up."""

from __future__ import annotations

import json
import os
import socket

import images as I
import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.intake.ingest import IngestOptions, ingest_folder


def _avif() -> bytes:
    import io

    from PIL import Image, features

    if not features.check("avif"):  # a Pillow without AVIF: its bytes are no image it knows either
        return b"\x00\x00\x00\x1cftypavif" + bytes(64)
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 40, 40)).save(out, "AVIF")
    return out.getvalue()


@pytest.fixture
def odd(tmp_path):
    root = tmp_path / "odd"
    root.mkdir()
    (root / "ok.jpg").write_bytes(I.jpeg(1))
    (root / "IMG_0001").write_bytes(I.jpeg(2))  # a JPEG with no extension
    (root / "notes.txt").write_text("not a photo")
    (root / "phone.avif").write_bytes(_avif())  # a format Pillow reads, ingest does not take
    os.mkfifo(root / "pipe.jpg")  # a FIFO with an image name: opening it would block forever
    with open(root / "sparse.jpg", "wb") as fh:  # 3 GB, almost no disk: reading it whole is a MemoryError
        fh.write(I.jpeg(3)[:100])
        fh.truncate(3 * 1024**3)
    (root / "zero.jpg").symlink_to("/dev/zero")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.jpg").write_bytes(I.jpeg(4))
    (outside / "in_folder.jpg").write_bytes(I.jpeg(5))
    (root / "link.jpg").symlink_to(outside / "private.jpg")
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    (root / "inner.jpg").symlink_to(root / "ok.jpg")  # inside the folder: fine
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock.jpg"))
    yield root
    sock.close()


@pytest.mark.timeout(120)  # a FIFO that is opened blocks forever: fail, don't hang the suite
def test_special_files_are_skipped_or_rejected_with_reasons(sqlite_ws, odd):
    report = ingest_folder(sqlite_ws, odd, IngestOptions(source="odd", workers=1))
    skipped, rejected = dict(report.skipped), dict(report.rejected)
    assert report.added == 2 and report.provenance == 1  # ok.jpg, IMG_0001, and inner.jpg (same bytes as ok.jpg)
    assert skipped["pipe.jpg"] == "a named pipe (special file, not read)"
    assert skipped["sock.jpg"] == "a socket (special file, not read)"
    assert skipped["notes.txt"] == "not an image (no image signature)"
    from PIL import features

    if features.check("avif"):  # before: "not an image (no image signature)", for a phone's photo
        assert skipped["phone.avif"].startswith("unsupported image format AVIF (ingest takes BMP, GIF, HEIF, JPEG")
    assert skipped["zero.jpg"].startswith("symlink to a file outside the ingested folder")
    assert skipped["link.jpg"].startswith("symlink to a file outside the ingested folder")
    assert skipped["elsewhere/"].startswith("symlink to a folder outside the ingested folder")
    assert rejected == {"sparse.jpg": "file too large (3221 MB > 100 MB)"}


@pytest.mark.timeout(120)
def test_follow_symlinks_reads_outside_but_never_a_device(sqlite_ws, odd):
    report = ingest_folder(sqlite_ws, odd, IngestOptions(source="odd", workers=2, follow_symlinks=True))
    skipped = dict(report.skipped)
    assert skipped["zero.jpg"] == "a character device (special file, not read)"
    assert report.added == 4  # ok, IMG_0001, the linked private.jpg, elsewhere/in_folder.jpg


@pytest.mark.timeout(120)
def test_cli_names_every_skipped_file(tmp_path, odd):
    runner = CliRunner()
    assert runner.invoke(app, ["init", str(tmp_path / "ws")]).exit_code == 0
    env = {"CURATE_WORKSPACE": str(tmp_path / "ws")}
    out = runner.invoke(app, ["ingest", str(odd), "--source", "odd", "--workers", "1"], env=env)
    assert out.exit_code == 0, out.output
    last = [line for line in out.output.splitlines() if "files skipped" in line][0]
    for name in ("pipe.jpg", "sock.jpg", "notes.txt", "phone.avif", "zero.jpg", "link.jpg", "elsewhere/"):
        assert name in last, last
    out = runner.invoke(app, ["ingest", str(odd), "--source", "odd", "--json", "--workers", "1"], env=env)
    data = json.loads(out.stdout)
    assert {e["file"] for e in data["skipped"]} == {
        "pipe.jpg",
        "sock.jpg",
        "notes.txt",
        "phone.avif",
        "zero.jpg",
        "link.jpg",
        "elsewhere/",
    }
    assert data["ignored"] == 7


def test_the_workspace_is_never_ingested_into_itself(tmp_path):
    """The store, exports and the raters' copies hold copies of stored photos: ingesting the workspace (or a
    folder holding it) made the store a second source of every photo, located in objects/. Its own folders
    are skipped, named; a folder inside one of them is refused in one line; photos beside them still come in."""
    from curate.errors import ConfigError
    from curate.workspace import Workspace

    parent = tmp_path / "project"
    photos = parent / "photos"
    photos.mkdir(parents=True)
    for k in range(3):
        (photos / f"p{k}.jpg").write_bytes(I.jpeg(10 + k))
    ws = Workspace.init(parent / "ws")
    assert ingest_folder(ws, photos, IngestOptions(source="clinic", workers=1)).added == 3
    (ws.root / "studio" / "files").mkdir(parents=True)
    (ws.root / "studio" / "files" / "copy.jpg").write_bytes(I.jpeg(10))

    again = ingest_folder(ws, ws.root, IngestOptions(source="self", workers=1))
    assert again.added == 0 and again.provenance == 0, again
    assert {f for f, why in again.skipped if "workspace's own folder" in why} >= {"objects/", "studio/", "tmp/"}
    above = ingest_folder(ws, parent, IngestOptions(source="project", workers=1))  # the workspace inside it
    assert above.added == 0 and above.provenance == 3  # photos/p*.jpg: new arrivals of the same photos
    assert "ws/objects/" in dict(above.skipped)
    # before: a folder of studies holding another workspace put that study's whole store in, as photos
    other = Workspace.init(parent / "study2023")
    assert ingest_folder(other, photos, IngestOptions(source="old", workers=1)).added == 3
    (other.root / "exports" / "v1").mkdir(parents=True)
    (other.root / "exports" / "v1" / "x.jpg").write_bytes(I.jpeg(77))
    studies = ingest_folder(ws, parent, IngestOptions(source="studies", workers=1))
    assert studies.added == 0 and studies.provenance == 3, studies
    assert {f for f, why in studies.skipped if "another workspace's own folder" in why} >= {
        "study2023/objects/",
        "study2023/exports/",
    }
    assert "ws/objects/" in dict(studies.skipped)
    with pytest.raises(ConfigError, match=r"in the workspace's own objects/ folder"):
        ingest_folder(ws, ws.objects, IngestOptions(source="store", workers=1))
    with pytest.raises(ConfigError, match=r"own studio/ folder"):
        ingest_folder(ws, ws.root / "studio" / "files", IngestOptions(source="copies", workers=1))
    moved = tmp_path / "other-disk" / "objects"  # the store on another disk, linked into the workspace
    moved.parent.mkdir()
    ws.objects.rename(moved)
    ws.objects.symlink_to(moved, target_is_directory=True)
    with pytest.raises(ConfigError, match=r"own objects/ folder"):
        ingest_folder(ws, ws.objects, IngestOptions(source="store", workers=1))
    with pytest.raises(ConfigError, match=r"own objects/ folder"):
        ingest_folder(ws, moved, IngestOptions(source="store", workers=1))


def test_an_unreadable_file_counts_in_its_label_row_and_the_file_total(sqlite_ws, tmp_path):
    """Before: a dangling link or a link loop was in the table's rejected total only: the label rows said 6
    rejected, the total 9, and "20 files" counted 23."""
    folder = tmp_path / "in"
    (folder / "Mpox").mkdir(parents=True)
    (folder / "Mpox" / "ok.jpg").write_bytes(I.jpeg(1))
    (folder / "Mpox" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (folder / "loopA").symlink_to(folder / "loopB")
    (folder / "loopB").symlink_to(folder / "loopA")
    report = ingest_folder(sqlite_ws, folder, IngestOptions(source="clinic", label_from_folders=True, workers=1))
    assert len(report.rejected) == 3 and report.files == 4
    assert report.per_class["mpox"]["rejected"] == 1 and report.per_class["(none)"]["rejected"] == 2
    assert sum(c["rejected"] for c in report.per_class.values()) == len(report.rejected)


def test_the_size_limit_is_the_100_mb_it_is_said_to_be(sqlite_ws, tmp_path):
    """Before: 100 MiB, said as "105 MB"; a 102 MB file was read and sniffed, not refused by its size unread."""
    folder = tmp_path / "big"
    folder.mkdir()
    with open(folder / "big.jpg", "wb") as fh:  # sparse: takes no disk
        fh.truncate(102_000_000)
    report = ingest_folder(sqlite_ws, folder, IngestOptions(source="big", workers=1))
    assert dict(report.rejected) == {"big.jpg": "file too large (102 MB > 100 MB)"}


def test_trash_thumbnail_and_hidden_folders_are_not_ingested(sqlite_ws, tmp_path):
    """A probe's clinic folder held a Mac's `.Trashes/501/`, a Linux drive's `.Trash-1000/files/`, Windows'
    `$RECYCLE.BIN/`, a Synology NAS's `@eaDir/` thumbnails and `#recycle/`: every photo in them was catalogued
    with nothing said, a photo the clinic had deleted (consent withdrawn) among them."""
    root = tmp_path / "clinic"
    folders = [".Trashes/501", ".Trash-1000/files", "$RECYCLE.BIN/S-1-5-21", "@eaDir/p1.jpg", "#recycle", "case 7"]
    for n, folder in enumerate(folders):
        (root / folder).mkdir(parents=True)
        (root / folder / f"photo{n}.jpg").write_bytes(I.jpeg(n + 10))
    report = ingest_folder(sqlite_ws, root, IngestOptions(source="clinic", workers=1))
    assert report.added == 1  # case 7's photo alone
    skipped = dict(report.skipped)
    assert set(skipped) == {".Trashes/", ".Trash-1000/", "$RECYCLE.BIN/", "@eaDir/", "#recycle/"}
    assert skipped["$RECYCLE.BIN/"].startswith("a trash or system folder") and "hidden" in skipped[".Trashes/"]
