"""mpox-curate: intake → dedupe → label → consensus → export, over one catalogue."""

__version__ = "0.1.0"

try:  # HEIC/HEIF (phone photos) through a well-kept plug-in: registered once, for every module that opens images
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIF = True
except ImportError:  # pragma: no cover - optional
    HEIF = False
