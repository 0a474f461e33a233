"""Export writers: a checkpoint as ONNX, TorchScript or OpenVINO, written only once it passes a parity check.

The exported graph is what a user reads: backbone, head and the output activation (sigmoid scores
or softmax probabilities), fp32, any batch size. The checkpoint's hyperparameters (targets or
classes, preprocessing) travel inside the file (ONNX metadata, a TorchScript extra file, the
OpenVINO IR's runtime info; ``prediction.runtimes.encode_metadata``), so ``infer -c model.onnx`` (or
``model.xml``) needs nothing else and writes the same CSV as with the checkpoint. An OpenVINO IR is
two files, ``model.xml`` (the graph) and ``model.bin`` (the weights) beside it; ``export.int8``
quantizes one to int8.

Every export is checked before it is kept: the exported model and the PyTorch model, both in fp32,
must agree within ``tolerance`` (``ExportConfig.tolerance``) on a batch of random inputs; otherwise
nothing is written and the export fails.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import EXPORT_FORMATS, ExportConfig
from ..errors import UserError
from ..models.module import PerspectiveModel
from ..models.novelty import novelty_scores
from ..prediction.runtimes import METADATA_KEY, OnnxModel, OpenVinoModel, encode_metadata, require_openvino
from ..results import partial_path

log = logging.getLogger(__name__)


class PredictionGraph(nn.Module):
    """Backbone + head + output activation as a plain module (no Lightning), for export; with the model's
    novelty bank, one more output column, the novelty score (``models.novelty``), as the checkpoint gives."""

    def __init__(self, model: PerspectiveModel):
        super().__init__()
        self.backbone, self.head = model.backbone, model.head
        hp = model.hparams
        self.activation = "softmax" if hp.task == "classification" else hp.output_activation
        self.register_buffer("bank", None if model.novelty_bank is None else model.novelty_bank.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        out = self.head(features)
        if self.activation == "sigmoid":
            out = torch.sigmoid(out)
        elif self.activation == "softmax":
            out = out.softmax(dim=-1)
        if self.bank is None:
            return out
        return torch.cat([out, novelty_scores(features, self.bank)[:, None]], dim=1)


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


def openvino_graph(graph: nn.Module, example: torch.Tensor, hparams: str):
    """``graph`` converted to an in-memory OpenVINO model (fp32, any batch size), its hyperparameters in the runtime info."""
    ov = require_openvino()
    size = example.shape[-1]
    with warnings.catch_warnings():  # OpenVINO's PyTorch frontend traces with TorchScript, deprecated upstream
        warnings.simplefilter("ignore", FutureWarning)
        model = ov.convert_model(graph, example_input=example, input=[ov.PartialShape([-1, 3, size, size])])
    model.set_rt_info(hparams, METADATA_KEY)
    return model


def save_openvino(model, target: str | os.PathLike) -> Path:
    """Write an OpenVINO model as ``target`` (.xml) and its ``.bin`` beside it, each appearing whole.

    The pair is written into a staging folder and renamed into place, weights first, so no reader
    sees a graph without its weights. Weights keep their precision (fp32, or int8 after
    quantization): OpenVINO's default would halve fp32 weights to fp16.
    """
    ov = require_openvino()
    target = openvino_path(target)
    with staging_folder(target) as staging:
        ov.save_model(model, str(staging / target.name), compress_to_fp16=False)
        move_into_place(staging / target.name, target)
    return target


def openvino_path(target: str | os.PathLike) -> Path:
    """``target`` as an OpenVINO graph's path (``NAME.xml``, its weights ``NAME.bin`` beside it), else a one-line error."""
    target = Path(target)
    if target.suffix.lower() != ".xml":
        raise UserError(f"-o {target}: an OpenVINO model is written as NAME.xml (and NAME.bin beside it)")
    return target


@contextmanager
def staging_folder(target: Path) -> Iterator[Path]:
    """A fresh folder beside ``target`` to write into before the rename (same file system); removed afterwards."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = partial_path(target)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def move_into_place(written: Path, target: Path) -> None:
    """Rename ``written`` onto ``target``; an OpenVINO graph's weights first, so the graph never appears without them."""
    if written.suffix.lower() == ".xml":
        os.replace(written.with_suffix(".bin"), target.with_suffix(".bin"))
    os.replace(written, target)


def _run_exported(fmt: str, path: Path, x: torch.Tensor) -> np.ndarray:
    if fmt == "onnx":
        return OnnxModel(path).predict_outputs(x).numpy()
    if fmt == "openvino":
        return OpenVinoModel(path, precision="32").predict_outputs(x).numpy()
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")(x).numpy()


def export(model: PerspectiveModel, target: str | os.PathLike, fmt: str = ExportConfig.format,
           tolerance: float = ExportConfig.tolerance, check_batch: int = 4) -> float:
    """Write ``model`` as ``fmt`` to ``target`` if it passes the parity check; returns the max abs difference.

    Raises ``UserError`` for an unknown format and when the exported model disagrees with PyTorch by
    more than ``tolerance`` (then nothing is left at ``target``).
    """
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    model = model.float().eval().to(memory_format=torch.contiguous_format)
    graph = PredictionGraph(model).eval()
    size = model.hparams.preprocessing["image_size"]
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(2, 3, size, size, generator=generator)
    check = torch.randn(check_batch, 3, size, size, generator=generator)  # another batch size than traced
    target = openvino_path(target) if fmt == "openvino" else Path(target)
    with torch.inference_mode():
        reference = model.predict_outputs(check).numpy()
    with staging_folder(target) as staging:
        written = staging / target.name
        if fmt == "openvino":
            save_openvino(openvino_graph(graph, example, encode_metadata(model)), written)
        else:
            (_export_onnx if fmt == "onnx" else _export_torchscript)(graph, example, written, encode_metadata(model))
        difference = float(np.abs(_run_exported(fmt, written, check) - reference).max())
        if not difference <= tolerance:
            raise UserError(f"{fmt} export failed its parity check: max abs difference {difference:.2e} "
                            f"> {tolerance:g}; nothing written")
        move_into_place(written, target)
    log.info("%s written to %s (max abs difference from PyTorch %.2e)", fmt, target, difference)
    return difference


