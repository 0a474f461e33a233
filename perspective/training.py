"""One training run, from a config to a best checkpoint and its test metrics.

``train(TrainConfig(...))`` is what ``train.py`` calls and what a hyperparameter search calls per
trial: read and split the data, build the model and the Lightning Trainer (checkpoints, early
stopping, learning-rate monitor, TensorBoard), fit, then test the best checkpoint.

Checkpoints go to ``<checkpoints_location>/<backbone>/<run>/`` (best 3 by the monitored metric and
``last.ckpt``), TensorBoard logs to ``<logs_location>/<backbone>/<run>/``; ``run`` is a timestamp
unless given. Under DDP every process builds the same split from the same seed, and Lightning
takes rank 0's checkpoint folder.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins import TorchCheckpointIO
from PIL import Image
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.plugins.io import AsyncCheckpointIO

from .backbones import Preprocessing, default_preprocessing
from .callbacks import (
    BackboneFreeze,
    ScheduleAwareEarlyStopping,
    WarmupEMA,
    default_min_epochs,
    default_patience,
)
from .config import (
    PRETRAINED_BACKBONE_LR_SCALE,
    PRETRAINED_FREEZE_EPOCHS,
    RUN_CONFIG,
    TrainConfig,
    config_yaml,
    default_loader_workers,
    default_workers,
    lightning_precision,
    parse_loggers,
    run_config,
)
from .data import LabelledData, find_unreadable, read_labelled_data, split_data
from .data.datasets import PerspectiveDataModule
from .errors import UserError
from .evaluation import Evaluation
from .hardware import default_precision, resolve_devices
from .home import default_data_dir
from .loggers import EpochCSVLogger, create_loggers
from .model import PerspectiveModel
from .report import flat_metrics
from .results import atomic_write, partial_path
from .transforms import eval_transform, flip_permutation, parse_flip_pairs, train_transform

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    best_checkpoint: str
    run_dir: str
    test_metrics: dict[str, float]
    test_table: pd.DataFrame | None
    is_global_zero: bool = True  # False in the other DDP processes, which should print nothing
    found_learning_rate: float | None = None  # --lr-find's suggestion, which the run trained with


def fine_tuning(cfg: TrainConfig) -> tuple[int, float]:
    """``(freeze_epochs, backbone_lr_scale)``: the flags, or the defaults that suit the starting weights.

    Pretrained weights (``imagenet``, a state_dict or a toolkit checkpoint): one epoch for the
    random head alone, then the backbone at a tenth of the head's learning rate, so the head's
    first, large gradients do not wash out what the backbone knows. Random weights have nothing to
    protect: no freezing, one learning rate.
    """
    pretrained = cfg.weights != "none"
    freeze = cfg.freeze_epochs if cfg.freeze_epochs is not None else (PRETRAINED_FREEZE_EPOCHS if pretrained else 0)
    scale = cfg.backbone_lr_scale
    if scale is None:
        scale = PRETRAINED_BACKBONE_LR_SCALE if pretrained else 1.0
    return freeze, scale


DEFAULT_DATA_COUNT = 2000
DEFAULT_DATA_SEED = 0  # sample_set/ and the model card's held-out set use other seeds


def ensure_default_dataset(path: Path | None = None, count: int = DEFAULT_DATA_COUNT) -> Path:
    """The built-in synthetic car-perspective dataset, generated on first use.

    It is generated into a sibling folder and renamed into place, so an interrupted generation
    never leaves a half dataset that looks complete. Its folder: ``home.default_data_dir()``.
    """
    path = path or default_data_dir()
    if (path / "labels.csv").is_file():
        return path
    from .synth import default_synth_workers, generate

    log.info("generating the built-in synthetic dataset: %d images in %s (once)", count, path)
    staging = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    generate(staging, count, DEFAULT_DATA_SEED, workers=default_synth_workers())
    staging.replace(path)
    return path


def _read_options(cfg: TrainConfig) -> dict[str, Any]:
    return dict(task=cfg.task, targets=cfg.targets, label_column=cfg.label_column, skip_bad_files=not cfg.strict,
                partial_targets=cfg.allow_missing_targets)


def read_training_data(cfg: TrainConfig) -> LabelledData:
    """The labelled data ``cfg`` trains on (``--data``, or the built-in synthetic set), before any split."""
    source = cfg.data if cfg.data is not None else ensure_default_dataset()
    return read_labelled_data(source, cfg.images, **_read_options(cfg))


def _load_splits(cfg: TrainConfig) -> tuple[LabelledData, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    data = read_training_data(cfg)
    read = _read_options(cfg)
    extra = {}
    for name in ("val_data", "test_data"):
        path = getattr(cfg, name)
        if path:
            other = read_labelled_data(path, None, **{**read, "task": data.task})
            if data.task == "regression" and other.names != data.names:
                raise UserError(f"--{name.replace('_', '-')} {path} has targets {other.names}, not {data.names}")
            extra[name] = other.frame
    val_fraction = 0.0 if "val_data" in extra else cfg.val_fraction
    test_fraction = 0.0 if "test_data" in extra else cfg.test_fraction
    train, val, test = split_data(data, val_fraction, test_fraction, cfg.seed)
    val, test = extra.get("val_data", val), extra.get("test_data", test)
    if data.task == "classification":
        known = set(data.names)
        for frame, name in ((val, "validation"), (test, "test")):
            unknown = sorted(set(frame["label"]) - known)
            if unknown:
                raise UserError(f"{name} data has classes not in the training data: {', '.join(unknown)}")
    if len(train) < 2:
        raise UserError(f"{data.source}: the training split has {len(train)} image(s); need at least 2")
    if len(val) == 0:
        raise UserError(f"{data.source}: the validation split is empty; use more data or a larger --val-fraction")
    if len(test) == 0 and test_fraction > 0:
        raise UserError(f"{data.source}: the test split is empty; use more data, a larger --test-fraction, "
                        "or --test-fraction 0 to train without a test")
    if cfg.strict:
        _check_every_image([train, val, test], _threads(cfg))
    log.info("%s: %s on %d images (train %d, val %d, test %d); %s: %s", data.source, data.task,
             len(train) + len(val) + len(test), len(train), len(val), len(test),
             "targets" if data.task == "regression" else "classes", ", ".join(data.names))
    return data, (train, val, test)


def _threads(cfg: TrainConfig) -> int:
    """Decoding threads for checking images and predicting the test split (``-w``)."""
    return cfg.workers if cfg.workers is not None else default_workers()


def trains_on_cpu(cfg: TrainConfig) -> bool:
    """Whether ``cfg``'s accelerator flags (``-g``, ``--accelerator``, ``--devices``) leave training on the CPU."""
    accelerator, _ = resolve_devices(cfg.gpus, cfg.accelerator, cfg.devices)
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available()
                                    and not torch.backends.mps.is_available())


def _loader_workers(cfg: TrainConfig) -> int:
    """DataLoader processes for training (``-w``; by default fewer when the CPU trains, see ``default_loader_workers``)."""
    return cfg.workers if cfg.workers is not None else default_loader_workers(trains_on_cpu(cfg))


def _check_every_image(frames: Sequence[pd.DataFrame], workers: int) -> None:
    """``--strict``: decode every image before training; any failure is a data error."""
    paths = [p for frame in frames for p in frame["path"]]
    bad = find_unreadable(paths, workers=workers)
    if bad:
        names = ", ".join(f"{Path(p).name} ({reason})" for p, reason in bad[:3])
        raise UserError(f"--strict: {len(bad)} of {len(paths)} image(s) cannot be read: {names}"
                        f"{' ...' if len(bad) > 3 else ''}")


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


def _train_stats(data: LabelledData, train: pd.DataFrame) -> dict[str, Any]:
    if data.task == "classification":
        counts = train["label"].value_counts()
        return {"n": len(train), "counts": {c: int(counts.get(c, 0)) for c in data.names}}
    values = train[data.names].to_numpy(dtype=np.float64)  # NaN: a blank cell (--allow-missing-targets)
    labelled = np.isfinite(values).sum(axis=0)
    if not labelled.all():
        empty = [n for n, c in zip(data.names, labelled) if c == 0]
        raise UserError(f"{data.source}: the training split has no value for target(s) {', '.join(empty)}")
    return {
        "n": len(train),
        "labelled": labelled.tolist(),
        "mean": np.nanmean(values, axis=0).tolist(),
        "std": np.nanstd(values, axis=0).tolist(),
        "min": np.nanmin(values, axis=0).tolist(),
        "max": np.nanmax(values, axis=0).tolist(),
    }


def _output_activation(cfg: TrainConfig, stats: dict[str, Any]) -> str:
    in_unit_range = min(stats["min"]) >= 0 and max(stats["max"]) <= 1
    if cfg.output_activation == "auto":
        return "sigmoid" if in_unit_range else "none"
    if cfg.output_activation == "sigmoid" and not in_unit_range:
        raise UserError("--output-activation sigmoid: some training targets lie outside [0, 1]")
    return cfg.output_activation


def build_model(cfg: TrainConfig, data: LabelledData, train: pd.DataFrame, pre: Preprocessing,
                flip: list[int] | None = None) -> PerspectiveModel:
    """The model ``cfg`` asks for; ``flip`` is the mirror's target or class permutation (for test-time augmentation)."""
    stats = _train_stats(data, train)
    regression = data.task == "regression"
    if regression and cfg.loss == "weighted_mse" and min(stats["min"]) < 0:
        raise UserError("--loss weighted_mse needs non-negative targets (its weight is alpha + target)")
    freeze_epochs, backbone_lr_scale = fine_tuning(cfg)
    return PerspectiveModel(
        backbone=cfg.backbone,
        task=data.task,
        target_names=data.names if regression else None,
        class_names=None if regression else data.names,
        weights=cfg.weights,
        preprocessing=pre.to_dict(),
        output_activation=_output_activation(cfg, stats) if regression else "none",
        loss=cfg.loss,
        huber_delta=cfg.huber_delta,
        weighted_mse_alpha=cfg.weighted_mse_alpha,
        label_smoothing=cfg.label_smoothing,
        dropout=cfg.dropout,
        optimizer=cfg.optimizer,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        scheduler=cfg.scheduler,
        warmup_epochs=cfg.warmup_epochs,
        backbone_lr_scale=backbone_lr_scale,
        freeze_epochs=freeze_epochs,
        balance=cfg.balance,
        flip_permutation=flip,
        train_stats=stats,
        data_config={"source": data.source, "label_column": cfg.label_column, "seed": cfg.seed,
                     "val_fraction": 0.0 if cfg.val_data else cfg.val_fraction,
                     "test_fraction": 0.0 if cfg.test_data else cfg.test_fraction,
                     "val_data": cfg.val_data, "test_data": cfg.test_data},
    )


def _run_name(cfg: TrainConfig) -> str:
    if cfg.resume:
        return Path(cfg.resume).parent.name  # continue in the folder of the resumed run
    return cfg.run_name or time.strftime("%Y%m%d-%H%M%S")


class LocalCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, without its detour through memory for local files.

    Lightning serialises a checkpoint into an in-memory buffer and copies it into the file inside
    an fsspec transaction: 1.1-1.3 s for a 179 MB resnet18 checkpoint on the development machine,
    against 0.25 s for ``torch.save`` into a temporary file and a rename, which is just as atomic
    (a reader sees the old file or the new one, never half of one). Remote paths (``s3://`` and the
    like) still go through Lightning's writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path) or storage_options is not None:
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = partial_path(path)
        try:
            torch.save(checkpoint, partial)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    def link_checkpoint(self, source: str | Path, target: str | Path) -> None:
        """``target`` becomes a hard link to the finished checkpoint ``source`` (a copy where links fail)."""
        target = Path(target)
        partial = partial_path(target)
        try:
            os.link(source, partial)
        except OSError:  # a file system without hard links
            shutil.copyfile(source, partial)
        os.replace(partial, target)


class BackgroundCheckpointIO(AsyncCheckpointIO):
    """Checkpoints written by a thread of their own while training goes on (Lightning's ``AsyncCheckpointIO``).

    A run writes one or two checkpoints per epoch (179 MB for resnet18 with its optimizer state and
    weight average); written in the training loop they took 0.75 s each on the 2-core machine, a
    tenth of a small-data epoch. Lightning copies the tensors before handing them to the thread, so
    the file holds the state at the moment of the save. Links and removals go through the same
    single thread, so they happen in the order they were asked for (never a link to a file not yet
    written, never a removal overtaken by the save of the same file). Lightning waits for the thread
    when fitting ends, also after Ctrl-C; a killed run loses at most the file being written, and the
    atomic rename keeps the previous one whole.
    """

    def __init__(self) -> None:
        super().__init__(LocalCheckpointIO())

    def _in_order(self, job: Callable[..., None], *args: Any) -> None:
        self._ensure_setup()

        def run() -> None:
            try:
                job(*args)
            except BaseException as error:  # raised by the next save or at teardown, as Lightning does
                self._error = error

        self._executor.submit(run)
        if self._error:
            raise self._error

    def link_checkpoint(self, source: str | Path, target: str | Path) -> None:
        self._in_order(self.checkpoint_io.link_checkpoint, source, target)

    def remove_checkpoint(self, path) -> None:
        self._in_order(self.checkpoint_io.remove_checkpoint, path)

    def load_checkpoint(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.wait()
        return self.checkpoint_io.load_checkpoint(*args, **kwargs)

    def wait(self) -> None:
        """Block until every save, link and removal asked for so far is done."""
        if self._executor is not None:
            self._executor.submit(lambda: None).result()
        if self._error:
            raise self._error


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, best checkpoints from ``start_epoch`` on, ``last.ckpt`` after every
    epoch and on Ctrl-C.

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
        best = float(self.best_model_score)
        self.best_model_path = [path for path, score in self.best_k_models.items() if float(score) == best][-1]

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


def build_trainer(
    cfg: TrainConfig, model: PerspectiveModel, steps_per_epoch: int, callbacks: Sequence[pl.Callback] = ()
) -> pl.Trainer:
    accelerator, devices = resolve_devices(cfg.gpus, cfg.accelerator, cfg.devices)
    run = _run_name(cfg)
    if cfg.resume:  # the run's own folder holds checkpoints already, as it should
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    monitor, mode = model.monitor
    min_epochs = cfg.min_epochs if cfg.min_epochs is not None else default_min_epochs(cfg.max_epochs, cfg.scheduler)
    checkpoint = RunCheckpoint(
        start_epoch=min_epochs,
        dirpath=Path(cfg.checkpoints_location) / cfg.backbone / run,
        filename=f"epoch={{epoch:02d}}-{monitor}={{{monitor}:.4f}}",
        auto_insert_metric_name=False,
        monitor=monitor,
        mode=mode,
        save_top_k=3,
        save_last=True,
    )
    patience = cfg.patience if cfg.patience is not None else default_patience(cfg.scheduler)
    stopping = [] if patience is None else [
        ScheduleAwareEarlyStopping(min_epochs, monitor=monitor, mode=mode, patience=patience)]
    averaging = [WarmupEMA(cfg.ema_decay)] if cfg.ema_decay > 0 else []
    freeze = [BackboneFreeze(model.hparams.freeze_epochs)] if model.hparams.freeze_epochs else []
    loggers = create_loggers(parse_loggers(cfg.logger), cfg.logs_location, cfg.backbone, run)
    rate_log = [LearningRateMonitor(logging_interval="epoch")] if loggers else []  # it refuses a run without loggers
    return pl.Trainer(
        max_epochs=cfg.max_epochs,
        accelerator=accelerator,
        devices=devices,
        strategy=cfg.strategy,
        num_nodes=cfg.num_nodes,
        precision=lightning_precision(cfg.precision) or default_precision(accelerator),
        callbacks=[
            checkpoint,
            *stopping,
            *averaging,
            *freeze,
            *rate_log,
            *callbacks,
        ],
        logger=loggers or False,
        log_every_n_steps=max(1, min(50, steps_per_epoch)),
        num_sanity_val_steps=0,  # validation is this toolkit's own tested step; the first epoch's end runs it anyway
        enable_progress_bar=not cfg.quiet,
        enable_model_summary=not cfg.quiet,
        default_root_dir=checkpoint.dirpath,
        plugins=[BackgroundCheckpointIO()],
    )


def evaluate_test_split(
    cfg: TrainConfig, trainer: pl.Trainer, best: str, data: LabelledData, test: pd.DataFrame, run_dir: str
) -> Evaluation:
    """The evaluation report of the best checkpoint on the test split, beside the checkpoints.

    It goes through the same prediction path as infer.py and evaluate.py, so the numbers printed at
    the end of training are the ones a user gets later; metrics and plots also go to TensorBoard.
    """
    from .conformal import REPORT_LEVEL
    from .evaluation import evaluate
    from .predict import Predictor, load_checkpoint

    model = load_checkpoint(best)
    device = "cpu" if trainer.strategy.root_device.type == "cpu" else str(trainer.strategy.root_device)
    summary = {"data": data.source, "split": f"test ({len(test)} images, seed {cfg.seed})", "checkpoint": best}
    level = REPORT_LEVEL if model.conformal else None  # the coverage its validation calibration reaches on test
    result = evaluate(Predictor(model, device=device, tta=cfg.tta, interval=level), test, Path(run_dir) / "test_report",
                      title=f"Test split of {best}", summary=summary, batch_size=cfg.batch_size,
                      workers=_threads(cfg), seed=cfg.seed, progress=not cfg.quiet)
    for logger in trainer.loggers:
        if isinstance(logger, EpochCSVLogger):
            continue  # its table is one row per epoch; the test metrics are in test_report/metrics.json
        logger.log_metrics(flat_metrics(result.metrics), step=trainer.global_step)
        if isinstance(logger, TensorBoardLogger):
            for name, png in result.plots.items():
                image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
                logger.experiment.add_image(f"test/{Path(name).stem}", image, trainer.global_step, dataformats="HWC")
            logger.experiment.flush()
        logger.save()
    return result


LR_FIND_STEPS = 100


def find_learning_rate(cfg: TrainConfig, trainer: pl.Trainer, model: PerspectiveModel,
                       datamodule: PerspectiveDataModule, steps_per_epoch: int) -> float | None:
    """``--lr-find``: Lightning's learning-rate range test; returns its suggestion (None when it has none).

    The test raises the learning rate batch by batch over ``LR_FIND_STEPS`` training batches, as
    many epochs as that takes on a small set, and puts the model back as it was; the suggestion is
    the steepest fall of the loss. It runs in a Trainer of its own, on one device, so that the run's
    checkpoints, logs and weight average never see it. The plot goes to ``lr_find.png`` in the run
    folder; the backbone keeps its ``--backbone-lr-scale`` share of the rate.
    """
    from pytorch_lightning.tuner import Tuner

    if trainer.world_size > 1:  # every process would find its own rate
        raise UserError("--lr-find runs on one device; find the rate there, then train on several with -l")
    run_dir = Path(trainer.checkpoint_callback.dirpath)
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator, _ = resolve_devices(cfg.gpus, cfg.accelerator, cfg.devices)
    finder_trainer = pl.Trainer(
        accelerator=accelerator, devices=1, precision=lightning_precision(cfg.precision) or default_precision(accelerator),
        max_epochs=-(-LR_FIND_STEPS // steps_per_epoch) + 1, logger=False, enable_checkpointing=False,
        enable_progress_bar=not cfg.quiet, enable_model_summary=False, default_root_dir=run_dir,
    )
    finder = Tuner(finder_trainer).lr_find(model, datamodule=datamodule, num_training=LR_FIND_STEPS,
                                           update_attr=False)
    suggestion = finder.suggestion() if finder is not None else None
    if finder is not None:
        import matplotlib.pyplot as plt

        figure = finder.plot(suggest=suggestion is not None, show=False)
        figure.savefig(run_dir / "lr_find.png", dpi=100)
        plt.close(figure)
    if suggestion is None:
        log.warning("--lr-find: no suggestion; training with -l %g", model.hparams.learning_rate)
        return None
    model.hparams.learning_rate = float(suggestion)
    log.info("--lr-find: training with a learning rate of %.3g (plot: %s)", suggestion, run_dir / "lr_find.png")
    return float(suggestion)


def write_run_config(cfg: TrainConfig, run_dir: Path) -> Path:
    """``<run>/config.yaml``: the resolved settings; ``perspective train --config`` it to repeat the run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / RUN_CONFIG
    atomic_write(path, config_yaml(run_config(cfg), f"Settings of the run in {run_dir.name}.\n"
                                   f"perspective train --config {RUN_CONFIG} repeats it (into a new folder); "
                                   "flags on the command line win over these."))
    return path


def train(cfg: TrainConfig, callbacks: Sequence[pl.Callback] = (),
          prepared: tuple[LabelledData, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]] | None = None) -> TrainResult:
    """Fit a model as ``cfg`` says, test its best checkpoint, and say where it is.

    ``callbacks`` are added to the Trainer's own (a hyperparameter search passes its pruning callback).
    ``prepared``: ``cfg``'s data, already read, and the (train, validation, test) rows the caller chose
    instead of the run's own split (the label audit's folds: the data is read once for all of them).
    """
    cfg = replace(cfg, resume=resolve_resume(cfg))
    if cfg.lr_find and cfg.resume:
        raise UserError("--lr-find starts a run; a resumed run keeps the learning rate it started with")
    pre = default_preprocessing(cfg.backbone, cfg.image_size, cfg.resize_mode)  # checks backbone and size before the data
    flip_pairs = parse_flip_pairs(cfg.flip_pairs)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    data, splits = prepared if prepared is not None else _load_splits(cfg)
    if cfg.balance != "none" and data.task != "classification":
        raise UserError("--balance is for classification; regression targets have no classes")
    if cfg.allow_missing_targets and data.task != "regression":
        raise UserError("--allow-missing-targets is for regression targets; every image of a classification "
                        "set needs its label")
    perm = flip_permutation(data.names, flip_pairs)
    model = build_model(cfg, data, splits[0], pre, perm)
    datamodule = PerspectiveDataModule(
        splits, data.task, data.names,
        train_transform=train_transform(pre, cfg.augment),
        eval_transform=eval_transform(pre),
        flip_permutation=perm if cfg.augment != "none" else None,
        balance_classes=cfg.balance == "sampler",
        batch_size=cfg.batch_size,
        workers=_loader_workers(cfg),
        draft_size=pre.decode_size,
        train_draft_size=None if cfg.augment == "strong" else pre.decode_size,  # a random crop needs every pixel
    )
    steps_per_epoch = max(1, len(splits[0]) // cfg.batch_size)
    trainer = build_trainer(cfg, model, steps_per_epoch, callbacks)
    if trainer.is_global_zero and not cfg.resume:  # a resumed run keeps the config it started with
        write_run_config(cfg, Path(trainer.checkpoint_callback.dirpath))
    found_rate = None
    if cfg.lr_find:
        found_rate = find_learning_rate(cfg, trainer, model, datamodule, steps_per_epoch)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.resume, weights_only=True)
    except SystemExit:
        if trainer.interrupted:  # Lightning ends its graceful Ctrl-C shutdown with sys.exit(1)
            log.warning("training interrupted; resume with --resume %s",
                        Path(trainer.checkpoint_callback.dirpath) / "last.ckpt")
            raise KeyboardInterrupt from None
        raise
    best = trainer.checkpoint_callback.best_model_path or trainer.checkpoint_callback.last_model_path
    run_dir = str(Path(best).parent) if best else str(trainer.checkpoint_callback.dirpath)
    metrics: dict[str, float] = {}
    table = None
    if trainer.interrupted:
        log.warning("training interrupted; the checkpoints so far are in %s", run_dir)
    elif not trainer.is_global_zero or not cfg.test:
        pass  # rank 0 evaluates and reports, unless the caller asked for no test
    elif len(splits[2]) and best:
        result = evaluate_test_split(cfg, trainer, best, data, splits[2], run_dir)
        metrics, table = flat_metrics(result.metrics), result.table
    else:
        log.info("no test split (--test-fraction 0 and no --test-data): skipping the test")
    return TrainResult(best, run_dir, metrics, table, trainer.is_global_zero, found_rate)
