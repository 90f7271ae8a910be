"""Choices the CLI offers as typer Enums, importable without torch (for --help)."""

from __future__ import annotations

from enum import StrEnum


class ExportFormat(StrEnum):
    onnx = "onnx"
    torchscript = "torchscript"


class ArchName(StrEnum):
    """`--arch`: the paper's six torchvision backbones and EfficientNet-Lite0 (`train.models.ARCHS`)."""

    mobilenet_v2 = "mobilenet_v2"
    shufflenet_v2 = "shufflenet_v2"
    densenet121 = "densenet121"
    resnet18 = "resnet18"
    resnet34 = "resnet34"
    swin_t = "swin_t"
    efficientnet_lite0 = "efficientnet_lite0"


class ServeEngine(StrEnum):
    """`train serve --engine`: what runs the network for requests without Grad-CAM (Grad-CAM needs torch)."""

    auto = "auto"  # onnxruntime when it is installed and the model is on the CPU, else torch
    torch = "torch"
    onnxruntime = "onnxruntime"
