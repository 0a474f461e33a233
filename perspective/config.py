"""Every default of every command, written once, and the names each choice flag accepts.

Each command has a dataclass here whose field names are its long flags (``TrainConfig`` for train,
``InferConfig`` for infer, ...): the parsers in ``perspective.cli`` read their defaults from these
classes, and the library takes the same classes, so a default cannot differ between the command
line and the library. The modules that implement a choice (the losses in ``models.module``, the
backbones in ``models.backbones``, ...) import its names from here.

This module imports neither torch nor Lightning (nor optuna, httpx or PIL), so a command builds its
parser, answers ``-h`` and refuses a mistyped flag in a fraction of a second.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import UserError

# --- files ------------------------------------------------------------------------------------

LABELS_CSV = "labels.csv"  # a data folder's labels, beside its images/ folder
SCORE_PREFIX = "perspective_score_"  # the columns of perspective scores, one per car part
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# The largest image any command decodes (width x height), checked from the header before decoding:
# a 100-megapixel camera passes, a decompression bomb does not. --max-pixels lowers it (serve, download).
MAX_PIXELS = 120_000_000

# --- choices ----------------------------------------------------------------------------------

TASKS = ("regression", "classification")
BACKBONE_NAMES = (
    "resnet18", "resnet34", "resnet50", "resnet101", "inception_v3", "efficientnet_b0", "efficientnet_b3",
    "efficientnet_b5", "mobilenet_v3_small", "mobilenet_v3_large", "convnext_tiny", "vit_b_16",
)  # models.backbones.BACKBONES holds how to build each
DEFAULT_BACKBONE = "resnet18"
RESIZE_MODES = ("full", "crop")
OUTPUT_ACTIVATIONS = ("sigmoid", "none")
LOSSES = ("mse", "mae", "huber", "weighted_mse")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "plateau", "none")
BALANCES = ("none", "sampler", "loss")
AUGMENT_LEVELS = ("none", "light", "strong", "trivial", "randaugment")
MIXES = ("none", "mixup", "cutmix", "cmixup")  # train --mix: mixup and cutmix for classes, cmixup for scores
PRETRAIN_METHODS = ("simclr", "dcl", "vicreg", "byol")  # pretrain --method (lightly's losses and heads)
SELECT_METHODS = ("balanced", "uncertainty", "random")  # select --by
SEMI_METHODS = ("fixmatch", "self-training")  # train --semi: how --unlabelled photos teach (training.semi_supervised)
NO_FLIPS = "none"  # --flip-pairs none
PRECISIONS = ("auto", "32", "bf16", "16")  # every command's --precision
# What training hands Lightning for each: weights stay fp32, bf16 and 16 are autocast ("mixed").
LIGHTNING_PRECISION = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}
SPLITS = ("all", "train", "val", "test")  # evaluate --split
EXPORT_FORMATS = ("onnx", "torchscript", "openvino")  # export --format
RESULT_FORMATS = ("csv", "json", "parquet")  # infer --format (parquet needs pyarrow)
SAMPLERS = ("tpe", "random")  # search --sampler
LOGGERS = ("tensorboard", "csv", "mlflow", "wandb")  # train --logger (see training.loggers)
LOGGER_PACKAGES = {"mlflow": "mlflow", "wandb": "wandb"}  # the optional package each needs

DEFAULT_EPOCHS = 20  # train -e on the user's own data
# The built-in synthetic car data (training.data) and how it trains when -d is not given: enough photos, at
# a size small enough, that `perspective train --weights none` learns the eight scores in a few minutes on
# 2 CPU cores (its measured time and R²: docs/training.md#synthetic-car-perspective-data). More photos for
# fewer epochs beat fewer photos for more, and at this size the input resolution barely matters (96 px
# learns the scores as fast, epoch for epoch, as 112 or 128 px).
BUILT_IN_IMAGES = 6000
BUILT_IN_IMAGE_SIZE = 96
BUILT_IN_EPOCHS = 12
DEFAULT_PATIENCE = 5  # early stopping under the plateau and constant schedules (see training.callbacks)
PRETRAINED_FREEZE_EPOCHS = 1  # see training.run.fine_tuning
PRETRAINED_BACKBONE_LR_SCALE = 0.1
# Weights from `perspective pretrain` (self-supervised, on the user's few thousand photos) are weaker than
# ImageNet's: they start the backbone but need no protection from the head's first gradients.
PRETRAIN_KEY = "pretrain"  # in a `perspective pretrain` output: how its weights were learnt
SELF_SUPERVISED_FREEZE_EPOCHS = 0
SELF_SUPERVISED_BACKBONE_LR_SCALE = 1.0
# FixMatch after the fine-tune (training.semi_supervised), the settings measured on Fashion-MNIST-500:
FIXMATCH_THRESHOLD = 0.95  # confidence on the mild view that makes a pseudo-label (Sohn et al. 2020)
FIXMATCH_RATIO = 3  # unlabelled photos a step per labelled one
FIXMATCH_LEARNING_RATE = 3e-4  # AdamW's peak, the whole model at one rate
FIXMATCH_WARMUP_STEPS = 50
FIXMATCH_EMA_DECAY = 0.99  # the run is short: a 0.999 average would still hold the fine-tune's weights
CALIBRATION_IMAGES = 300  # export --int8: images NNCF calibrates on (its default subset size)


def lightning_precision(value: str | None) -> str | None:
    """--precision as Lightning spells it; None (auto) stays None for ``hardware.default_precision``.

    The library also takes Lightning's own names (``32-true``, ``bf16-true``, ...) as they are; the
    commands offer ``PRECISIONS``, the same on every command.
    """
    if value in (None, "auto"):
        return None
    return LIGHTNING_PRECISION.get(value, value)


def default_workers() -> int:
    """Decoding threads or processes: one per core, at most 8."""
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


# --- settings shared by the commands that run a model ------------------------------------------


@dataclass
class DeviceConfig:
    """Where a command computes: ``-g``, ``--device`` and Lightning's flags for several processes.

    ``gpus`` (``-g N``) means N CUDA GPUs on every command (``-g 0``: the CPU). Training and the
    prediction commands that can run in several processes (infer, evaluate) read ``accelerator``,
    ``devices``, ``num_nodes`` and ``strategy`` as Lightning does; prediction in one process runs
    on ``device``.
    """

    gpus: int | None = None
    accelerator: str = "auto"
    devices: str | int | None = None
    strategy: str = "auto"
    num_nodes: int = 1


@dataclass
class PredictConfig(DeviceConfig):
    """Settings of every command that predicts with a model (infer, evaluate, serve)."""

    checkpoint: str | None = None  # None: the shipped model
    batch_size: int = 32
    workers: int | None = None  # None: default_workers()
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    tta: bool = False
    interval: float | None = None
    quiet: bool = False

    @property
    def decoding_workers(self) -> int:
        """``workers``, or ``default_workers()`` when not given."""
        return default_workers() if self.workers is None else self.workers


@dataclass
class InferConfig(PredictConfig):
    """``perspective infer``: predict for images, one row each, into a result file."""

    image: list[str] = field(default_factory=list)
    data: str | None = None  # a folder of images
    recursive: bool = False
    list: str | None = None  # a file naming the images
    output: str = "last_results.csv"
    format: str = "csv"
    resume: bool = False
    log_every: int = 10_000
    labels: str | None = None
    label_column: str | None = None
    show: int = 20
    explain: str | None = None


@dataclass
class EvaluateConfig(PredictConfig):
    """``perspective evaluate``: metrics, plots and a report of a model on labelled data."""

    data: str | None = None
    images: str | None = None
    label_column: str | None = None
    output: str = "evaluation"
    split: str = "all"
    seed: int | None = None  # None: the training run's
    samples: int = 16
    explain_samples: int = 4
    calibrate: bool = False


@dataclass
class SelectConfig(PredictConfig):
    """``perspective select``: which unlabelled photos to label next."""

    data: str | None = None  # the unlabelled photos
    count: int = 100
    output: str = "select"
    by: str = "balanced"
    labelled: str | None = None  # photos labelled already: the diversity term counts them as chosen
    seed: int = 0


@dataclass
class ServeConfig(PredictConfig):
    """``perspective serve``: the HTTP server's address, log, batching and limits.

    ``batch_size`` is the most images in one forward pass; ``max_wait_ms`` how long the first image
    of a batch may wait for more (the batcher waits only while other requests are still being
    decoded, so a lone request never waits); ``workers`` the threads that parse uploads and decode
    images; ``max_queue`` the most images waiting for the model (503 beyond).
    """

    batch_size: int = 16  # a batch waits for the slowest upload in it: smaller than offline prediction's
    host: str = "127.0.0.1"
    port: int = 8000
    log_file: str = "api.log"
    log_max_mb: float = 10.0
    log_backups: int = 5
    max_wait_ms: float = 10.0
    max_upload_mb: float = 10.0
    max_pixels: int = MAX_PIXELS
    max_files: int = 64
    max_queue: int = 512
    api_key: str | None = None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def decode_threads(self) -> int:
        return max(1, self.decoding_workers)


# --- training ---------------------------------------------------------------------------------


@dataclass
class TrainConfig(DeviceConfig):
    """Every setting of a training run; field names are train's long flags."""

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
    max_epochs: int | None = None  # None: DEFAULT_EPOCHS, or BUILT_IN_EPOCHS on the built-in data
    learning_rate: float = 1e-3
    batch_size: int = 32
    workers: int | None = None  # None: default_loader_workers for the DataLoader, default_workers for threads
    precision: str = "auto"
    checkpoints_location: str = "checkpoints"
    logs_location: str = "lightning_logs"
    logger: str = "tensorboard"  # comma-separated names of LOGGERS, or none
    run_name: str | None = None
    weights: str = "imagenet"
    image_size: int | None = None  # None: BUILT_IN_IMAGE_SIZE on the built-in data, else the weights' own
    resize_mode: str = "full"
    patience: int | None = None  # None: callbacks.default_patience (off under cosine)
    min_epochs: int | None = None  # None: callbacks.default_min_epochs (a quarter of the run under cosine)
    ema_decay: float = 0.999  # 0 turns the average off
    freeze_epochs: int | None = None  # None: training.run.fine_tuning decides from --weights
    backbone_lr_scale: float | None = None  # None: training.run.fine_tuning decides from --weights
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
    mix: str = "none"
    mix_alpha: float | None = None  # None: the method's own (1.0 for mixup and cutmix, 2.0 for cmixup)
    flip_pairs: str | None = None
    unlabelled: str | None = None  # a folder of unlabelled photos (training.semi_supervised)
    semi: str = "fixmatch"  # how they teach: SEMI_METHODS
    fixmatch_steps: int = 600  # the FixMatch phase's length, in steps
    fixmatch_with_val: bool = False  # the FixMatch phase learns from the validation photos too (training.fixmatch)
    pseudo_share: float = 0.1  # self-training: the surest share of those photos that the student learns from
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


@dataclass
class PretrainConfig(DeviceConfig):
    """``perspective pretrain``: self-supervised pretraining of a backbone on unlabelled images."""

    data: str | None = None
    output: str = "backbone.ckpt"
    backbone: str = DEFAULT_BACKBONE
    weights: str = "none"
    method: str = "simclr"
    hflip_prob: float = 0.5  # lightly's views' own mirror chance
    blur_prob: float | None = None  # None: the method's own (lightly's views: 0.5; BYOL 1.0 and 0.1)
    image_size: int | None = None  # None: the weights' own (224 for most)
    max_epochs: int = 100
    batch_size: int = 128  # contrastive losses compare every image of a batch with every other
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    workers: int | None = None  # None: default_loader_workers
    precision: str = "auto"
    checkpoints_location: str = "checkpoints"
    logs_location: str = "lightning_logs"
    logger: str = "tensorboard"
    run_name: str | None = None
    resume: str | None = None
    seed: int = 42
    quiet: bool = False


FOLDS = 5  # the audit's folds when nothing sizes them


@dataclass
class AuditConfig:
    """``perspective audit``: the folds and the output; each fold's run takes train's flags."""

    folds: int | None = None  # FOLDS, or with calibrate as many as make each fold's run like the model's (folds_like)
    max_epochs: int = 8  # a short schedule: k runs of it, and a rough model is enough to question a label
    output: str = "audit"
    calibrate: str | None = None  # a checkpoint to store the out-of-fold calibration in


# --- search -----------------------------------------------------------------------------------

# The metrics a trial can be judged by: what PerspectiveModel logs per validation epoch.
METRICS: dict[str, dict[str, str]] = {
    "regression": {"val_loss": "minimize", "val_mse": "minimize", "val_mae": "minimize",
                   "val_rmse": "minimize", "val_r2": "maximize"},
    "classification": {"val_loss": "minimize", "val_acc": "maximize", "val_f1": "maximize"},
}
# val_loss is each trial's own training loss: Huber (delta 0.1) reads about half of MSE on small
# errors, so a regression search that varies the loss compares trials by val_mse instead.
DEFAULT_METRIC = {"regression": "val_mse", "classification": "val_loss"}
# Parameters a space may name (TrainConfig fields): numeric ones with their type and legal values,
# categorical ones with their choices.
NUMERIC_PARAMS: dict[str, tuple[type, Any, str]] = {
    "learning_rate": (float, lambda v: v > 0, "> 0"),
    "weight_decay": (float, lambda v: v >= 0, ">= 0"),
    "dropout": (float, lambda v: 0 <= v < 1, "in [0, 1)"),
    "warmup_epochs": (float, lambda v: v >= 0, ">= 0"),
    "huber_delta": (float, lambda v: v > 0, "> 0"),
    "weighted_mse_alpha": (float, lambda v: v > 0, "> 0"),
    "label_smoothing": (float, lambda v: 0 <= v < 1, "in [0, 1)"),
    "batch_size": (int, lambda v: v >= 1, ">= 1"),
    "image_size": (int, lambda v: v >= 1, ">= 1"),
}
CHOICE_PARAMS: dict[str, tuple[str, ...]] = {
    "augment": AUGMENT_LEVELS,
    "loss": LOSSES,
    "backbone": BACKBONE_NAMES,
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
}
SEARCH_PARAMS = (*NUMERIC_PARAMS, *CHOICE_PARAMS)
# The default space; a space file replaces it as a whole. ``loss`` is dropped for classification
# (always cross-entropy); ``backbone`` is added when -b lists several.
DEFAULT_SPACE: dict[str, Any] = {
    "learning_rate": {"low": 1e-5, "high": 1e-2, "log": True},
    "batch_size": [16, 32, 64],
    "weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
    "dropout": {"low": 0.0, "high": 0.5},
    "augment": ["none", "light", "strong"],
    "loss": ["mse", "huber", "weighted_mse"],
}


@dataclass
class SearchConfig:
    """``perspective search``: what to search and where; the fixed training settings are a TrainConfig beside it.

    Args:
        trials: trials to add in this call (None: until ``timeout``).
        timeout: stop starting trials after this many seconds (None: no limit).
        output: results, plots, the default SQLite storage and (unless given) checkpoints and logs.
        storage: an SQLAlchemy URL (default ``sqlite:///<output>/search.db``).
        study: study name in the storage; the same name continues the study.
        sampler: ``tpe`` or ``random``.
        metric: the validation metric to optimise (``METRICS``); None: ``DEFAULT_METRIC`` of the task.
        space: a YAML file replacing ``DEFAULT_SPACE``, or the space itself as a dict.
        heartbeat: seconds between a running trial's heartbeats in the storage.
    """

    trials: int | None = 20
    timeout: float | None = None
    output: str = "search"
    storage: str | None = None
    study: str = "search"
    sampler: str = "tpe"
    metric: str | None = None
    space: Any = None
    heartbeat: float = 60.0  # seconds between a running trial's heartbeats; 5 missed: failed and retried


# --- export, data sets ------------------------------------------------------------------------


@dataclass
class ExportConfig:
    """``perspective export``: the format, the parity check, and int8 quantization with its accuracy gate."""

    checkpoint: str | None = None  # None: the shipped model
    output: str | None = None
    format: str = "onnx"
    tolerance: float = 1e-4  # largest accepted abs difference from the PyTorch model, both in fp32
    int8: bool = False
    calibration: str | None = None
    check: str | None = None
    max_drop: float = 0.01  # largest accepted fall of R² (or label agreement) against fp32
    batch_size: int = 32
    workers: int | None = None  # None: default_workers()
    quiet: bool = False


@dataclass
class DownloadConfig:
    """``perspective download``: how to download a URL list.

    Args:
        workers: downloads at the same time (asyncio tasks and pooled connections): the network
            waits, so more than the cores.
        timeout: seconds to connect, and seconds without data while reading, before an attempt fails.
        retries: further attempts after a timeout, a 5xx, a 429 or a dropped connection.
        backoff: seconds before the first retry, doubled for each next one up to 60 s (a server's
            Retry-After, capped at 60 s too, wins when it says more).
        max_mb: largest file in MiB; a bigger one is abandoned (and not retried).
        max_pixels: largest image, width x height, read from its header before decoding.
    """

    workers: int = 8
    timeout: float = 20.0
    retries: int = 3
    backoff: float = 1.0
    max_mb: float = 50.0
    max_pixels: int = MAX_PIXELS
    quiet: bool = False

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 2**20)


SYNTH_SIDES = (32, 4096)  # the smallest and largest side of a synthetic image


@dataclass
class SynthConfig:
    """``perspective synth``: how many synthetic photos, from which seed, at which size."""

    output: str | None = None
    count: int | None = None
    seed: int | None = None
    size: tuple[int, int] = (320, 240)
    workers: int | None = None  # None: default_workers(); the files do not depend on it
    quiet: bool = False


def parse_size(text: str) -> tuple[int, int]:
    """``"320x240"`` -> (320, 240); ValueError for anything else or a side outside ``SYNTH_SIDES``."""
    import re

    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"expected WIDTHxHEIGHT such as 320x240, got {text!r}")
    width, height = int(match[1]), int(match[2])
    low, high = SYNTH_SIDES
    if not (low <= width <= high and low <= height <= high):
        raise ValueError(f"each side must be {low} to {high} pixels, got {text!r}")
    return width, height
