"""Intake's size limits, in a module without imports so that `curate --help` can show them cheaply."""

MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb limit, Image.MAX_IMAGE_PIXELS (~89 Mpx; a test checks)
MAX_BYTES = 100 * 1024 * 1024
