"""A JPEG whose coded pixels hold a long run of zero bytes: damage libjpeg decodes without an error, as grey
blocks (a failed copy, a crash mid-write). Ingest refuses such a file; `train predict` and `train serve` refuse it
too, so a model is never asked to decide on a photo half of which is grey (the same file, the same verdict).

Hand-written: Pillow and OpenCV decode the file (OpenCV prints "Corrupt JPEG data" on stderr, Pillow nothing),
and neither says where, or whether, the coded data was zeroed."""

from __future__ import annotations

import re

ZEROED_RUN = 256  # zero bytes in a row in a JPEG's coded pixels: a block the disk or a copy never wrote
# the code-length counts of JPEG's example Huffman tables (ITU T.81 Annex K.3), which cameras and libjpeg's default
# encoder write: DC luminance and chrominance, then AC luminance and chrominance
_STANDARD_COUNTS = {
    0: {
        bytes([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]),
        bytes([0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]),
    },
    1: {
        bytes([0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D]),
        bytes([0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77]),
    },
}
_SEQUENTIAL = (0xC0, 0xC1)  # baseline and extended sequential, Huffman-coded; any other frame is not asked
_FRAMES = (*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xD0))  # SOF0-15 and DAC (arithmetic), not DHT
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")  # a marker after coded pixels: neither a stuffed 0 nor a restart


def zeroed_run(data: bytes) -> int | None:
    """Where a sequential JPEG with the standard Huffman tables holds `ZEROED_RUN` zero bytes in a row in a scan's
    coded pixels; None when it does not, or when it is not such a JPEG. libjpeg decodes such a stretch without an
    error (Pillow raises nothing; OpenCV prints "Corrupt JPEG data"), as grey blocks: a photo a failed copy or a
    crash left half written was stored as whole.

    Only where zeros cannot be the picture: with the standard tables all-zero bits code a coefficient of -1 again
    and again, never a flat block (the longest zero run in the scikit-image photos at qualities 5-100, enlarged or
    not: 3 bytes). Tables an encoder optimised for the picture (Pillow's `optimize`, jpegoptim) may give the
    commonest symbol, a flat block's, an all-zero code, and a progressive or arithmetic-coded file has runs of its
    own (8,192 and more): none of those is asked. The segments are walked by their lengths, so an EXIF thumbnail's
    scan or a marker's bytes inside metadata are never taken for the picture's."""
    if not data.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None  # not a marker where one must be: no judgement
        marker = data[pos + 1]
        if marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # fill, restart, TEM: no length
            pos += 1 if marker == 0xFF else 2
            continue
        if marker == 0xD9:
            return None
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        segment = data[pos + 4 : end]
        if marker in _FRAMES and marker not in _SEQUENTIAL:  # progressive, lossless, arithmetic: not asked
            return None
        if marker == 0xC4 and not _standard_tables(segment):
            return None
        if marker == 0xDA:
            found = _SCAN_END.search(data, end)
            stop = found.start() if found else len(data)
            at = data.find(b"\0" * ZEROED_RUN, end, stop)
            if at >= 0:
                return at
            end = stop
        pos = end
    return None


def _standard_tables(segment: bytes) -> bool:
    """Whether every Huffman table a DHT segment defines has the standard tables' code lengths (`_STANDARD_COUNTS`)."""
    i = 0
    while i + 17 <= len(segment):
        counts = segment[i + 1 : i + 17]
        if counts not in _STANDARD_COUNTS.get(segment[i] >> 4, ()):
            return False
        i += 17 + sum(counts)
    return True
