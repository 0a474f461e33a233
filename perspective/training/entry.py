"""The runs a caller asks for by config: ``train(cfg)``, what ``perspective train`` and each trial of a
hyperparameter search call, and ``train_on(cfg, data, splits)``, a run on rows the caller chose.

``train`` reads and splits ``cfg``'s data and fits a model on it (``training.run.fit``); with
``--unlabelled`` the run is ``training.semi``'s: a teacher, then FixMatch or self-training.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl

from ..config import TrainConfig
from ..data import LabelledData
from ..errors import UserError
from .data import load_splits, with_data_defaults
from .run import TrainResult, fit, run_start
from .semi import learn_from_unlabelled

log = logging.getLogger(__name__)


def resolve_resume(cfg: TrainConfig) -> str | None:
    """``--resume PATH``, or ``--resume last``: the newest last.ckpt of this backbone's runs."""
    if not cfg.resume or cfg.resume != "last":
        if cfg.resume and not Path(cfg.resume).is_file():
            raise UserError(f"--resume {cfg.resume}: no such checkpoint file")
        return cfg.resume
    runs = Path(cfg.checkpoints_location) / cfg.backbone
    found = sorted(runs.glob("*/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(f"--resume last: no last.ckpt under {runs}")
    log.info("resuming from %s", found[-1])
    return str(found[-1])


def resolved(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with the defaults its data decides (``with_data_defaults``) and ``--resume`` as a checkpoint path."""
    return replace(with_data_defaults(cfg), resume=resolve_resume(cfg))


def train(cfg: TrainConfig, callbacks: Sequence[pl.Callback] = ()) -> TrainResult:
    """Fit a model as ``cfg`` says on its data's own split, test its best checkpoint, and say where it is.

    ``callbacks`` are added to the Trainer's own (a hyperparameter search passes its pruning callback).
    With ``cfg.unlabelled``: a teacher, then a run that learns from the unlabelled photos too
    (``training.semi``); the latter's result.
    """
    cfg = resolved(cfg)
    if cfg.unlabelled:
        return learn_from_unlabelled(cfg, callbacks)
    start = run_start(cfg)  # the weights and flags are checked before the data, which may be generated first
    data, splits = load_splits(cfg)
    return fit(cfg, data, splits, callbacks, start)


def train_on(cfg: TrainConfig, data: LabelledData, splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
             callbacks: Sequence[pl.Callback] = ()) -> TrainResult:
    """A run of ``cfg`` on rows the caller read and chose, ``splits`` (train, validation, test) of ``data``,
    instead of the run's own split: the label audit reads its data once for all of its folds.
    ``cfg.unlabelled`` is not used."""
    return fit(resolved(cfg), data, splits, callbacks)
