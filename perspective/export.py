"""Export a checkpoint to ONNX or TorchScript, with a parity check; run an ONNX model like a checkpoint.

The exported graph is what a user reads: backbone, head and the output activation (sigmoid scores
or softmax probabilities), fp32, any batch size. The checkpoint's hyperparameters (targets or
classes, preprocessing) travel inside the file (ONNX metadata, a TorchScript extra file), so
``infer.py -c model.onnx`` needs nothing else and writes the same CSV as with the checkpoint.

Every export is checked before it is kept: the exported model and the PyTorch model, both in fp32,
must agree within ``tolerance`` (1e-4 by default) on a batch of random inputs; otherwise nothing is
written and the export fails.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import EXPORT_FORMATS as FORMATS
from .errors import UserError
from .model import PerspectiveModel
from .results import partial_path

log = logging.getLogger(__name__)

METADATA_KEY = "perspective_hparams"


class PredictionGraph(nn.Module):
    """Backbone + head + output activation as a plain module (no Lightning), for export."""

    def __init__(self, model: PerspectiveModel):
        super().__init__()
        self.backbone, self.head = model.backbone, model.head
        hp = model.hparams
        self.activation = "softmax" if hp.task == "classification" else hp.output_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.backbone(x))
        if self.activation == "sigmoid":
            return torch.sigmoid(out)
        return out.softmax(dim=-1) if self.activation == "softmax" else out


def _hparams_json(model: PerspectiveModel) -> str:
    return json.dumps(dict(model.hparams), default=str)


def _export_onnx(graph: nn.Module, example: torch.Tensor, target: Path, hparams: str) -> None:
    import onnx

    for name in ("onnx_ir", "onnxscript"):  # their passes log every step at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(graph, (example,), dynamo=True, input_names=["image"], output_names=["output"],
                                dynamic_shapes={"x": {0: batch}}, verbose=False)
    program.save(str(target))
    proto = onnx.load(str(target))
    proto.metadata_props.add(key=METADATA_KEY, value=hparams)
    onnx.save(proto, str(target))


def _export_torchscript(graph: nn.Module, example: torch.Tensor, target: Path, hparams: str) -> None:
    with warnings.catch_warnings():  # TorchScript is deprecated upstream but still what many runtimes load
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(graph, example)
        torch.jit.save(traced, str(target), _extra_files={f"{METADATA_KEY}.json": hparams})


def _run_exported(fmt: str, path: Path, x: torch.Tensor) -> np.ndarray:
    if fmt == "onnx":
        return OnnxModel(path).predict_outputs(x).numpy()
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")(x).numpy()


def export(model: PerspectiveModel, target: str | os.PathLike, fmt: str, tolerance: float = 1e-4,
           check_batch: int = 4) -> float:
    """Write ``model`` as ``fmt`` to ``target`` if it passes the parity check; returns the max abs difference.

    Raises ``UserError`` for an unknown format and when the exported model disagrees with PyTorch by
    more than ``tolerance`` (then nothing is left at ``target``).
    """
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    model = model.float().eval().to(memory_format=torch.contiguous_format)
    graph = PredictionGraph(model).eval()
    size = model.hparams.preprocessing["image_size"]
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(2, 3, size, size, generator=generator)
    check = torch.randn(check_batch, 3, size, size, generator=generator)  # another batch size than traced
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target)
    with torch.inference_mode():
        reference = model.predict_outputs(check).numpy()
    try:
        (_export_onnx if fmt == "onnx" else _export_torchscript)(graph, example, partial, _hparams_json(model))
        difference = float(np.abs(_run_exported(fmt, partial, check) - reference).max())
        if not difference <= tolerance:
            raise UserError(f"{fmt} export failed its parity check: max abs difference {difference:.2e} "
                            f"> {tolerance:g}; nothing written")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    log.info("%s written to %s (max abs difference from PyTorch %.2e)", fmt, target, difference)
    return difference


class _HParams(dict):
    """The checkpoint's hyperparameters, readable as attributes like Lightning's ``hparams``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class OnnxModel:
    """An exported ONNX model, run by onnxruntime, with the interface ``Predictor`` uses.

    fp32 on the CPU (onnxruntime's CPU provider); ``hparams`` and ``names`` come from the file's metadata.
    """

    runs_in_torch = False

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise UserError(f"model {path}: no such file")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for bad files
            raise UserError(f"model {path}: not a readable ONNX model ({exc})".splitlines()[0]) from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise UserError(f"model {path}: not exported by export.py (no {METADATA_KEY} metadata)")
        self.hparams = _HParams(json.loads(meta[METADATA_KEY]))
        self.input_name = self.session.get_inputs()[0].name

    @property
    def names(self) -> list[str]:
        hp = self.hparams
        return list(hp["target_names"] if hp["task"] == "regression" else hp["class_names"])

    def predict_outputs(self, x: torch.Tensor) -> torch.Tensor:
        array = x.float().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])

    # Predictor moves and switches its model; an onnxruntime session has nothing to do for either.
    def to(self, *args: Any, **kwargs: Any) -> OnnxModel:
        return self

    def eval(self) -> OnnxModel:
        return self
