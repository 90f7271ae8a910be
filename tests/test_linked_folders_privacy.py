"""A workspace folder moved to a bigger disk and linked back (`mv ws/objects /nas/objects; ln -s /nas/objects
ws/objects`) is as private as the folder it stands for. A probe opened the moved store (`chmod -R go+rX`, as a disk
mounted with open modes or a copy with a permissive umask leaves it): `curate status` said nothing, `curate init`
left 312 originals readable by other local users, since the check and the close skipped every symlink."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import images as I
import pytest
from typer.testing import CliRunner

from curate.cli import app


@pytest.fixture(autouse=True)
def private_umask():
    """The umask `curate`'s main sets before every command (CliRunner calls the app, not main)."""
    old = os.umask(0o077)
    yield
    os.umask(old)


def curate(*args) -> str:
    """The real command line in this process; its output (stdout and stderr) once it exited 0 without a traceback."""
    r = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output, r.output
    return r.output


def photos(folder: Path, n: int, start: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        (folder / f"p{i:03d}.jpg").write_bytes(I.jpeg(i))
    return folder


def open_up(top: Path) -> None:
    """`chmod -R go+rX top`: every file readable by the group and others, every folder enterable."""
    for p in [top, *top.rglob("*")]:
        if p.is_symlink():
            continue
        mode = stat.S_IMODE(p.lstat().st_mode) | 0o044 | (0o011 if p.is_dir() else 0)
        os.chmod(p, mode)


def open_modes(top: Path) -> dict[str, str]:
    """Everything under `top` (itself included, links not followed) the group or others may read, write or enter."""
    return {
        str(p.relative_to(top)): oct(stat.S_IMODE(p.lstat().st_mode))
        for p in [top, *top.rglob("*")]
        if not p.is_symlink() and p.lstat().st_mode & 0o077
    }


def exposed(root: Path) -> list[str]:
    return [e["path"] for e in json.loads(curate("status", "--json", "-w", root))["exposed_paths"]]


def moved_store(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace with 3 photos ingested whose objects/ was moved to another folder and linked back."""
    root = tmp_path / "ws"
    curate("init", root)
    curate("ingest", photos(tmp_path / "in", 3), "--source", "clinic", "-w", root)
    nas = tmp_path / "nas" / "objects"
    nas.parent.mkdir()
    shutil.move(root / "objects", nas)
    (root / "objects").symlink_to(nas, target_is_directory=True)
    assert len([p for p in nas.rglob("*") if p.is_file()]) == 3
    return root, nas


def test_an_objects_folder_linked_elsewhere_and_opened_is_named_by_status_and_closed_by_init(tmp_path):
    root, nas = moved_store(tmp_path)
    assert not open_modes(nas)  # the store was private when it moved
    open_up(nas)
    assert open_modes(nas)

    out = " ".join(curate("status", "-w", root).split())
    assert "warning: readable by other local users: objects/ → " in out, out
    assert f"objects/ → {nas.resolve()} (3 files, " in out, out
    for sha_folder in (p.name for p in nas.iterdir()):  # never a deeper path: the store's folders and digests
        assert f"/{sha_folder}" not in out.replace(str(nas.resolve()), "")
    assert exposed(root) == [f"objects/ → {nas.resolve()}"]

    curate("init", root)
    assert not open_modes(nas)  # the folder linked to, its folders and every original: owner-only
    assert stat.S_IMODE(nas.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o400 for p in nas.rglob("*") if p.is_file())  # still read-only
    assert "readable by other local users" not in curate("status", "-w", root)
    assert json.loads(curate("status", "--json", "-w", root))["missing_originals"] == 0


def test_a_writing_command_closes_a_linked_store_opened_before_it_writes(tmp_path):
    root, nas = moved_store(tmp_path)
    open_up(nas)
    out = curate("ingest", photos(tmp_path / "more", 1, start=40), "--source", "clinic", "-w", root)
    assert "made this workspace private" in out, out
    assert not open_modes(nas)
    assert len([p for p in nas.rglob("*") if p.is_file()]) == 4  # the new photo went through the link
    assert exposed(root) == []

    again = curate("ingest", photos(tmp_path / "more2", 1, start=41), "--source", "clinic", "-w", root)
    assert "made this workspace private" not in again  # nothing left to close: said once


def test_an_exports_folder_opened_only_inside_is_still_named(tmp_path):
    """A copy with a permissive umask into a private folder: the files are open, the folder is not. Status names
    it (the exposure walk reads every mode); init closes it."""
    root, _ = moved_store(tmp_path)
    disk = tmp_path / "big" / "exports"
    disk.mkdir(parents=True, mode=0o700)
    (disk / "mpox").mkdir()
    os.chmod(disk / "mpox", 0o755)
    (disk / "mpox" / "manifest.csv").write_text("x")
    os.chmod(disk / "mpox" / "manifest.csv", 0o644)
    shutil.rmtree(root / "exports")
    (root / "exports").symlink_to(disk)
    assert exposed(root) == [f"exports/ → {disk.resolve()}"]
    curate("init", root)
    assert not open_modes(disk)


def test_a_tmp_linked_to_a_shared_scratch_folder_is_left_as_it_is(tmp_path):
    """tmp/ linked to a scratch folder others share (an export on another disk is told to link it): other
    workspaces' builds and other programs' files are there, and the folder itself must stay open to them."""
    root, nas = moved_store(tmp_path)
    scratch = tmp_path / "scratch"
    (scratch / "other-build").mkdir(parents=True)
    (scratch / "other-build" / "img.png").write_bytes(b"another workspace's build")
    os.chmod(scratch, 0o1777)
    os.chmod(scratch / "other-build", 0o755)
    os.chmod(scratch / "other-build" / "img.png", 0o644)
    shutil.rmtree(root / "tmp")
    (root / "tmp").symlink_to(scratch)
    before = {p: stat.S_IMODE(p.lstat().st_mode) for p in [scratch, *scratch.rglob("*")]}
    open_up(nas)

    assert exposed(root) == [f"objects/ → {nas.resolve()}"]  # tmp/ is not named
    curate("init", root)
    curate("ingest", photos(tmp_path / "more", 1, start=40), "--source", "clinic", "-w", root)
    assert {p: stat.S_IMODE(p.lstat().st_mode) for p in before} == before
    assert not open_modes(nas)


def test_dangling_looping_and_enclosing_links_at_top_level_are_passed_over(tmp_path):
    root, nas = moved_store(tmp_path)
    (root / "gone").symlink_to(tmp_path / "nowhere")
    (root / "loop").symlink_to(root / "loop")
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")
    (root / "up").symlink_to(tmp_path)  # a folder around the workspace: following it would take the whole disk
    (root / "self").symlink_to(root)
    (root / "inside").symlink_to(root / "reports")
    beside = tmp_path / "notes.txt"
    beside.write_text("not the workspace's")
    os.chmod(beside, 0o644)
    open_up(nas)

    assert exposed(root) == [f"objects/ → {nas.resolve()}"]
    assert "readable by other local users" in curate("status", "-w", root)
    curate("init", root)
    curate("ingest", photos(tmp_path / "more", 1, start=40), "--source", "clinic", "-w", root)
    assert not open_modes(nas)
    assert stat.S_IMODE(beside.stat().st_mode) == 0o644
    assert exposed(root) == []


def test_a_link_deeper_down_is_never_followed(tmp_path):
    root, nas = moved_store(tmp_path)
    far = tmp_path / "far"
    far.mkdir()
    os.chmod(far, 0o755)
    (far / "x.txt").write_text("x")
    os.chmod(far / "x.txt", 0o644)
    (nas / "deeper").symlink_to(far)  # inside the linked folder: not the workspace's own top-level entry
    (root / "reports" / "deeper").symlink_to(far)
    curate("init", root)
    assert open_modes(far) == {".": "0o755", "x.txt": "0o644"}


@pytest.mark.skipif(os.geteuid() != 0, reason="making files another user's needs root")
def test_files_of_another_user_and_a_link_another_user_made_are_left_alone(tmp_path):
    root, nas = moved_store(tmp_path)
    open_up(nas)
    theirs = nas / "theirs.txt"
    theirs.write_text("x")
    os.chmod(theirs, 0o644)
    os.chown(theirs, 65534, 65534)
    planted = tmp_path / "planted"
    planted.mkdir()
    os.chmod(planted, 0o755)
    (root / "planted").symlink_to(planted)
    os.lchown(root / "planted", 65534, 65534)
    curate("init", root)
    assert open_modes(nas) == {"theirs.txt": "0o644"}
    assert open_modes(planted) == {".": "0o755"}


def test_a_link_to_a_folder_that_is_not_the_workspaces_is_left_alone(tmp_path):
    """A review of the fix: every top-level link was closed, a folder the steward shares on purpose (published
    datasets, `etc -> /etc` as root) included. Only the workspace's own folders are followed."""
    root, nas = moved_store(tmp_path)
    published = tmp_path / "published"
    (published / "sub").mkdir(parents=True)
    (published / "readme.txt").write_text("for everyone")
    for p, mode in ((published, 0o755), (published / "sub", 0o755), (published / "readme.txt", 0o644)):
        os.chmod(p, mode)
    (root / "published").symlink_to(published)
    before = {p: stat.S_IMODE(p.lstat().st_mode) for p in [published, *published.rglob("*")]}
    open_up(nas)
    assert exposed(root) == [f"objects/ → {nas.resolve()}"]
    curate("init", root)
    curate("ingest", photos(tmp_path / "more", 1, start=40), "--source", "clinic", "-w", root)
    assert {p: stat.S_IMODE(p.lstat().st_mode) for p in before} == before
    assert not open_modes(nas)
