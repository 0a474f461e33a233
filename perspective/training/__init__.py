"""Training: one run from a config to a best checkpoint and its test report (``run``), the data it reads
(``data``), checkpoint writing (``checkpointing``), the callbacks of the recipe (``callbacks``), the
experiment loggers (``loggers``) and the line per epoch a log file shows (``epoch_log``)."""

from ..config import TrainConfig
from .data import decoding_threads, ensure_default_dataset, load_splits, read_training_data, trains_on_cpu
from .run import TrainResult, build_model, build_trainer, fine_tuning, train

__all__ = [
    "TrainConfig", "TrainResult", "build_model", "build_trainer", "decoding_threads", "ensure_default_dataset",
    "fine_tuning", "load_splits", "read_training_data", "train", "trains_on_cpu",
]
