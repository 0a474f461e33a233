"""Training: the runs a caller asks for by config (``entry``: ``train``, ``train_on``), one fit from rows to a
tested best checkpoint (``run``), learning from unlabelled photos too (``semi``), the data a run reads
(``data``), checkpoint writing (``checkpointing``), the callbacks of the recipe (``callbacks``), the
experiment loggers (``loggers``) and the line per epoch a log file shows (``epoch_log``)."""

from ..config import TrainConfig
from .data import decoding_threads, ensure_default_dataset, load_splits, read_training_data, trains_on_cpu
from .entry import train, train_on
from .run import TrainResult, build_model, build_trainer, fine_tuning, fit

__all__ = [
    "TrainConfig", "TrainResult", "build_model", "build_trainer", "decoding_threads", "ensure_default_dataset",
    "fine_tuning", "fit", "load_splits", "read_training_data", "train", "train_on", "trains_on_cpu",
]
