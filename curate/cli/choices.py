"""Choices the command line offers as typer Enums, for libraries too heavy to import when `--help` is built.

Each mirrors the library's own list (named beside it); tests/test_cli_startup.py checks they are equal, so
the two cannot drift. The library still checks what other callers (source.toml, Python) pass it.
"""

from __future__ import annotations

from enum import StrEnum


class SourceKind(StrEnum):  # curate.intake.catalogue.SOURCE_KINDS
    CLINIC = "clinic"
    PUBLIC = "public"
    WEB = "web"


class ExportTask(StrEnum):  # curate.export.plan.TASKS
    BINARY = "binary"
    DIAGNOSIS = "diagnosis"


class ResizePolicy(StrEnum):  # curate.dataset.RESIZE_POLICIES
    STRETCH = "stretch"
    PAD = "pad"
    CENTER_CROP = "center-crop"


class PushOrder(StrEnum):  # curate.label.order.Order
    CATALOGUE = "catalogue"
    RANDOM = "random"
    UNCERTAINTY = "uncertainty"


class DedupeMethod(StrEnum):  # curate.dedupe.hashing.METHODS
    PHASH = "phash"
    REGION_PHASH = "region-phash"


class SearchBackend(StrEnum):  # curate.dedupe.search.Backend
    AUTO = "auto"
    BRUTE_FORCE = "brute-force"
    MULTI_INDEX = "multi-index"
