"""Train triage classifiers on an exported dataset version (reads only `curate.dataset`)."""
