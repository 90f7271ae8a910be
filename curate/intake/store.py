"""Content-addressed store of originals: `objects/ab/cdef…`, written once, read-only.

A file is written to `tmp/`, flushed to disk and renamed into place (`curate.files.write_atomic`),
so a killed process leaves either the whole object or nothing under `objects/`.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

from curate.errors import StoreError
from curate.files import write_atomic


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ImageStore:
    def __init__(self, objects: Path, tmp: Path | None = None):
        self.objects = Path(objects)
        self.tmp = Path(tmp) if tmp else self.objects / ".tmp"

    def path_for(self, sha256: str) -> Path:
        return self.objects / sha256[:2] / sha256[2:]

    def has(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def intact(self, sha256: str, size: int) -> bool:
        """Whether the object is there at its recorded size (a stat, no hashing): what `curate status` counts as
        missing otherwise, and what a re-run of the scrape that brought it restores."""
        return self.fault(sha256, size) is None

    def fault(self, sha256: str, size: int) -> str | None:
        """None when the object is there at its recorded size and readable; else "unreadable" (the file system
        refuses it: a folder's permissions, a failing disk) or "missing" (absent, or of another size). Said apart
        by `curate status`: "missing" tells the steward to restore a file, "unreadable" to look at permissions."""
        path = self.path_for(sha256)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return "missing"
        except OSError:
            return "unreadable"
        if st.st_size != size:
            return "missing"
        return None if os.access(path, os.R_OK) else "unreadable"

    def read(self, sha256: str, check: bool = False) -> bytes:
        """The stored bytes; with `check`, only when they still hash to their name (else StoreError): for a
        reader whose result outlives the read, such as dedupe's verdicts, which a damaged copy that still
        decodes would otherwise turn into another photo's."""
        try:
            data = self.path_for(sha256).read_bytes()
        except OSError as exc:
            raise StoreError(f"object {sha256[:12]} unreadable: {exc.strerror}") from exc
        if check and sha256_bytes(data) != sha256:
            raise StoreError(
                f"its stored original {sha256[:12]} is damaged (its bytes no longer match their SHA-256): re-run "
                "`curate ingest` on its file to restore it"
            )
        return data

    def put(self, data: bytes, sha256: str | None = None) -> tuple[str, bool]:
        """Store `data`; return (sha256, True if it was written). Idempotent: an object already there is kept
        when it holds these very bytes, and written again when it is missing, cut short or damaged."""
        sha256 = sha256 or sha256_bytes(data)
        dest = self.path_for(sha256)
        if self._holds(dest, data):
            return sha256, False
        try:
            dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(dest, data, self.tmp, mode=0o400, fsync=True)
        except OSError as exc:
            reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            raise StoreError(f"cannot write object {sha256[:12]} to {self.objects}: {reason}") from exc
        return sha256, True

    @staticmethod
    def _holds(dest: Path, data: bytes) -> bool:
        """Whether `dest` holds exactly `data` (a stat first: most misses are a missing or short file)."""
        try:
            return dest.stat().st_size == len(data) and dest.read_bytes() == data
        except OSError:  # missing, or unreadable: written again
            return False

    def verify(self, sha256: str) -> bool:
        """True when the stored bytes still hash to their name."""
        try:
            return sha256_bytes(self.path_for(sha256).read_bytes()) == sha256
        except OSError:
            return False

    def iter_shas(self):
        for sub in sorted(self.objects.glob("??")):
            if sub.is_dir():
                for f in sorted(sub.iterdir()):
                    yield sub.name + f.name

    def count(self) -> int:
        """How many originals are stored (a listing of each objects/ab folder; none read)."""
        try:
            return sum(1 for _ in self.iter_shas())
        except OSError:
            return 0
