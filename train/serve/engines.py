"""What runs the network for `train serve`: torch, or onnxruntime for requests without Grad-CAM.

On a 2-core CPU, onnxruntime runs EfficientNet-Lite0's forward pass about twice as fast as torch
(bench/README.md, "Serving"), so `--engine auto` serves requests without Grad-CAM through it. The graph is
the one `train export-model --format onnx` writes (`train.export_model.onnx_bytes`), built in memory at
start-up and checked against torch on a probe input; if the two disagree by more than `TOLERANCE` (or the
export fails) the server says so in one log line and stays on torch. Grad-CAM needs gradients, so those
requests always run in torch. Either way the decision comes from the same code, `Ensemble.decide`, on
the fold-model mean's probabilities: calibration and operating threshold cannot differ between engines.
"""

from __future__ import annotations

import importlib.util
import logging
import os

import numpy as np
import torch

from train.choices import ServeEngine
from train.ensemble import Ensemble, Triage
from train.errors import TrainError
from train.export_model import onnx_bytes

log = logging.getLogger("train.serve")
# onnxruntime's usage tracking writes a device id and an event queue under ~/.cache/Microsoft when a session is
# made (measured with 1.32); this switch, read when it is imported, keeps it off unless the user set it otherwise
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
TOLERANCE = 1e-4  # largest |onnxruntime − torch| probability accepted at start-up
PROBE_SEED = 0


def default_threads() -> int:
    """Half the cores, at least 1: the other half decode uploads (see `train serve --threads`)."""
    return max(1, (os.cpu_count() or 2) // 2)


class TorchEngine:
    """The run's `Ensemble` in torch: probabilities, and Grad-CAM from the same forward pass."""

    name = "torch"

    def __init__(self, model: Ensemble):
        self.model = model

    def prepare(self, image, cam: bool):
        """One upright RGB image as this engine's input for a request (run in the request's thread)."""
        return self.model.preset(image)

    def run(self, inputs: list, cam: bool) -> list[Triage]:
        """`Triage` for a micro-batch of `prepare`'s outputs, all with or all without Grad-CAM."""
        return self.model.triage_tensor(torch.stack(inputs), cam)


class OnnxEngine(TorchEngine):
    """onnxruntime for requests without Grad-CAM (input in [0, 1]: the graph normalises), torch for the rest."""

    name = "onnxruntime"

    def __init__(self, model: Ensemble, session):
        super().__init__(model)
        self.session = session

    def prepare(self, image, cam: bool):
        return super().prepare(image, cam) if cam else self.model.preset.unit(image)

    def run(self, inputs: list, cam: bool) -> list[Triage]:
        if cam:
            return super().run(inputs, cam)
        return self.model.decide(self.probabilities(np.stack(inputs)).astype(np.float64))

    def probabilities(self, unit: np.ndarray) -> np.ndarray:
        return self.session.run(["probabilities"], {"image": unit})[0]


def onnxruntime_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def start_engine(model: Ensemble, choice: ServeEngine, threads: int | None = None) -> TorchEngine:
    """The engine `choice` asks for. `auto` is onnxruntime when installed and the model is on the CPU.
    An onnxruntime that cannot be built or disagrees with torch falls back to torch with one log line;
    `onnxruntime` asked for but not installed, or with a GPU model, is a `TrainError`."""
    choice = ServeEngine(choice)
    if choice is ServeEngine.torch:
        return TorchEngine(model)
    on_cpu = model.device.type == "cpu"
    if choice is ServeEngine.onnxruntime and not onnxruntime_installed():
        raise TrainError("--engine onnxruntime needs onnx and onnxruntime: pip install 'mpox-curate[serve]'")
    if choice is ServeEngine.onnxruntime and not on_cpu:
        raise TrainError(f"--engine onnxruntime runs on the CPU; use --device cpu or --engine torch ({model.device})")
    if not (on_cpu and onnxruntime_installed()):
        return TorchEngine(model)
    fold = model.folds[0] if len(model.folds) == 1 else None
    try:
        engine = OnnxEngine(model, _session(onnx_bytes(model, fold), threads))
        diff = _disagreement(engine, model)
    except Exception as exc:  # any failure to build it leaves the server on torch, which works
        log.warning("serving with torch: onnxruntime could not load the model (%s)", type(exc).__name__)
        return TorchEngine(model)
    if not diff <= TOLERANCE:
        log.warning(
            "serving with torch: onnxruntime's probabilities differ from torch's by %.2g (> %g)",
            diff,
            TOLERANCE,
        )
        return TorchEngine(model)
    return engine


def _session(model_bytes: bytes, threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    # idle threads sleep instead of spinning: with 2 threads on the loaded 2-core VM a spinning one took the
    # core the other needed (58 ms per image against 30 ms without spinning, load 5)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only: its warnings are not about the request
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def _disagreement(engine: OnnxEngine, model: Ensemble) -> float:
    """Largest |onnxruntime − torch| over every class probability of a seeded probe batch."""
    size = model.preset.size
    unit = np.random.default_rng(PROBE_SEED).random((2, 3, size, size), dtype=np.float32)
    ref = model.probs(torch.from_numpy(model.preset.normalise(unit)).to(model.device)).cpu().numpy()
    return float(np.abs(engine.probabilities(unit) - ref).max())
