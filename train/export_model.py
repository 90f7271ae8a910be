"""`train export-model`: a finished run as one self-contained file (ONNX or TorchScript).

The file holds the frozen backbone, the fold heads averaged (or one chosen fold), the input
normalisation, Platt calibration and nothing else to compute; the class names, preprocessing
constants, operating threshold and model card travel as metadata (ONNX `metadata_props`,
TorchScript `_extra_files`), key ``mpox_triage`` (JSON) and ``model_card`` (markdown).

Input ``image``: float32 (N, 3, S, S), RGB in [0, 1], EXIF-upright, resized by stretching to S×S
(bilinear); a JPEG is first decoded at reduced scale (libjpeg's DCT scaling), each side kept at least S.
Outputs ``probabilities`` (N, classes; mean of the fold models) and, for a binary run, ``p_calibrated``
(N; calibrated P(positive class)). A diagnosis (multi-class) run has no positive class, calibration or
operating point: ``probabilities`` alone (before, ``p_calibrated`` was P(first class)).
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from curate.dataset import refuse_sealed
from curate.files import atomic_path, remove_stale_parts_of
from curate.output import json_text
from train.choices import ExportFormat
from train.ensemble import Ensemble, load_run
from train.errors import TrainError
from train.model_card import CARD_TITLE, card_markdown

FORMAT_VERSION = 2  # 2: input.colour (an embedded ICC profile converted to sRGB)
META_KEY = "mpox_triage"
# owner-only whatever the umask, like its card and everything else train writes: the model card names the
# dataset and its metrics; a clinic serving the file from another account chmods it deliberately
PRIVATE = 0o600


def outputs(model: Ensemble) -> list[str]:
    """The exported graph's outputs: a diagnosis run has no positive class to calibrate."""
    return ["probabilities", "p_calibrated"] if model.positive else ["probabilities"]


class Exported(nn.Module):
    """normalise → backbone → mean of the heads' softmax (→ calibrated P(positive), binary runs)."""

    def __init__(self, model: Ensemble):
        super().__init__()
        self.backbone, self.heads = model.net.backbone, model.net.head
        self.register_buffer("mean", torch.tensor(model.preset.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(model.preset.std, dtype=torch.float32).view(1, 3, 1, 1))
        cal = model.calibration
        self.a, self.b = (float(cal.a), float(cal.b)) if cal else (1.0, 0.0)
        self.pos = model.classes.index(model.positive) if model.positive else None

    def forward(self, image):
        probs = self.heads.probs(self.backbone((image - self.mean) / self.std))
        if self.pos is None:
            return probs
        p = probs[:, self.pos].clamp(1e-6, 1 - 1e-6)
        return probs, torch.sigmoid(self.a * torch.log(p / (1 - p)) + self.b)


def metadata(model: Ensemble, fold: int | None) -> dict:
    """What travels with the model. `triage` (the calibrated metrics with CIs) is always the mean of the run's fold
    models: for one fold (`--fold`), `triage_of` says so and `fold_metrics` holds that fold's own (before, a fold's
    card showed the mean's numbers as its own)."""
    info, tri = model.info, model.metrics.get("triage") or {}
    per_fold = model.metrics.get("per_fold") or {}
    one = (
        {}
        if fold is None
        else {"triage_of": f"mean of {len(per_fold)} fold models", "fold_metrics": per_fold.get(str(fold))}
    )
    return {
        "format_version": FORMAT_VERSION,
        "model": f"fold {fold}" if fold is not None else f"mean of {len(model.folds)} fold models",
        "arch": info["arch"],
        "arch_label": model.arch.label,
        "weights_id": info["weights_id"],
        "dataset": {k: info["dataset"][k] for k in ("ref", "checksum", "task", "classes")},
        "classes": model.classes,
        "positive_class": model.positive,
        "input": {
            "name": "image",
            "size": model.preset.size,
            "layout": "NCHW",
            "channels": "RGB",
            "range": [0, 1],
            "resize": "stretch, bilinear",
            # as `train serve` and `train predict` decode (`train.photos.decode_sized`): a consumer that decodes a
            # JPEG at full size and then resizes feeds slightly different pixels
            "jpeg_decode": "reduced scale first (libjpeg's 1/2, 1/4 or 1/8 DCT scaling, Pillow's draft), "
            "each side kept at least `size`",
            "exif_transpose": True,
            "colour": "sRGB: an embedded ICC profile's colours converted first (`curate.imaging.in_srgb`)",
            "mean": list(model.preset.mean),
            "std": list(model.preset.std),
            "normalised_inside": True,
        },
        "outputs": outputs(model),
        "calibration": model.calibration.as_dict() if model.calibration else None,
        "operating_threshold": model.operating_threshold,
        "target_sensitivity": tri.get("target_sensitivity"),
        "table2_threshold": model.threshold,
        "triage": tri,
        "pointing": model.metrics.get("pointing"),
        **one,
    }


def _a_model_card(path: Path) -> bool:
    """Whether `path` is a model card this command wrote (a killed export leaves its card; the re-run replaces it)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(CARD_TITLE)) == CARD_TITLE
    except OSError:
        return False


def export_model(run: Path, fmt: ExportFormat, out: Path | None = None, fold: int | None = None) -> Path:
    """Write the model file (atomically) and a `<file>.card.md` beside it; return the file's path."""
    fmt = ExportFormat(fmt)
    load_run(Path(run))  # a file or a folder no run wrote is named as the run, not as the --out it would hold
    if out is not None:
        refuse_sealed(Path(out), "--out")
    default = Path(run) / f"model.{'onnx' if fmt is ExportFormat.onnx else 'pt'}"
    if out is not None and Path(out).resolve() != default.resolve() and (Path(out).exists() or Path(out).is_symlink()):
        # a re-run rewrites the run's own model file; any other existing file (the run's checkpoint or metrics,
        # another model) is not this command's to replace
        raise TrainError(f"--out {out} already exists: choose another file or remove it first")
    out = Path(out) if out else default
    if (above := next((p for p in out.parents if p.exists()), None)) is not None and not above.is_dir():
        # before: "cannot write or read afile (File exists): check that folder's permissions and free space"
        raise TrainError(f"--out {out}: {above} is a file, not a folder")
    card_path = out.with_name(out.name + ".card.md")
    if card_path.is_symlink() or (card_path.exists() and not _a_model_card(card_path)):
        # before: the steward's own notes of that name, or a link's target, were replaced by the card
        raise TrainError(f"{card_path} already exists and is not a model card: move it, or choose another --out")
    model = Ensemble.load(Path(run), fold=fold)
    for path in (out, card_path):  # what a killed export of this file left (a 40 MB model each time)
        remove_stale_parts_of(path)
    meta = metadata(model, fold)
    card = card_markdown(meta)
    try:
        with atomic_path(out, mode=PRIVATE) as model_tmp:  # the slow part, in a part file beside `out`
            if fmt is ExportFormat.onnx:
                model_tmp.write_bytes(onnx_bytes(model, fold))
            else:
                net, x = _traceable(model)
                with torch.no_grad(), warnings.catch_warnings():
                    # torch.jit is deprecated but still the one-file format; SAME padding is traced for the input size
                    warnings.simplefilter("ignore", FutureWarning)
                    warnings.simplefilter("ignore", torch.jit.TracerWarning)
                    traced = torch.jit.trace(net, x, check_trace=False)
                    extra = {META_KEY: json_text(meta, indent=None), "model_card": card}
                    torch.jit.save(traced, str(model_tmp), _extra_files=extra)
            _swap_card(out, card_path, card)
    except Exception as exc:
        raise TrainError(
            f"exporting {run} as {fmt.value} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        ) from None
    return out


def _swap_card(out: Path, card_path: Path, card: str) -> None:
    """Once the new model file is whole (as a part): the old model goes, then the new card comes, then (as the
    caller's block ends) the new model. Killed at any moment, a card never lies beside another model: before, the card
    was written first and a kill -9 while the model was built left a card whose threshold the old model did not use;
    at worst now a card has no model yet, and the re-run writes both."""
    with atomic_path(card_path, mode=PRIVATE) as card_tmp:
        card_tmp.write_text(card, encoding="utf-8")
        out.unlink(missing_ok=True)


def _traceable(model: Ensemble) -> tuple[nn.Module, torch.Tensor]:
    """The graph to export and an example input (on the model's device)."""
    return Exported(model).eval(), torch.rand(2, 3, model.preset.size, model.preset.size, device=model.device)


def onnx_bytes(model: Ensemble, fold: int | None = None) -> bytes:
    """The ONNX file's bytes, built in memory: `export-model --format onnx` writes them and `serve` runs
    them in onnxruntime, so both use one graph."""
    import onnx

    net, x = _traceable(model)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript-based exporter: one self-contained file without onnxscript; the dynamo exporter
        # needs onnxscript and splits large weights into external data
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # SAME padding is traced for the fixed input size
        torch.onnx.export(
            net,
            (x,),
            buf,
            input_names=["image"],
            output_names=outputs(model),
            dynamic_axes={"image": {0: "n"}, **{name: {0: "n"} for name in outputs(model)}},
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    meta = metadata(model, fold)
    for key, value in ((META_KEY, json_text(meta, indent=None)), ("model_card", card_markdown(meta))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def stale_exports(run: Path) -> list[Path]:
    """The run's own exported models (`model.onnx`, `model.pt`) whose operating point or calibration is no longer
    the run's: a `train run --resume` with another `--target-sensitivity` moved them, while `predict` and `serve`
    follow the run (the probe's case: serve said "routine" where the deployed file said "refer")."""
    tri = (json.loads((Path(run) / "metrics.json").read_text()).get("triage")) or {}
    stale = []
    for fmt in ExportFormat:
        path = Path(run) / f"model.{'onnx' if fmt is ExportFormat.onnx else 'pt'}"
        if not path.is_file():
            continue
        try:
            meta, _ = read_metadata(path, fmt)
        except Exception:  # not a model this toolkit wrote, or onnx missing: nothing to compare
            continue
        if (meta.get("operating_threshold"), meta.get("calibration")) != (tri.get("threshold"), tri.get("calibration")):
            stale.append(path)
    return stale


def read_metadata(path: Path, fmt: ExportFormat | None = None) -> tuple[dict, str]:
    """(metadata, model card) of an exported file, whichever format (`fmt`, else told by the suffix: an
    `--out` named without .onnx is still read as what was written)."""
    path = Path(path)
    if fmt is None:
        fmt = ExportFormat.onnx if path.suffix == ".onnx" else ExportFormat.torchscript
    if ExportFormat(fmt) is ExportFormat.onnx:
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return json.loads(props[META_KEY]), props["model_card"]
    files = {META_KEY: "", "model_card": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.load(str(path), _extra_files=files)
    text = {k: v.decode("utf-8") if isinstance(v, bytes) else v for k, v in files.items()}
    return json.loads(text[META_KEY]), text["model_card"]
