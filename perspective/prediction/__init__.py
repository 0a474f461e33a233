"""Prediction, end to end: the ``Predictor`` (the one prediction path), the model runtimes (PyTorch
checkpoints, ONNX Runtime, OpenVINO; ``runtimes``), runs in one process or several (``parts``,
``distributed``). The jobs the commands run on top of it are ``perspective.jobs``."""

from ..hardware import one_device, prediction_device, process_plan
from .inputs import collect_paths
from .predictor import DECIMALS, Predictor, mirror_average, mirror_permutation, model_intervals, predictor_for
from .runtimes import ExportedModel, OnnxModel, OpenVinoModel, load_model, model_for

__all__ = [
    "DECIMALS", "ExportedModel", "OnnxModel", "OpenVinoModel", "Predictor",
    "collect_paths", "load_model", "mirror_average", "mirror_permutation", "model_for",
    "model_intervals", "predictor_for",
    "one_device", "prediction_device", "process_plan",
]
