"""Checkpoint writing: atomic local files, a background writer thread, and which checkpoints a run keeps.

- ``LocalCheckpointIO``: ``torch.save`` into a temporary file and a rename (and hard links for
  ``last.ckpt``), instead of Lightning's detour through memory.
- ``BackgroundCheckpointIO``: those writes on a thread of their own, in order.
- ``RunCheckpoint``: the best three by the monitored metric from ``--min-epochs`` on (of equally
  scored ones the latest), ``last.ckpt`` after every epoch and on Ctrl-C.
- ``ended_run_best``: from a run's ``last.ckpt``, its best checkpoint if the run has ended.
- ``expect_existing_checkpoints``: no warning for a run folder that holds checkpoints already.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins import CheckpointIO, TorchCheckpointIO
from lightning_utilities.core.apply_func import apply_to_collection
from pytorch_lightning.callbacks import ModelCheckpoint

from ..models.checkpoint import save_atomically
from ..models.files import read_checkpoint
from ..results import partial_path


class LocalCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, without its detour through memory for local files.

    Lightning serialises a checkpoint into an in-memory buffer and copies it into the file inside
    an fsspec transaction, several times slower for a 179 MB resnet18 checkpoint on 2 CPU cores than
    ``torch.save`` into a temporary file and a rename, which is just as atomic
    (a reader sees the old file or the new one, never half of one). Remote paths (``s3://`` and the
    like) still go through Lightning's writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path) or storage_options is not None:
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_atomically(checkpoint, path)

    def link_checkpoint(self, source: str | Path, target: str | Path) -> None:
        """``target`` becomes a hard link to the finished checkpoint ``source`` (a copy where links fail)."""
        target = Path(target)
        partial = partial_path(target)
        try:
            os.link(source, partial)
        except OSError:  # a file system without hard links
            shutil.copyfile(source, partial)
        os.replace(partial, target)


class BackgroundCheckpointIO(CheckpointIO):
    """Checkpoints written by a thread of their own while training goes on.

    A run writes one or two checkpoints per epoch (179 MB for resnet18 with its optimizer state and
    weight average); written in the training loop they took 0.75 s each on the 2-core machine, a
    tenth of a small-data epoch. The tensors are copied on the training thread before the save is
    handed over, so the file holds the state at the moment of the save. Saves, links and removals go
    through one single thread, so they happen in the order they were asked for (never a link to a
    file not yet written, never a removal overtaken by the save of the same file). An error in the
    thread is raised by the next call or at ``teardown``, which Lightning calls when fitting ends,
    also after Ctrl-C, and which waits for the thread; a killed run loses at most the file being
    written, and the atomic rename keeps the previous one whole.

    The same idea as Lightning's experimental ``AsyncCheckpointIO``, on the public ``CheckpointIO``
    interface alone (that class keeps its thread and error in private attributes).
    """

    def __init__(self, checkpoint_io: LocalCheckpointIO | None = None) -> None:
        self.checkpoint_io = checkpoint_io or LocalCheckpointIO()
        self._thread: ThreadPoolExecutor | None = None
        self._error: BaseException | None = None

    def _in_order(self, job: Callable[..., None], *args: Any) -> None:
        """Run ``job(*args)`` on the writer thread, after everything asked for before it."""
        self._raise_pending()
        if self._thread is None:  # made here, not in __init__: teardown ends it after every fit
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")

        def run() -> None:
            try:
                job(*args)
            except BaseException as error:  # noqa: BLE001 - raised by the next call or at teardown
                self._error = error

        self._thread.submit(run)

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        snapshot = apply_to_collection(checkpoint, torch.Tensor, lambda t: t.detach().clone())
        self._in_order(self.checkpoint_io.save_checkpoint, snapshot, path, storage_options)

    def link_checkpoint(self, source: str | Path, target: str | Path) -> None:
        self._in_order(self.checkpoint_io.link_checkpoint, source, target)

    def remove_checkpoint(self, path) -> None:
        self._in_order(self.checkpoint_io.remove_checkpoint, path)

    def load_checkpoint(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.wait()
        return self.checkpoint_io.load_checkpoint(*args, **kwargs)

    def wait(self) -> None:
        """Block until every save, link and removal asked for so far is done."""
        if self._thread is not None:
            self._thread.submit(lambda: None).result()
        self._raise_pending()

    def teardown(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        self._raise_pending()


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, best checkpoints from ``start_epoch`` on, ``last.ckpt`` after every
    epoch and on Ctrl-C.

    Lightning has no public hook for which checkpoints count as best or when ``last.ckpt`` is
    written, so this class overrides ModelCheckpoint's private methods (``_update_best_and_save``,
    ``_save_last_checkpoint``, ``_should_skip_saving_checkpoint``, ``_monitor_candidates``, and the
    attributes ``_last_global_step_saved``, ``_last_checkpoint_saved``). They hold for the
    pytorch-lightning range pinned in pyproject.toml (>=2.6.6,<2.7); tests/test_recipe.py and
    tests/test_robustness.py check the behaviour they give (ties, last.ckpt, resume after Ctrl-C).

    Before ``start_epoch`` (``--min-epochs``) the learning rate is still high and no checkpoint is
    called best, however lucky its validation score (see ``callbacks.default_min_epochs``); a run
    that ends before it has only last.ckpt, which then counts as its best.

    Lightning 2.6 refreshes ``last.ckpt`` only in an epoch that also saved a best-k checkpoint, so a
    run whose validation stopped improving would resume from that older epoch; here it is written
    after every validation. Checkpoints are written atomically (``LocalCheckpointIO``), so a killed
    run never leaves a half-written file; after Ctrl-C, last.ckpt holds the state at the moment of
    the stop and ``--resume`` continues from there.
    """

    def __init__(self, start_epoch: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.start_epoch = start_epoch

    def check_monitor_top_k(self, trainer: pl.Trainer, current: torch.Tensor | None = None) -> bool:
        """Lightning's test, but a score equal to the k-th best also gets in (it replaces the earliest of them)."""
        if trainer.current_epoch < self.start_epoch or current is None:
            return False
        if self.save_top_k == -1 or len(self.best_k_models) < self.save_top_k:
            return True
        at_least = {"min": torch.le, "max": torch.ge}[self.mode]
        return trainer.strategy.reduce_boolean_decision(
            bool(at_least(current, self.best_k_models[self.kth_best_model_path])))

    def _update_best_and_save(self, current: torch.Tensor, trainer: pl.Trainer,
                              monitor_candidates: dict[str, torch.Tensor]) -> None:
        """Of equally scored checkpoints, the latest is the best: its learning rate was lower.

        Accuracy on a small validation set moves in steps (1/150 on 150 images), so ties are common;
        Lightning keeps the first of them. Measured on digits at ``-e 30``: epochs 8 to 29 of one run
        all scored 0.9733 and the first was chosen.
        """
        super()._update_best_and_save(current, trainer, monitor_candidates)
        self.best_model_path = self._latest_best()

    def _latest_best(self) -> str:
        """The latest of the kept checkpoints that share the best score (Lightning's pick: the first)."""
        best = float(self.best_model_score)
        return [path for path, score in self.best_k_models.items() if float(score) == best][-1]

    def state_dict(self) -> dict[str, Any]:
        """Lightning's state, naming the latest of the tied best checkpoints.

        Lightning saves a best checkpoint from inside ``_update_best_and_save``, before the tie is
        resolved above, so without this the files (last.ckpt too) would name the first of the tied
        ones: a resumed run, and a reader of last.ckpt, would pick another checkpoint than the run did.
        """
        state = super().state_dict()
        if self.best_k_models and self.best_model_score is not None:
            state["best_model_path"] = self._latest_best()
        return state

    def _save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        """last.ckpt; when a best checkpoint was written at this very step, a hard link to it instead of a copy.

        A hard link (not Lightning's symbolic ``save_last="link"``) stays valid when the best file is
        later deleted to keep the top 3, and the next last.ckpt replaces the link, not the file
        behind it (``LocalCheckpointIO`` writes a new file and renames it). Every process takes the
        same branch, so the processes of a DDP run meet at the same barriers.
        """
        same_step = self._last_global_step_saved == trainer.global_step and self._last_checkpoint_saved
        if not same_step or "://" in str(self.dirpath):
            return super()._save_last_checkpoint(trainer, monitor_candidates)
        target = Path(self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST))
        self.last_model_path = str(target)
        if trainer.is_global_zero:
            trainer.strategy.checkpoint_io.link_checkpoint(self._last_checkpoint_saved, target)
        trainer.strategy.barrier()

    def _refresh_last(self, trainer: pl.Trainer) -> None:
        if not self._should_skip_saving_checkpoint(trainer):  # skipped when this step was just saved
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # best-k, and last.ckpt when one of them was saved
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        if isinstance(exception, KeyboardInterrupt) and self.dirpath:
            last = Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"
            # Recorded before the save, so the resumed run knows the file as its own last.ckpt and
            # refreshes it, instead of starting a last-v1.ckpt beside it.
            self.last_model_path = str(last)
            trainer.save_checkpoint(last)


def ended_run_best(last: str | os.PathLike, max_epochs: int) -> str | None:
    """The best checkpoint of the run whose ``last.ckpt`` this is, if that run has ended: all of its
    ``max_epochs`` trained, or stopped early. None while it has epochs left.

    A run stopped early and resumed would train one more epoch before its early stopping stopped it
    again (Lightning does not keep the decision to stop), which could change its best checkpoint; a
    caller that only needs the result (``train --unlabelled --resume``: the teacher) reads it here.
    """
    state = read_checkpoint(last, lazy=True)
    callbacks = [s for s in state.get("callbacks", {}).values() if isinstance(s, dict)]
    stopped = any(s.get("stopped_epoch", 0) > 0 for s in callbacks)
    # epochs whose training finished (a Ctrl-C in the middle of the last one leaves it unfinished)
    trained = state.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {}).get("processed", 0)
    if not stopped and trained < max_epochs:
        return None
    best = next((s.get("best_model_path") or s.get("last_model_path") for s in callbacks if "best_model_path" in s), None)
    return best if best and Path(best).is_file() else str(last)


def expect_existing_checkpoints() -> None:
    """Silence Lightning's warning about a checkpoint folder that is not empty, for runs that continue
    or restart in their own folder (``--resume``), where the checkpoints there are expected."""
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
