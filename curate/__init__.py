"""mpox-curate: intake → dedupe → label → consensus → export, over one catalogue."""

__version__ = "0.1.0"
