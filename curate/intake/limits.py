"""Intake's size limits, in a module without imports so that `curate --help` can show them cheaply."""

MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb limit, Image.MAX_IMAGE_PIXELS (~89 Mpx; a test checks)
MAX_BYTES = 100_000_000  # "100 MB" in README, --help and every message (before: 100 MiB, said as "105 MB")
