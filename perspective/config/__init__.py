"""Every default of every command, written once, with each flag's help beside it.

Each command has a dataclass whose field names are its long flags (``TrainConfig`` for train,
``InferConfig`` for infer, ...), and each field declares its flag (``flags.flag``): the parsers in
``perspective.cli`` are built from these classes, and the library takes the same classes, so a
default cannot differ between the command line and the library.

- ``shared``: what several commands take (``-q``, the batch, the devices, ``-c``, ``-o``, ...);
  ``training`` (train, pretrain, audit), ``prediction`` (infer, evaluate, select, serve),
  ``tools`` (export, download, synth) and ``labelling`` (labels; the Label Studio flags of select and
  audit): the command configs.
- ``flags``: how a field becomes a flag; ``values``: the value checks of the flags.
- ``choices``: the names each choice flag accepts; ``backbones``: the supported backbones as data.
- ``recipe``: the tuned numbers of the training recipe; ``files``: the files perspective reads and writes.

The search's own settings and space are in ``perspective.search.settings``. Nothing here imports
torch, Lightning, optuna, httpx or PIL, so a command builds its parser, answers ``-h`` and refuses a
mistyped flag in a fraction of a second.
"""

from .backbones import BACKBONE_NAMES, BACKBONE_TABLE, DEFAULT_BACKBONE, BackboneEntry
from .choices import (
    AUGMENT_LEVELS,
    BALANCES,
    EXPORT_FORMATS,
    LIGHTNING_PRECISION,
    LOGGER_PACKAGES,
    LOGGERS,
    LOSSES,
    MIXES,
    NO_FLIPS,
    OPTIMIZERS,
    OUTPUT_ACTIVATIONS,
    PRECISIONS,
    PRETRAIN_METHODS,
    RESIZE_MODES,
    RESULT_FORMATS,
    RUNTIMES,
    SCHEDULERS,
    SELECT_METHODS,
    SEMI_METHODS,
    SPLITS,
    TASKS,
    lightning_precision,
    parse_loggers,
)
from .files import (
    IMAGE_EXTENSIONS,
    LABELS_CSV,
    MAX_PIXELS,
    NOT_REPEATED,
    PRETRAIN_KEY,
    RUN_CONFIG,
    SCORE_PREFIX,
    config_yaml,
    run_config,
)
from .labelling import API_KEY_ENV, DOCUMENT_ROOT_ENV, LabelsConfig, LabelStudioConfig
from .prediction import EvaluateConfig, InferConfig, PredictConfig, SelectConfig, ServeConfig
from .shared import BatchConfig, CommandConfig, DeviceConfig
from .tools import DownloadConfig, ExportConfig, SynthConfig
from .training import FOLDS, AuditConfig, PretrainConfig, RunConfig, TrainConfig
from .tuning import (
    BUILT_IN_EPOCHS,
    BUILT_IN_IMAGE_SIZE,
    BUILT_IN_IMAGES,
    CALIBRATION_IMAGES,
    DEFAULT_EPOCHS,
    DEFAULT_PATIENCE,
    FIXMATCH_EMA_DECAY,
    FIXMATCH_LEARNING_RATE,
    FIXMATCH_RATIO,
    FIXMATCH_THRESHOLD,
    FIXMATCH_WARMUP_STEPS,
    NOVELTY_LEVEL,
    PRETRAINED_BACKBONE_LR_SCALE,
    PRETRAINED_FREEZE_EPOCHS,
    SELF_SUPERVISED_BACKBONE_LR_SCALE,
    SELF_SUPERVISED_FREEZE_EPOCHS,
    default_loader_workers,
    default_workers,
)
from .values import SYNTH_SIDES, parse_size

__all__ = [
    "API_KEY_ENV", "DOCUMENT_ROOT_ENV", "LabelStudioConfig", "LabelsConfig",
    "AUGMENT_LEVELS", "BACKBONE_NAMES", "BACKBONE_TABLE", "BALANCES", "BUILT_IN_EPOCHS", "BUILT_IN_IMAGES",
    "BUILT_IN_IMAGE_SIZE", "CALIBRATION_IMAGES", "DEFAULT_BACKBONE", "DEFAULT_EPOCHS", "DEFAULT_PATIENCE",
    "EXPORT_FORMATS", "FIXMATCH_EMA_DECAY", "FIXMATCH_LEARNING_RATE", "FIXMATCH_RATIO", "FIXMATCH_THRESHOLD",
    "NOVELTY_LEVEL",
    "FIXMATCH_WARMUP_STEPS", "FOLDS", "IMAGE_EXTENSIONS", "LABELS_CSV", "LIGHTNING_PRECISION", "LOGGERS",
    "LOGGER_PACKAGES", "LOSSES", "MAX_PIXELS", "MIXES", "NOT_REPEATED", "NO_FLIPS", "OPTIMIZERS",
    "OUTPUT_ACTIVATIONS", "PRECISIONS", "RUNTIMES", "PRETRAINED_BACKBONE_LR_SCALE", "PRETRAINED_FREEZE_EPOCHS", "PRETRAIN_KEY",
    "PRETRAIN_METHODS", "RESIZE_MODES", "RESULT_FORMATS", "RUN_CONFIG", "SCHEDULERS", "SCORE_PREFIX",
    "SELECT_METHODS", "SELF_SUPERVISED_BACKBONE_LR_SCALE", "SELF_SUPERVISED_FREEZE_EPOCHS", "SEMI_METHODS",
    "SPLITS", "SYNTH_SIDES", "TASKS", "AuditConfig", "BackboneEntry", "BatchConfig", "CommandConfig",
    "DeviceConfig", "DownloadConfig", "EvaluateConfig", "ExportConfig", "InferConfig", "PredictConfig",
    "PretrainConfig", "RunConfig", "SelectConfig", "ServeConfig", "SynthConfig", "TrainConfig", "config_yaml",
    "default_loader_workers", "default_workers", "lightning_precision", "parse_loggers", "parse_size", "run_config",
]
