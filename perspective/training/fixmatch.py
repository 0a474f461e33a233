"""FixMatch after the fine-tune (``--semi fixmatch``): the teacher's model learns from unlabelled photos.

FixMatch (Sohn et al. 2020): each step takes a batch of labelled photos (``--augment``) and
``FIXMATCH_RATIO`` times as many unlabelled ones. The model predicts a mild view of each unlabelled
photo (flip and shift); one it calls a class with confidence ``FIXMATCH_THRESHOLD`` or more teaches
that class for a strong view of the same photo (RandAugment and a cut-out), in the same step's loss.
Unlike self-training the pseudo-labels follow the model as it learns. The loss is
``PerspectiveModel``'s (it takes the labelled and unlabelled halves of a batch, see
``data.datasets.PerspectiveDataModule``).

The phase continues the teacher's best checkpoint, head and all, for ``--fixmatch-steps`` steps in one
epoch: AdamW at ``FIXMATCH_LEARNING_RATE`` for the whole model, ``FIXMATCH_WARMUP_STEPS`` of warm-up,
cosine decay, and a weight average of decay ``FIXMATCH_EMA_DECAY``, which is the model saved. On
Fashion-MNIST-500 from a SimCLR backbone these settings gained over the fine-tune on every seed
(``benchmarks/bench_recipe.py --unlabelled``; docs/training.md, "Measured: few labels, many unlabelled
photos"). The run's other flags (``-l``, ``-e``, the optimizer) shape the teacher.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import pandas as pd
import pytorch_lightning as pl

from ..config import (
    FIXMATCH_EMA_DECAY,
    FIXMATCH_LEARNING_RATE,
    FIXMATCH_WARMUP_STEPS,
    TrainConfig,
)
from ..data import LabelledData

log = logging.getLogger(__name__)


def fixmatch_phase(cfg: TrainConfig, teacher: str) -> TrainConfig:
    """The settings the FixMatch phase trains with: ``cfg``'s data, batch and augmentation, from ``teacher``
    (a train checkpoint, whose head is kept), with the phase's own measured schedule."""
    return replace(
        cfg, weights=teacher, learning_rate=FIXMATCH_LEARNING_RATE, optimizer="adamw",
        scheduler="cosine", warmup_epochs=min(1.0, FIXMATCH_WARMUP_STEPS / cfg.fixmatch_steps), max_epochs=1,
        min_epochs=0, patience=None, ema_decay=FIXMATCH_EMA_DECAY, freeze_epochs=0, backbone_lr_scale=1.0,
        mix="none", lr_find=False, unlabelled=None)


def student(cfg: TrainConfig, train_run, callbacks: Sequence[pl.Callback], data: LabelledData,
            parts: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame], pool: list[str], teacher: str):
    """The FixMatch phase from ``teacher`` (its best checkpoint) on the labelled rows and ``pool``; its
    ``TrainResult``. ``train_run`` is ``training.run.train``.

    With ``cfg.fixmatch_with_val`` the validation rows join the training rows: the teacher needed them to
    pick its epoch, the phase (scored at its end) does not, and on Fashion-MNIST-500 the 75 more labels
    lifted every seed (0.854, 0.852, 0.849 to 0.856, 0.860, 0.850). The phase then validates nothing
    (``training.run.train``), so no score it trained on is reported as held out.
    """
    if cfg.fixmatch_with_val:
        train, val, test = parts
        parts = (pd.concat([train, val], ignore_index=True), val, test)
        log.info("--fixmatch-with-val: the phase learns from the %d validation photos too; it validates nothing "
                 "and its checkpoint carries no calibration", len(val))
    return train_run(cfg, callbacks, prepared=(data, parts), fixmatch=(teacher, pool))
