"""Progress a log file can show: a line per epoch where Lightning's progress bar cannot draw.

Lightning's bar redraws one line of a terminal (on stdout). Under ``perspective train > train.log``,
``nohup``, CI or a scheduler there is no terminal, and a run of many minutes would pass in silence
or as a smear of carriage returns; there ``EpochLog`` writes one log line (stderr) after each epoch
instead: the epoch, the losses, the monitored metric, images per second and the time left.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from ..progress import draws_bar, format_duration

log = logging.getLogger("perspective.train")


def draws_progress_bar(quiet: bool = False) -> bool:
    """Whether Lightning's bar (and its model summary) can draw: not ``--quiet``, and their stream, stdout,
    is a terminal."""
    return draws_bar(quiet, sys.stdout)


def where_it_trains(trainer: pl.Trainer) -> str:
    """``2 x NVIDIA H100 80GB HBM3, precision bf16-mixed``: the one line a run logs about its hardware, in
    place of Lightning's own (GPU available, TPU available, the mixed precision it uses)."""
    device = trainer.strategy.root_device
    count = trainer.num_devices * trainer.num_nodes
    if device.type == "cpu":
        where = "the CPU" if count == 1 else f"the CPU, {count} processes"
    else:
        where = f"{count} x {torch.cuda.get_device_name(device) if device.type == 'cuda' else device.type}"
    nodes = f" on {trainer.num_nodes} nodes" if trainer.num_nodes > 1 else ""
    return f"{where}{nodes}, precision {trainer.precision}"


def _batch_size(batch: Any) -> int:
    """Images in a training batch: the length of its first tensor (0 for a batch of unreadable images);
    a FixMatch batch counts its labelled and unlabelled halves."""
    if isinstance(batch, dict):
        return sum(_batch_size(half) for half in batch.values())
    while isinstance(batch, (list, tuple)) and batch:
        batch = batch[0]
    return len(batch) if isinstance(batch, torch.Tensor) else 0


class EpochLog(Callback):
    """One line per finished epoch: ``epoch 3/20: train_loss 0.0123, val_loss 0.0101 (monitored), ...``.

    Images per second count the training images of the epoch over its whole time, validation
    included. The time left assumes the remaining epochs each take as long as the last ``RECENT``
    did, end to end: a first epoch that starts the loader's workers, or a stretch when another job
    shared the cores, stops counting once it is over (early stopping may end the run sooner).
    """

    RECENT = 3

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.images = 0
        self.epoch_start = self.last_end = 0.0
        self.recent: deque[float] = deque(maxlen=self.RECENT)  # seconds of the latest epochs, end to end

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.last_end = time.perf_counter()
        self.recent.clear()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epoch_start = time.perf_counter()
        self.images = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.images += _batch_size(batch) * trainer.world_size

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        now = time.perf_counter()
        epoch_seconds = now - self.epoch_start
        self.recent.append(now - self.last_end)
        self.last_end = now
        left = (trainer.max_epochs - trainer.current_epoch - 1) * sum(self.recent) / len(self.recent)
        metrics = trainer.callback_metrics
        shown = [name for name in ("train_loss_epoch", "val_loss", self.monitor, "val_r2", "val_f1") if name in metrics]
        values = ", ".join(
            f"{name.removesuffix('_epoch')} {float(metrics[name]):.4g}" + (" (monitored)" if name == self.monitor else "")
            for name in dict.fromkeys(shown))
        rate = self.images / epoch_seconds if epoch_seconds > 0 else float("inf")
        log.info("epoch %d/%d: %s; %.1f images/s; about %s left", trainer.current_epoch + 1, trainer.max_epochs,
                 values, rate, format_duration(left))
