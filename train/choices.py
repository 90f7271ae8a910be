"""Choices the CLI offers as typer Enums, importable without torch (for --help)."""
from __future__ import annotations

from enum import Enum


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"
