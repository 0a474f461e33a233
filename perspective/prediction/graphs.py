"""The graph a model runs as outside PyTorch, and writing it: ``PredictionGraph`` (backbone, head, output
activation and the novelty score, as ``predict_outputs`` gives them), converted to ONNX or OpenVINO with
the checkpoint's hyperparameters inside (``runtimes.encode_metadata``), each file appearing whole.

``export`` writes these files for users; ``converted`` keeps a checkpoint's OpenVINO or ONNX twin in a
cache so that prediction can run in the faster runtime without an export by hand.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from ..models.module import PerspectiveModel
from ..models.novelty import with_novelty
from ..results import partial_path
from .runtimes import METADATA_KEY, require_openvino


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
        return with_novelty(out, features, self.bank)


def write_onnx(graph: nn.Module, example: torch.Tensor, target: Path, hparams: str) -> None:
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
