"""The one atomic-write helper (curate/files.py): a failed write leaves the old file and no partial one."""

import os
import stat
import tarfile
from pathlib import Path

import pytest

from curate.files import atomic_path, write_atomic


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_write_atomic_replaces_whole_file_owner_only(tmp_path):
    dest = tmp_path / "sub" / "a.txt"
    write_atomic(dest, "first")
    write_atomic(dest, b"second")
    assert dest.read_text() == "second"
    assert _mode(dest) == 0o600  # not readable by other local users, whatever the umask
    assert [p.name for p in dest.parent.iterdir()] == ["a.txt"]


def test_mode_fsync_and_separate_tmp_dir(tmp_path):
    dest, tmp = tmp_path / "objects" / "ab" / "cd", tmp_path / "tmp"
    write_atomic(dest, b"x" * 10, tmp, mode=0o400, fsync=True)
    assert dest.read_bytes() == b"x" * 10 and _mode(dest) == 0o400
    assert list(tmp.iterdir()) == []


def test_a_file_for_another_file_system_is_written_beside_it(tmp_path):
    """Before: `curate label report --html /dev/shm/r.html` failed with "Invalid cross-device link": the part was
    made in the workspace's tmp/ and could not be renamed onto another disk."""
    import tempfile

    other = tempfile.mkdtemp(dir="/dev/shm") if os.path.isdir("/dev/shm") else None
    if other is None or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system here")
    try:
        dest = os.path.join(other, "r.html")
        write_atomic(dest, "<p>report</p>", tmp_path / "tmp")
        assert Path(dest).read_text() == "<p>report</p>" and os.listdir(other) == ["r.html"]
        assert list((tmp_path / "tmp").iterdir()) == []
    finally:
        for name in os.listdir(other):
            os.unlink(os.path.join(other, name))
        os.rmdir(other)


def test_a_failed_writer_leaves_the_old_file_and_nothing_else(tmp_path):
    dest = tmp_path / "model.pt"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_bytes(b"half of the new")
        raise RuntimeError("killed mid-write")
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_archive_written_through_a_path(tmp_path):
    (tmp_path / "member.txt").write_text("hello")
    dest = tmp_path / "out.tar"
    with atomic_path(dest, mode=0o400) as tmp:
        assert tmp != dest and tmp.exists() and not dest.exists()
        with tarfile.open(tmp, "w") as tar:
            tar.add(tmp_path / "member.txt", arcname="member.txt")
    with tarfile.open(dest) as tar:
        assert tar.getnames() == ["member.txt"]
    assert _mode(dest) == 0o400


def test_symlink_through_a_path(tmp_path):
    target = tmp_path / "original"
    target.write_bytes(b"pixels")
    link = tmp_path / "files" / "ab.jpg"
    with atomic_path(link) as tmp:
        tmp.unlink()
        os.symlink(os.path.relpath(target, link.parent), tmp)
    assert link.is_symlink() and link.read_bytes() == b"pixels"
