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
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import EXPORT_FORMATS, ExportConfig
from ..errors import UserError
from ..models.module import PerspectiveModel
from ..prediction.graphs import (
    PredictionGraph,
    move_into_place,
    openvino_graph,
    openvino_path,
    save_openvino,
    staging_folder,
    write_onnx,
)
from ..prediction.runtimes import METADATA_KEY, OnnxModel, OpenVinoModel, encode_metadata

log = logging.getLogger(__name__)


def _export_torchscript(graph: nn.Module, example: torch.Tensor, target: Path, hparams: str) -> None:
    with warnings.catch_warnings():  # TorchScript is deprecated upstream but still what many runtimes load
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(graph, example)
        torch.jit.save(traced, str(target), _extra_files={f"{METADATA_KEY}.json": hparams})


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
            (write_onnx if fmt == "onnx" else _export_torchscript)(graph, example, written, encode_metadata(model))
        difference = float(np.abs(_run_exported(fmt, written, check) - reference).max())
        if not difference <= tolerance:
            raise UserError(f"{fmt} export failed its parity check: max abs difference {difference:.2e} "
                            f"> {tolerance:g}; nothing written")
        move_into_place(written, target)
    log.info("%s written to %s (max abs difference from PyTorch %.2e)", fmt, target, difference)
    return difference


