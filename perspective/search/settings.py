"""What a search is told: its own settings (``SearchConfig``), the training settings every trial shares
(``TrialConfig``), the parameters a space may vary with their legal values, the default space, and
the metrics a trial can be judged by.

Imports no Optuna (``space`` makes Optuna distributions of these): ``perspective search -h`` reads
this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import AUGMENT_LEVELS, BACKBONE_NAMES, LOSSES, OPTIMIZERS, SCHEDULERS, TrainConfig
from ..config.flags import flag
from ..config.shared import output_flag
from ..config.values import positive_float, positive_int

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
SAMPLERS = ("tpe", "random")  # search --sampler
SEARCH = "search"  # the -h heading of the search's own flags


@dataclass
class TrialConfig(TrainConfig):
    """The training settings every trial shares: train's, where ``backbone`` may list several names to search
    over, and the checkpoint and log folders are None (under the search's output) unless given."""

    backbone: str = flag(TrainConfig.backbone, "backbone, or several comma-separated to search over them (default "
                                               "{default})")
    checkpoints_location: str | None = flag(None, "checkpoint folder of the trials (default OUTDIR/checkpoints)")
    logs_location: str | None = flag(None, "TensorBoard folder of the trials (default OUTDIR/lightning_logs)")


@dataclass
class SearchConfig:
    """``perspective search``: what to search and where; the fixed training settings are a TrialConfig beside it.

    Args:
        trials: trials to add in this call (None: until ``timeout``).
        timeout: stop starting trials after this many seconds (None: no limit).
        output: results, plots, the default SQLite storage and (unless given) checkpoints and logs.
        storage: an SQLAlchemy URL (default ``sqlite:///<output>/search.db``).
        heartbeat: seconds between a running trial's heartbeats in the storage.
        study: study name in the storage; the same name continues the study.
        sampler: ``tpe`` or ``random``.
        metric: the validation metric to optimise (``METRICS``); None: ``DEFAULT_METRIC`` of the task.
        space: a YAML file replacing ``DEFAULT_SPACE``, or the space itself as a dict.
    """

    trials: int | None = flag(20, "trials to add to the study in this call (default {default})", type=positive_int,
                              group=SEARCH)
    timeout: float | None = flag(None, "start no new trial after this many seconds (default: no limit)",
                                 type=positive_float, group=SEARCH)
    output: str = output_flag("search", "results.csv, plots, the SQLite study and the trials' runs (OUTDIR)",
                              "--outdir", group=SEARCH)
    storage: str | None = flag(None, "Optuna storage URL; postgresql://USER@HOST/DB for workers on several machines "
                                     "(default sqlite:///OUTDIR/search.db)", group=SEARCH)
    # seconds between a running trial's heartbeats; 5 missed: failed and retried
    heartbeat: float = flag(60.0, "seconds between a trial's heartbeats; a trial that misses 5 is failed and run again "
                                  "(default {default:g})", type=positive_float, group=SEARCH)
    study: str = flag("search", "study name; the same name and storage continue a study (default {default})",
                      group=SEARCH)
    sampler: str = flag("tpe", "tpe (random for 10 trials, then model-based) or random (default {default})",
                        choices=SAMPLERS, group=SEARCH)
    metric: str | None = flag(None, "validation metric to optimise: "
                                    f"{', '.join(sorted({m for ms in METRICS.values() for m in ms}))}; r2, acc and f1 "
                                    "are maximised (default: val_mse for scores, val_loss for classes)", group=SEARCH)
    space: Any = flag(None, f"YAML search space replacing the default; parameters: {', '.join(SEARCH_PARAMS)}",
                      group=SEARCH)
