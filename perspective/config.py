"""Every training default, written once, and the names each choice flag accepts.

This module imports neither torch nor Lightning, so a command can build its parser, answer ``-h``
and refuse a mistyped flag in a fraction of a second. The modules that implement a choice (the
losses in ``model``, the backbones in ``backbones``, ...) import its names from here; the parsers
read their defaults from ``TrainConfig``.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass
from typing import Any

from .errors import UserError

TASKS = ("regression", "classification")
BACKBONE_NAMES = (
    "resnet18", "resnet34", "resnet50", "resnet101", "inception_v3", "efficientnet_b0", "efficientnet_b3",
    "efficientnet_b5", "mobilenet_v3_small", "mobilenet_v3_large", "convnext_tiny", "vit_b_16",
)  # backbones.BACKBONES holds how to build each
DEFAULT_BACKBONE = "resnet18"
RESIZE_MODES = ("full", "crop")
OUTPUT_ACTIVATIONS = ("sigmoid", "none")
LOSSES = ("mse", "mae", "huber", "weighted_mse")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "plateau", "none")
BALANCES = ("none", "sampler", "loss")
AUGMENT_LEVELS = ("none", "light", "strong")
NO_FLIPS = "none"  # --flip-pairs none
PREDICTION_PRECISIONS = ("auto", "32", "bf16", "16")  # every command's --precision (see predict.Predictor)
# What training hands Lightning for each: weights stay fp32, bf16 and 16 are autocast ("mixed").
# Training also takes Lightning's own names (bf16-true, 64-true, ...) as they are.
LIGHTNING_PRECISION = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}


def lightning_precision(value: str | None) -> str | None:
    """--precision as Lightning spells it; None (auto) stays None for ``hardware.default_precision``."""
    if value in (None, "auto"):
        return None
    return LIGHTNING_PRECISION.get(value, value)
SPLITS = ("all", "train", "val", "test")  # evaluate --split
EXPORT_FORMATS = ("onnx", "torchscript", "openvino")  # export --format
CALIBRATION_IMAGES = 300  # export --int8: images NNCF calibrates on (its default subset size)
INT8_MAX_DROP = 0.01  # export --max-drop: largest accepted fall of R² (or label agreement) against fp32
RESULT_FORMATS = ("csv", "json", "parquet")  # infer --format (parquet needs pyarrow)
LOG_EVERY = 10_000  # infer --log-every: images between two progress lines, per process
SAMPLERS = ("tpe", "random")  # search --sampler
LOGGERS = ("tensorboard", "csv", "mlflow", "wandb")  # train --logger (see loggers.py)
LOGGER_PACKAGES = {"mlflow": "mlflow", "wandb": "wandb"}  # the optional package each needs

DEFAULT_PATIENCE = 5  # early stopping under the plateau and constant schedules (see callbacks.default_patience)
PRETRAINED_FREEZE_EPOCHS = 1  # see training.fine_tuning
PRETRAINED_BACKBONE_LR_SCALE = 0.1


def default_workers() -> int:
    return min(os.cpu_count() or 1, 8)


def default_loader_workers(on_cpu: bool) -> int:
    """DataLoader processes for training: ``default_workers()`` beside a GPU, one per 8 cores on the CPU.

    When the CPU trains, loader processes take cores from the model's threads, and each parallel
    step of the model waits for its slowest thread: on 2 cores, 4 epochs of resnet18 on 500 small
    images took 63.3 s with none against 65.2 s with 2 (median of 3 pairs). Decoding and augmenting
    a batch costs a few percent of a CPU training step, so the main process does it between steps;
    a machine with many cores gives a worker to each 8 of them.
    """
    return default_workers() if not on_cpu else (os.cpu_count() or 1) // 8


def parse_loggers(text: str | None) -> list[str]:
    """``tensorboard,csv`` -> the names, checked; ``none`` (or empty) -> no logger."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise UserError(f"--logger {text}: unknown logger {', '.join(unknown)}; choose from {', '.join(LOGGERS)} "
                        "or none")
    for name in names:
        if name in LOGGER_PACKAGES and importlib.util.find_spec(LOGGER_PACKAGES[name]) is None:
            package = LOGGER_PACKAGES[name]
            raise UserError(f"--logger {text}: {name} needs the {package} package (pip install {package})")
    return list(dict.fromkeys(names))


@dataclass
class TrainConfig:
    """Every setting of a training run; field names are train.py's long flags."""

    backbone: str = DEFAULT_BACKBONE
    data: str | None = None
    images: str | None = None
    val_data: str | None = None
    test_data: str | None = None
    task: str | None = None
    targets: list[str] | None = None
    label_column: str | None = None
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    max_epochs: int = 20
    learning_rate: float = 1e-3
    batch_size: int = 32
    workers: int | None = None  # None: default_loader_workers for the DataLoader, default_workers for threads
    gpus: int | None = None
    accelerator: str = "auto"
    devices: str | int | None = None
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str | None = None
    checkpoints_location: str = "checkpoints"
    logs_location: str = "lightning_logs"
    logger: str = "tensorboard"  # comma-separated names of LOGGERS, or none
    run_name: str | None = None
    weights: str = "imagenet"
    image_size: int | None = None
    resize_mode: str = "full"
    patience: int | None = None  # None: callbacks.default_patience (off under cosine)
    min_epochs: int | None = None  # None: callbacks.default_min_epochs (a quarter of the run under cosine)
    ema_decay: float = 0.999  # 0 turns the average off
    freeze_epochs: int | None = None  # None: training.fine_tuning decides from --weights
    backbone_lr_scale: float | None = None  # None: training.fine_tuning decides from --weights
    balance: str = "none"
    lr_find: bool = False
    tta: bool = False  # the test report averages each image with its mirror
    allow_missing_targets: bool = False
    seed: int = 42
    loss: str = "mse"
    output_activation: str = "auto"
    huber_delta: float = 0.1
    weighted_mse_alpha: float = 1 / 30
    label_smoothing: float = 0.0
    dropout: float = 0.0
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    warmup_epochs: float = 1.0
    augment: str = "light"
    flip_pairs: str | None = None
    resume: str | None = None
    strict: bool = False
    test: bool = True  # False skips the test report (search trials are judged on validation alone)
    quiet: bool = False


RUN_CONFIG = "config.yaml"  # every run folder's resolved settings
NOT_REPEATED = ("run_name", "resume", "test")  # a repeat gets its own folder; `test` is not a flag


def run_config(cfg: TrainConfig) -> dict[str, Any]:
    """The settings that repeat a run: every TrainConfig field (the long flags, underscored) but NOT_REPEATED."""
    return {k: v for k, v in asdict(cfg).items() if k not in NOT_REPEATED}


def config_yaml(values: dict[str, Any], header: str) -> str:
    import yaml

    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + yaml.safe_dump(values, sort_keys=False, allow_unicode=True)
