"""The Lightning callbacks that make a training run trustworthy on small data.

- ``WarmupEMA``: an exponential moving average of the weights (Lightning's weight averaging, as its
  ``EMAWeightAveraging``) whose decay grows with the number of updates, so a short run is not stuck
  near its random start.
- ``ScheduleAwareEarlyStopping``: early stopping that watches only once the learning rate is low
  enough for the validation metric to mean something; ``default_min_epochs`` and
  ``default_patience`` say when that is and whether to stop at all (not under cosine unless asked).
  The same start epoch gates which checkpoint may be called best (``training.RunCheckpoint``).
- ``BackboneFreeze``: trains the head alone for the first epochs, then the whole network.

Each is a small subclass of the Lightning callback that does the job; why each departs from the
stock one is said where it does.
"""

from __future__ import annotations

import logging
import math

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, WeightAveraging

from ..config import DEFAULT_PATIENCE

log = logging.getLogger(__name__)

EMA_WARMUP_POWER = 0.75


def ema_decay_at(updates: int, decay: float, power: float = EMA_WARMUP_POWER) -> float:
    """The decay of the ``updates``-th update: ``1 - (1 + updates) ** -power``, capped at ``decay``.

    timm's EMA warm-up (``--model-ema-warmup``). With power 3/4 the average spans about the last
    ``(1 + updates) ** 0.75`` steps: 30 after 100 updates, 180 after 1,000, reaching a decay of
    0.999 after about 10,000. A fixed decay of 0.999 over a run of 200 steps would keep 82% of the
    random initial weights (0.999 ** 200) in the average; this one forgets them within a few dozen.
    """
    return min(decay, 1.0 - (1.0 + updates) ** -power)


def _ema_update(decay: float, power: float):
    """``multi_avg_fn`` for ``AveragedModel``: one fused update of every tensor of a device and dtype."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        d = ema_decay_at(int(num_averaged), decay, power)
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1.0 - d)
        else:  # integer buffers (BatchNorm's num_batches_tracked) are counts, not weights
            for a, c in zip(averaged, current):
                a.copy_(c)

    return update


class WarmupEMA(WeightAveraging):
    """Lightning's ``EMAWeightAveraging``, with a decay that warms up with the update count.

    ``EMAWeightAveraging`` takes a fixed decay only, so this is the same subclass of Lightning's
    ``WeightAveraging`` with the warm-up in its averaging function; it updates after every
    optimizer step. Lightning swaps the averaged weights in for every validation (so the monitored metric, the best
    checkpoint and early stopping all judge the averaged model), writes them as the checkpoint's
    ``state_dict`` (what prediction loads; the raw weights go to ``current_model_state``) and
    copies them into the model when training ends. The number of updates is part of the saved
    averaging state, so a resumed run continues the same average; under DDP every process holds
    the same weights after each step, hence the same average.
    """

    def __init__(self, decay: float, power: float = EMA_WARMUP_POWER):
        super().__init__(multi_avg_fn=_ema_update(decay, power))
        self.decay = decay

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The average is built in setup(), before the strategy moves the model to its device; keep
        # it beside the model so that each update stays on the GPU. WeightAveraging keeps the average
        # in a private attribute and offers no public way to move it: this holds for the
        # pytorch-lightning range pinned in pyproject.toml (>=2.6.6,<2.7), and the recipe tests train
        # with it on every run.
        if self._average_model is not None:
            self._average_model.to(pl_module.device)


class ScheduleAwareEarlyStopping(EarlyStopping):
    """``EarlyStopping`` that starts watching at epoch ``start_epoch`` (counted from 0).

    Before it, the learning rate is still warming up or high in the cosine schedule, and the
    validation metric of a small set swings from epoch to epoch (measured: 0.21, 0.68, 0.35 in
    three epochs); stopping on such a swing ended runs before they had learnt. From
    ``start_epoch`` on, the first validation sets the score to beat and ``patience`` counts from
    there.
    """

    def __init__(self, start_epoch: int, **kwargs):
        super().__init__(**kwargs)
        self.start_epoch = start_epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch >= self.start_epoch:
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch >= self.start_epoch:
            super().on_validation_end(trainer, pl_module)


def default_min_epochs(max_epochs: int, scheduler: str, share: float = 0.25) -> int:
    """Epochs before a checkpoint may be called best or early stopping may watch: the first quarter
    of the run under the cosine schedule (never the last epoch), else none.

    Early in a cosine run the learning rate is near its peak and a validation metric mostly measures
    the noise of large steps; a small validation set can crown such a model (measured: epoch 4 of
    30 picked on 150 validation digits). A longer wait costs as much the other way: on 250 synthetic
    images the validation loss is lowest at epoch 7-10 whatever the run's length, and waiting for
    half of a 30-epoch run forced picks from epoch 15 on (validation loss 0.085-0.092 against
    0.077-0.081 at the minimum; test R² 0.078 against 0.110 for 15 epochs, 5 seeds). The weight
    average (``--ema-decay``), which is what validation sees, damps the early swings, so a quarter
    is enough. The other schedules lower the rate only when validation stalls, so there is no
    schedule to wait for.
    """
    return min(math.ceil(share * max_epochs), max_epochs - 1) if scheduler == "cosine" else 0


def default_patience(scheduler: str) -> int | None:
    """Early-stopping patience when ``--patience`` is not given: off under cosine, else 5 epochs.

    Under the cosine schedule ``-e`` is the run's budget and its last, low-rate epochs are where a
    model settles; a run stopped before them never anneals (measured on small data: stopping at
    epoch 20-23 of 30 kept checkpoints from the high-rate half). ``plateau`` lowers the rate when
    validation stalls and ``none`` never does, so there stopping is what ends a stalled run.
    """
    return None if scheduler == "cosine" else DEFAULT_PATIENCE


class BackboneFreeze(Callback):
    """Trains the head alone for the first ``epochs`` epochs, then the backbone as well.

    Lightning's ``BaseFinetuning`` freezes with ``requires_grad=False`` before the model is wrapped
    for DDP, and DDP only synchronises the parameters that needed gradients when it was wrapped:
    after unfreezing, each process would train a backbone of its own. It also freezes again after
    a resume (Lightning issue #21901). Here the backbone stays trainable and in the optimizer (its
    own parameter group, ``PerspectiveModel.parameter_groups``); while frozen, its gradients are
    dropped before each optimizer step, so the optimizer skips those weights entirely (no update,
    no weight decay, no moment estimates). Whether the backbone is frozen depends on the epoch
    alone, so a run resumed in either phase carries on as it would have. BatchNorm statistics keep
    following the new data while the weights are frozen, as ``BaseFinetuning``'s default does.
    """

    def __init__(self, epochs: int):
        self.epochs = epochs

    def frozen(self, trainer: pl.Trainer) -> bool:
        return trainer.current_epoch < self.epochs

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.epochs and trainer.current_epoch in (0, self.epochs):
            log.info("epoch %d: %s", trainer.current_epoch,
                     f"backbone frozen for {self.epochs} epoch(s)" if self.frozen(trainer) else "backbone unfrozen")

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        if self.frozen(trainer):
            for parameter in pl_module.backbone.parameters():
                parameter.grad = None
