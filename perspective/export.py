"""Export a checkpoint to ONNX, TorchScript or OpenVINO, with a parity check; run exported models like a checkpoint.

The exported graph is what a user reads: backbone, head and the output activation (sigmoid scores
or softmax probabilities), fp32, any batch size. The checkpoint's hyperparameters (targets or
classes, preprocessing) travel inside the file (ONNX metadata, a TorchScript extra file, the
OpenVINO IR's runtime info), so ``infer.py -c model.onnx`` (or ``model.xml``) needs nothing else and
writes the same CSV as with the checkpoint. An OpenVINO IR is two files, ``model.xml`` (the graph)
and ``model.bin`` (the weights) beside it; ``perspective.int8`` quantizes one to int8.

Every export is checked before it is kept: the exported model and the PyTorch model, both in fp32,
must agree within ``tolerance`` (1e-4 by default) on a batch of random inputs; otherwise nothing is
written and the export fails.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import EXPORT_FORMATS as FORMATS
from .conformal import CHECKPOINT_KEY as CONFORMAL_KEY
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
    """The metadata an exported file carries: the hyperparameters, and the conformal calibration if any."""
    conformal = getattr(model, "conformal", None)
    return json.dumps({**dict(model.hparams), **({CONFORMAL_KEY: conformal} if conformal else {})}, default=str)


def _read_metadata(text: str) -> tuple[_HParams, dict[str, Any] | None]:
    """(hyperparameters, conformal calibration or None) from an exported file's metadata."""
    hparams = json.loads(text)
    conformal = hparams.pop(CONFORMAL_KEY, None)
    return _HParams(hparams), conformal


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


def require_openvino():
    """The ``openvino`` package, or a one-line error that names the extra to install."""
    try:
        import openvino
    except ImportError:
        raise UserError("OpenVINO models need the openvino package: pip install 'perspective[openvino]' "
                        "(openvino, and nncf for --int8)") from None
    return openvino


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
    target = Path(target)
    if target.suffix.lower() != ".xml":
        raise UserError(f"-o {target}: an OpenVINO model is written as NAME.xml (and NAME.bin beside it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = partial_path(target)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        ov.save_model(model, str(staging / target.name), compress_to_fp16=False)
        os.replace(staging / target.with_suffix(".bin").name, target.with_suffix(".bin"))
        os.replace(staging / target.name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _run_exported(fmt: str, path: Path, x: torch.Tensor) -> np.ndarray:
    if fmt == "onnx":
        return OnnxModel(path).predict_outputs(x).numpy()
    if fmt == "openvino":
        return OpenVinoModel(path, precision="32").predict_outputs(x).numpy()
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
    if fmt == "openvino" and target.suffix.lower() != ".xml":
        raise UserError(f"-o {target}: an OpenVINO model is written as NAME.xml (and NAME.bin beside it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        reference = model.predict_outputs(check).numpy()
    staging = partial_path(target)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        written = staging / target.name
        if fmt == "openvino":
            save_openvino(openvino_graph(graph, example, _hparams_json(model)), written)
        else:
            (_export_onnx if fmt == "onnx" else _export_torchscript)(graph, example, written, _hparams_json(model))
        difference = float(np.abs(_run_exported(fmt, written, check) - reference).max())
        if not difference <= tolerance:
            raise UserError(f"{fmt} export failed its parity check: max abs difference {difference:.2e} "
                            f"> {tolerance:g}; nothing written")
        if fmt == "openvino":  # the weights first, so the graph never appears without them
            os.replace(written.with_suffix(".bin"), target.with_suffix(".bin"))
        os.replace(written, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("%s written to %s (max abs difference from PyTorch %.2e)", fmt, target, difference)
    return difference


class _HParams(dict):
    """The checkpoint's hyperparameters, readable as attributes like Lightning's ``hparams``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class ExportedModel:
    """What ``Predictor`` needs of a model that runs outside PyTorch: ``hparams``, ``names``, ``predict_outputs``."""

    runs_in_torch = False
    hparams: _HParams
    conformal: dict[str, Any] | None = None  # the checkpoint's calibration (perspective.conformal)
    precision = "32"  # what the runtime computes in, as --precision names it (int8 for a quantized model)

    @property
    def names(self) -> list[str]:
        hp = self.hparams
        return list(hp["target_names"] if hp["task"] == "regression" else hp["class_names"])

    def predict_outputs(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # Predictor moves and switches its model; a runtime's compiled model has nothing to do for either.
    def to(self, *args: Any, **kwargs: Any) -> ExportedModel:
        return self

    def eval(self) -> ExportedModel:
        return self


class OnnxModel(ExportedModel):
    """An exported ONNX model, run by onnxruntime, with the interface ``Predictor`` uses.

    fp32 on the CPU (onnxruntime's CPU provider); ``hparams`` and ``names`` come from the file's metadata.
    """

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
        self.hparams, self.conformal = _read_metadata(meta[METADATA_KEY])
        self.input_name = self.session.get_inputs()[0].name

    def predict_outputs(self, x: torch.Tensor) -> torch.Tensor:
        array = x.float().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])


class OpenVinoModel(ExportedModel):
    """An exported OpenVINO IR (fp32 or int8), run by OpenVINO on the CPU, with the interface ``Predictor`` uses.

    ``precision="auto"`` leaves the choice to OpenVINO, which computes an fp32 model in bf16 where
    the CPU has bf16 units (AMX, AVX-512 BF16) and in fp32 elsewhere; ``"32"`` asks for fp32 (the
    parity and int8 checks compare against that), as ``infer.py --precision 32`` does. One inference stream with every core
    (``PERFORMANCE_HINT: LATENCY``): the Predictor hands over a whole batch at a time.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, precision: str = "auto"):
        ov = require_openvino()
        path = Path(path)
        if not path.is_file():
            raise UserError(f"model {path}: no such file")
        if not path.with_suffix(".bin").is_file():
            raise UserError(f"model {path}: its weights {path.with_suffix('.bin').name} are not beside it")
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError with a long text
            raise UserError(f"model {path}: not a readable OpenVINO model ({exc})".splitlines()[0]) from None
        if not model.has_rt_info(METADATA_KEY):
            raise UserError(f"model {path}: not exported by export.py (no {METADATA_KEY} runtime info)")
        self.hparams, self.conformal = _read_metadata(model.get_rt_info(METADATA_KEY).astype(str))
        self.int8 = any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
        self._core, self._model, self._threads = core, model, threads
        self.requested = None
        self.with_precision(precision)

    def with_precision(self, precision: str) -> OpenVinoModel:
        """Compile for ``precision`` (``auto``, ``32`` or ``bf16``, as ``--precision`` names them) unless it is already.

        ``precision`` then says what OpenVINO computes in: ``int8`` for a quantized model (its
        remaining layers follow the hint), else ``bf16`` or ``32``.
        """
        hints = {"auto": None, "32": "f32", "bf16": "bf16"}
        if precision not in hints:
            raise UserError(f"--precision {precision}: an OpenVINO model runs on the CPU in auto, 32 or bf16")
        if precision == self.requested:
            return self
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if hints[precision]:
            config["INFERENCE_PRECISION_HINT"] = hints[precision]
        if self._threads:
            config["INFERENCE_NUM_THREADS"] = self._threads
        self.compiled = self._core.compile_model(self._model, "CPU", config)
        self.requested = precision
        computed = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.precision = "int8" if self.int8 else {"bf16": "bf16", "f16": "16"}.get(computed, "32")
        return self

    def predict_outputs(self, x: torch.Tensor) -> torch.Tensor:
        output = self.compiled(x.float().contiguous().numpy())[0]
        return torch.from_numpy(output.copy())  # the request reuses its output buffer on the next call
