"""Where the network runs: `cpu`, `cuda` or `auto`, and mixed precision (bfloat16 autocast) on CUDA."""

from __future__ import annotations

import contextlib
from enum import StrEnum

from curate.errors import DeviceError


class Device(StrEnum):
    cpu = "cpu"
    cuda = "cuda"
    auto = "auto"


def resolve_device(name: str) -> str:
    """'auto' picks cuda when torch sees a GPU; 'cuda' without one is an error, not a silent CPU run."""
    import torch  # lazily: the CLI imports Device for --help without torch installed

    name = str(getattr(name, "value", name))
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(
            f"--device {name}: torch sees no CUDA GPU here (torch {torch.__version__}); use --device cpu or auto"
        )
    if name != "cpu" and not name.startswith("cuda"):
        raise DeviceError(f"--device {name}: choose cpu, cuda or auto")
    return name


def autocast(device: str):
    """bfloat16 autocast on CUDA (no loss scaling needed), a no-op elsewhere."""
    if str(device).startswith("cuda"):
        import torch

        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def precision_tag(device: str) -> str:
    """Part of the feature-cache identity: bf16 features must not mix with float32 ones."""
    return "amp-bf16" if str(device).startswith("cuda") else "fp32"
