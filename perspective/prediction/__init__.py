"""Prediction, end to end: the ``Predictor`` (the one prediction path), the model runtimes (PyTorch
checkpoints, ONNX Runtime, OpenVINO; ``runtimes``), runs in one process or several (``parts``,
``distributed``), and the jobs the commands call (``jobs``: ``run_inference``, ``run_evaluation``)."""

from ..hardware import one_device, prediction_device, process_plan
from .inputs import collect_paths
from .jobs import EvaluationRun, InferenceResult, evaluate_frame, run_evaluation, run_inference
from .predictor import DECIMALS, Predictor, mirror_average, mirror_permutation, model_intervals, predictor_for
from .runtimes import ExportedModel, OnnxModel, OpenVinoModel, load_model, model_for

__all__ = [
    "DECIMALS", "EvaluationRun", "ExportedModel", "InferenceResult", "OnnxModel", "OpenVinoModel", "Predictor",
    "collect_paths", "evaluate_frame", "load_model", "mirror_average", "mirror_permutation", "model_for",
    "model_intervals", "predictor_for",
    "one_device", "prediction_device", "process_plan", "run_evaluation", "run_inference",
]
