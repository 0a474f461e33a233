"""Models that run outside PyTorch, with the interface ``Predictor`` uses: ONNX Runtime and OpenVINO.

``export`` writes these files; the checkpoint's hyperparameters (targets or classes, preprocessing)
and its conformal calibration travel inside them as metadata (``encode_metadata``), so ``-c
model.onnx`` (or ``model.xml``) needs nothing else and writes the same columns as the checkpoint.
``load_model`` opens any model file: a ``.ckpt`` checkpoint, an ``.onnx`` or an OpenVINO ``.xml``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..models.checkpoint import checkpoint_path, load_checkpoint
from ..models.conformal import CHECKPOINT_KEY as CONFORMAL_KEY
from ..models.novelty import CHECKPOINT_KEY as NOVELTY_KEY

METADATA_KEY = "perspective_hparams"


def load_model(path: str | os.PathLike):
    """A checkpoint (``models.checkpoint.load_checkpoint``), or an exported model: ``.onnx`` runs in
    onnxruntime, an OpenVINO ``.xml`` (fp32 or int8) in OpenVINO, both on the CPU."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return OnnxModel(path)
    if suffix == ".xml":
        return OpenVinoModel(path)
    return load_checkpoint(path)


def model_for(cfg: Any) -> tuple[str, Any]:
    """(the model file a predicting command uses, its model): ``-c``, else the shipped model."""
    path = checkpoint_path(cfg.checkpoint)
    return path, load_model(path)


def encode_metadata(model) -> str:
    """The metadata an exported file carries: the hyperparameters, the conformal calibration if any, and
    the novelty summary's calibration if any (its bank is in the graph, which computes the score)."""
    conformal = getattr(model, "conformal", None)
    novelty = getattr(model, "novelty", None)
    extra = {**({CONFORMAL_KEY: conformal} if conformal else {}),
             **({NOVELTY_KEY: {"method": novelty["method"], "calibration": [float(v) for v in novelty["calibration"]]}}
                if novelty else {})}
    return json.dumps({**dict(model.hparams), **extra}, default=str)


def decode_metadata(text: str) -> tuple[HParams, dict[str, Any] | None, dict[str, Any] | None]:
    """(hyperparameters, conformal calibration or None, novelty calibration or None) from an exported file's metadata."""
    hparams = json.loads(text)
    conformal = hparams.pop(CONFORMAL_KEY, None)
    novelty = hparams.pop(NOVELTY_KEY, None)
    return HParams(hparams), conformal, novelty


def require_openvino():
    """The ``openvino`` package, or a one-line error that names the extra to install."""
    try:
        import openvino
    except ImportError:
        raise UserError("OpenVINO models need the openvino package: pip install 'perspective[openvino]' "
                        "(openvino, and nncf for --int8)") from None
    return openvino


class HParams(dict):
    """The checkpoint's hyperparameters, readable as attributes like Lightning's ``hparams``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class ExportedModel:
    """What ``Predictor`` needs of a model that runs outside PyTorch: ``hparams``, ``names``, ``predict_outputs``."""

    runs_in_torch = False
    hparams: HParams
    conformal: dict[str, Any] | None = None  # the checkpoint's calibration (models.conformal)
    novelty: dict[str, Any] | None = None  # its novelty calibration; the graph's last output is the score
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
        self.hparams, self.conformal, self.novelty = decode_metadata(meta[METADATA_KEY])
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
        self.hparams, self.conformal, self.novelty = decode_metadata(model.get_rt_info(METADATA_KEY).astype(str))
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
