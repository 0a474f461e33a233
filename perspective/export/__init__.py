"""Export: a checkpoint as ONNX, TorchScript or OpenVINO (``writers``), each checked against PyTorch
before it is kept, and int8 OpenVINO models through NNCF with an accuracy gate (``int8``).
``python -m perspective.export`` is ``perspective export``."""

from .int8 import Comparison, Int8Refused, export_int8
from .writers import PredictionGraph, export, save_openvino

__all__ = ["Comparison", "Int8Refused", "PredictionGraph", "export", "export_int8", "save_openvino"]
