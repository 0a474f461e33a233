"""FixMatch after the fine-tune (``--semi fixmatch``): the teacher's model learns from unlabelled photos.

FixMatch (Sohn et al. 2020): each step takes a batch of labelled photos (``--augment``) and
``FIXMATCH_RATIO`` times as many unlabelled ones. The model predicts a mild view of each unlabelled
photo (flip and shift); one it calls a class with confidence ``FIXMATCH_THRESHOLD`` or more teaches
that class for a strong view of the same photo (RandAugment and a cut-out), in the same step's loss.
Unlike self-training the pseudo-labels follow the model as it learns. The loss is ``FixMatchModel``'s:
a ``PerspectiveModel`` whose training step takes the labelled and unlabelled halves of a batch (see
``data.datasets.PerspectiveDataModule``) and whose checkpoints are a ``PerspectiveModel``'s.

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
import torch
import torch.nn.functional as F

from ...config import (
    FIXMATCH_EMA_DECAY,
    FIXMATCH_LEARNING_RATE,
    FIXMATCH_THRESHOLD,
    FIXMATCH_WARMUP_STEPS,
    TrainConfig,
)
from ...data import LabelledData
from ...models.module import PerspectiveModel
from ...models.transforms import fixmatch_views
from ..run import RunConfigFile, TrainResult, build_datamodule, fit_model, run_start, seeded_model

log = logging.getLogger(__name__)


class FixMatchModel(PerspectiveModel):
    """``PerspectiveModel`` trained by FixMatch's step; its batches are ``{"labelled": (x, y), "unlabelled":
    (weak, strong)}``. It adds no weights and no settings, so its checkpoints load as a ``PerspectiveModel``."""

    def training_step(self, batch, batch_idx):
        return self.fixmatch_step(batch["labelled"], batch["unlabelled"])

    def fixmatch_step(self, labelled, unlabelled) -> torch.Tensor | None:
        """FixMatch's loss: cross-entropy on the labelled photos, plus, over every unlabelled photo, the
        cross-entropy of its strong view against the class the model gives its weak view, counted where
        that class's probability reaches ``FIXMATCH_THRESHOLD`` (Sohn et al. 2020).

        The weak views are predicted in evaluation mode, without gradients: the pseudo-label is a target,
        and batch statistics of strongly and weakly augmented photos together would not describe either.
        """
        if labelled is None:  # every labelled image of the batch was unreadable
            return None
        x, y = labelled
        if unlabelled is None:
            return self._step(labelled, "train")
        weak, strong = unlabelled
        with torch.no_grad():
            self.eval()
            confidence, pseudo = self(weak).float().softmax(-1).max(-1)
            self.train()
        out = self(torch.cat([x, strong])).float()
        supervised = self.loss_fn(out[: len(y)], y, weight=self.class_weights)
        sure = (confidence >= FIXMATCH_THRESHOLD).float()
        unsupervised = (F.cross_entropy(out[len(y):], pseudo, reduction="none") * sure).mean()
        loss = supervised + unsupervised
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log("train_pseudo_labelled", sure.mean(), on_step=True, on_epoch=True, batch_size=len(sure))
        return loss


def phase_settings(cfg: TrainConfig, teacher: str) -> TrainConfig:
    """The settings the FixMatch phase trains with: ``cfg``'s data, batch and augmentation, from ``teacher``
    (a train checkpoint, whose head is kept), with the phase's own measured schedule."""
    return replace(
        cfg, weights=teacher, learning_rate=FIXMATCH_LEARNING_RATE, optimizer="adamw",
        scheduler="cosine", warmup_epochs=min(1.0, FIXMATCH_WARMUP_STEPS / cfg.fixmatch_steps), max_epochs=1,
        min_epochs=0, patience=None, ema_decay=FIXMATCH_EMA_DECAY, freeze_epochs=0, backbone_lr_scale=1.0,
        mix="none", lr_find=False, unlabelled=None)


def fixmatch_phase(cfg: TrainConfig, data: LabelledData, parts: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
                   pool: list[str], teacher: str, callbacks: Sequence[pl.Callback] = ()) -> TrainResult:
    """The FixMatch phase from ``teacher`` (its best checkpoint) on the labelled rows and ``pool``; its
    ``TrainResult``. The run folder's config.yaml repeats ``cfg``, the user's settings, not the phase's.

    With ``cfg.fixmatch_with_val`` the validation rows join the training rows: the teacher needed them to
    pick its epoch, the phase (scored at its end) does not, and on Fashion-MNIST-500 the 75 more labels
    lifted every seed (0.854, 0.852, 0.849 to 0.856, 0.860, 0.850). The phase then validates nothing
    (``training.run.build_trainer``), so no score it trained on is reported as held out.
    """
    if cfg.fixmatch_with_val:
        train, val, test = parts
        parts = (pd.concat([train, val], ignore_index=True), val, test)
        log.info("--fixmatch-with-val: the phase learns from the %d validation photos too; it validates nothing "
                 "and its checkpoint carries no calibration", len(val))
    phase = phase_settings(cfg, teacher)
    start = run_start(phase)
    model, perm = seeded_model(phase, data, parts[0], start, FixMatchModel)
    datamodule = build_datamodule(phase, data, parts, start.preprocessing, perm, unlabelled=pool,
                                  unlabelled_views=fixmatch_views(start.preprocessing), steps=phase.fixmatch_steps)
    return fit_model(phase, model, datamodule, data, parts[2], phase.fixmatch_steps,
                     [*callbacks, RunConfigFile(cfg)], validate=not cfg.fixmatch_with_val)
