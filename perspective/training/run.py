"""One fit: a model trained on rows already read and split, its best checkpoint tested.

``fit(cfg, data, splits)`` builds the model and the Lightning Trainer (checkpoints, early stopping,
learning-rate monitor, TensorBoard), fits, then tests the best checkpoint through the prediction path.
``training.entry.train`` reads and splits a config's data and calls it; so do the teacher and the
students of ``training.semi``, and the FixMatch phase fits its own model through ``fit_model``.

Checkpoints go to ``<checkpoints_location>/<backbone>/<run>/`` (best 3 by the monitored metric and
``last.ckpt``), TensorBoard logs to ``<logs_location>/<backbone>/<run>/``; ``run`` is a timestamp
unless given. Under DDP every process builds the same split from the same seed, and Lightning
takes rank 0's checkpoint folder.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import TensorBoardLogger

from ..config import (
    PRETRAIN_KEY,
    PRETRAINED_BACKBONE_LR_SCALE,
    PRETRAINED_FREEZE_EPOCHS,
    RUN_CONFIG,
    SELF_SUPERVISED_BACKBONE_LR_SCALE,
    SELF_SUPERVISED_FREEZE_EPOCHS,
    TrainConfig,
    config_yaml,
    lightning_precision,
    parse_loggers,
    run_config,
)
from ..data import LabelledData
from ..data.datasets import PerspectiveDataModule
from ..errors import UserError
from ..evaluation.labelled import evaluate_frame
from ..evaluation.metrics import flat_metrics
from ..evaluation.report import Evaluation
from ..hardware import default_precision, resolve_devices
from ..interrupts import keeps_ctrl_c
from ..models.backbones import Preprocessing, default_preprocessing
from ..models.checkpoint import load_checkpoint, store_calibration, weights_info
from ..models.conformal import REPORT_LEVEL
from ..models.files import read_checkpoint
from ..models.module import PerspectiveModel
from ..models.transforms import eval_transform, flip_permutation, parse_flip_pairs, train_transform
from ..prediction.converted import predicting_model
from ..prediction.novelty import novelty_summary
from ..prediction.predictor import Predictor
from ..progress import quiet_lightning
from ..results import atomic_write
from .callbacks import (
    BackboneFreeze,
    ScheduleAwareEarlyStopping,
    WarmupEMA,
    default_min_epochs,
    default_patience,
)
from .checkpointing import BackgroundCheckpointIO, RunCheckpoint, expect_existing_checkpoints
from .data import decoding_threads, loader_workers
from .epoch_log import EpochLog, draws_progress_bar, where_it_trains
from .loggers import EpochCSVLogger, create_loggers

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    best_checkpoint: str
    run_dir: str
    test_metrics: dict[str, float]
    test_table: pd.DataFrame | None
    is_global_zero: bool = True  # False in the other DDP processes, which should print nothing
    found_learning_rate: float | None = None  # --lr-find's suggestion, which the run trained with


def fine_tuning(cfg: TrainConfig, info: dict[str, Any] | None = None, head_kept: bool = False) -> tuple[int, float]:
    """``(freeze_epochs, backbone_lr_scale)``: the flags, or the defaults that suit the starting weights.

    Pretrained weights (``imagenet``, a state_dict or a toolkit checkpoint): one epoch for the
    random head alone, then the backbone at a tenth of the head's learning rate, so the head's
    first, large gradients do not wash out what the backbone knows. A toolkit checkpoint of the same
    outputs (``head_kept``, see ``kept_head``) brings its trained head: nothing to freeze for.
    Random weights have nothing to protect: no freezing, one learning rate. Self-supervised weights
    from ``perspective pretrain`` (``info``, the weights file's ``weights_info``) are a start, not
    knowledge to protect: their own defaults (``config.SELF_SUPERVISED_*``).
    """
    if head_kept:
        defaults = (0, PRETRAINED_BACKBONE_LR_SCALE)
    elif info and PRETRAIN_KEY in info:
        defaults = (SELF_SUPERVISED_FREEZE_EPOCHS, SELF_SUPERVISED_BACKBONE_LR_SCALE)
    elif cfg.weights != "none":
        defaults = (PRETRAINED_FREEZE_EPOCHS, PRETRAINED_BACKBONE_LR_SCALE)
    else:
        defaults = (0, 1.0)
    freeze = cfg.freeze_epochs if cfg.freeze_epochs is not None else defaults[0]
    scale = cfg.backbone_lr_scale if cfg.backbone_lr_scale is not None else defaults[1]
    return freeze, scale


def kept_head(weights: str, info: dict[str, Any], task: str, names: Sequence[str],
              activation: str) -> dict[str, torch.Tensor] | None:
    """The trained head of a ``--weights`` checkpoint of train that predicts the same outputs as this
    run (task, target or class names in order, output activation), or None: the run then starts a new head.

    Continuing a model on more photos of the same scores (the label audit's fold runs from the shipped
    model, a model updated with newly labelled photos) should not throw away what its head learnt: a new
    head on a frozen backbone first has to find again what the old one knew.
    """
    names_there = info.get("target_names") or info.get("class_names") or []
    if info.get("task") != task or list(names_there) != list(names) or info.get("output_activation") != activation:
        return None
    state = read_checkpoint(weights, "--weights").get("state_dict", {})
    head = {k.removeprefix("head."): v.float() for k, v in state.items() if k.startswith("head.")}
    return head or None


def starting_preprocessing(cfg: TrainConfig, info: dict[str, Any]) -> Preprocessing:
    """The run's preprocessing: ``--image-size``, else the size the ``--weights`` file was trained at, else the
    backbone's own. A weights file made for another backbone is a one-line error."""
    made_for = info.get("backbone")
    if made_for and made_for != cfg.backbone:
        raise UserError(f"--weights {cfg.weights} holds a {made_for} backbone, not {cfg.backbone}: give -b {made_for}")
    size = cfg.image_size or (info.get("preprocessing") or {}).get("image_size")
    return default_preprocessing(cfg.backbone, size, cfg.resize_mode)


@dataclass(frozen=True)
class Start:
    """What a fit starts from that its flags settle before any data is read."""

    preprocessing: Preprocessing
    flip_pairs: list[tuple[str, str]] | None  # --flip-pairs; None: the default pairs


def run_start(cfg: TrainConfig) -> Start:
    """``cfg``'s preprocessing and mirror pairs; a weights file of another backbone, malformed
    ``--flip-pairs`` or ``--lr-find`` on a resumed run is a one-line error."""
    if cfg.lr_find and cfg.resume:
        raise UserError("--lr-find starts a run; a resumed run keeps the learning rate it started with")
    return Start(starting_preprocessing(cfg, weights_info(cfg.weights)), parse_flip_pairs(cfg.flip_pairs))


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
                flip: list[int] | None = None, model_class: type[PerspectiveModel] = PerspectiveModel
                ) -> PerspectiveModel:
    """The model ``cfg`` asks for; ``flip`` is the mirror's target or class permutation (for test-time augmentation).

    The flags that depend on the data are checked here, against ``data`` and the ``train`` rows.
    ``model_class``: a subclass with another training step (``training.semi.fixmatch``).
    """
    regression = data.task == "regression"
    if cfg.allow_missing_targets and not regression:
        raise UserError("--allow-missing-targets is for regression targets; every image of a classification "
                        "set needs its label")
    stats = _train_stats(data, train)
    if regression and cfg.loss == "weighted_mse" and min(stats["min"]) < 0:
        raise UserError("--loss weighted_mse needs non-negative targets (its weight is alpha + target)")
    info = weights_info(cfg.weights)
    activation = _output_activation(cfg, stats) if regression else "none"
    head = kept_head(cfg.weights, info, data.task, data.names, activation)
    freeze_epochs, backbone_lr_scale = fine_tuning(cfg, info, head_kept=head is not None)
    model = model_class(
        backbone=cfg.backbone,
        task=data.task,
        target_names=data.names if regression else None,
        class_names=None if regression else data.names,
        weights=cfg.weights,
        preprocessing=pre.to_dict(),
        output_activation=activation,
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
        mix=cfg.mix,
        mix_alpha=cfg.mix_alpha,
        flip_permutation=flip,
        train_stats=stats,
        data_config={"source": data.source, "label_column": cfg.label_column, "seed": cfg.seed,
                     "val_fraction": 0.0 if cfg.val_data else cfg.val_fraction,
                     "test_fraction": 0.0 if cfg.test_data else cfg.test_fraction,
                     "val_data": cfg.val_data, "test_data": cfg.test_data},
    )
    if head is not None:
        model.head.load_state_dict(head)
        log.info("--weights %s predicts the same %s: its head is kept", cfg.weights, ", ".join(data.names))
    return model


def seeded_model(cfg: TrainConfig, data: LabelledData, train: pd.DataFrame, start: Start,
                 model_class: type[PerspectiveModel] = PerspectiveModel) -> tuple[PerspectiveModel, list[int] | None]:
    """The model a fit trains, initialised from ``--seed`` (``build_model``), and the mirror's permutation of
    ``data``'s names, which the training data flips by."""
    perm = flip_permutation(data.names, start.flip_pairs)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    return build_model(cfg, data, train, start.preprocessing, perm, model_class), perm


def build_datamodule(cfg: TrainConfig, data: LabelledData, splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
                     pre: Preprocessing, perm: list[int] | None, **unlabelled: Any) -> PerspectiveDataModule:
    """The loaders of ``splits`` as ``cfg`` augments, balances and batches them; ``unlabelled``: the FixMatch
    phase's photos, views and length (see ``PerspectiveDataModule``)."""
    return PerspectiveDataModule(
        splits, data.task, data.names,
        train_transform=train_transform(pre, cfg.augment),
        eval_transform=eval_transform(pre),
        flip_permutation=perm if cfg.augment != "none" else None,
        balance_classes=cfg.balance == "sampler",
        batch_size=cfg.batch_size,
        workers=loader_workers(cfg),
        draft_size=pre.decode_size,
        train_draft_size=None if cfg.augment == "strong" else pre.decode_size,  # a random crop needs every pixel
        **unlabelled,
    )


def _run_name(cfg: TrainConfig) -> str:
    if cfg.resume:
        return Path(cfg.resume).parent.name  # continue in the folder of the resumed run
    return cfg.run_name or time.strftime("%Y%m%d-%H%M%S")


def build_trainer(
    cfg: TrainConfig, model: PerspectiveModel, steps_per_epoch: int, callbacks: Sequence[pl.Callback] = (),
    validate: bool = True,
) -> pl.Trainer:
    """The run's Trainer. ``validate=False``: no validation pass, and each epoch's checkpoint is the best
    (nothing scores it); early stopping, which needs a score, is off."""
    accelerator, devices = resolve_devices(cfg.gpus, cfg.accelerator, cfg.devices)
    run = _run_name(cfg)
    if cfg.resume:  # the run's own folder holds checkpoints already, as it should
        expect_existing_checkpoints()
    monitor, mode = model.monitor
    min_epochs = cfg.min_epochs if cfg.min_epochs is not None else default_min_epochs(cfg.max_epochs, cfg.scheduler)
    checkpoint = RunCheckpoint(
        start_epoch=min_epochs,
        dirpath=Path(cfg.checkpoints_location) / cfg.backbone / run,
        filename=f"epoch={{epoch:02d}}-{monitor}={{{monitor}:.4f}}" if validate else "epoch={epoch:02d}",
        auto_insert_metric_name=False,
        monitor=monitor if validate else None,
        mode=mode,
        save_top_k=3 if validate else 1,
        save_last=True,
    )
    patience = cfg.patience if cfg.patience is not None else default_patience(cfg.scheduler)
    patience = patience if validate else None
    stopping = [] if patience is None else [
        ScheduleAwareEarlyStopping(min_epochs, monitor=monitor, mode=mode, patience=patience)]
    averaging = [WarmupEMA(cfg.ema_decay)] if cfg.ema_decay > 0 else []
    freeze = [BackboneFreeze(model.hparams.freeze_epochs)] if model.hparams.freeze_epochs else []
    loggers = create_loggers(parse_loggers(cfg.logger), cfg.logs_location, cfg.backbone, run)
    rate_log = [LearningRateMonitor(logging_interval="epoch")] if loggers else []  # it refuses a run without loggers
    quiet_lightning()
    bar = draws_progress_bar(cfg.quiet)
    epoch_lines = [EpochLog(monitor)] if not cfg.quiet and not bar else []  # a log a file can show, without a terminal
    trainer = pl.Trainer(
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
            *epoch_lines,
            *callbacks,
        ],
        logger=loggers or False,
        log_every_n_steps=max(1, min(50, steps_per_epoch)),
        num_sanity_val_steps=0,  # validation is this toolkit's own tested step; the first epoch's end runs it anyway
        limit_val_batches=None if validate else 0,
        enable_progress_bar=bar,
        enable_model_summary=bar,  # a table for a terminal, not for a log
        default_root_dir=checkpoint.dirpath,
        plugins=[BackgroundCheckpointIO()],
    )
    if trainer.is_global_zero:
        log.info("training on %s", where_it_trains(trainer))
    return trainer


def evaluate_test_split(
    cfg: TrainConfig, trainer: pl.Trainer, best: str, data: LabelledData, test: pd.DataFrame, run_dir: str
) -> Evaluation:
    """The evaluation report of the best checkpoint on the test split, beside the checkpoints.

    It goes through the same prediction path as infer.py and evaluate.py, so the numbers printed at
    the end of training are the ones a user gets later; metrics and plots also go to TensorBoard.
    """
    model = load_checkpoint(best)
    device = "cpu" if trainer.strategy.root_device.type == "cpu" else str(trainer.strategy.root_device)
    summary = {"data": data.source, "split": f"test ({len(test)} images, seed {cfg.seed})", "checkpoint": best}
    level = REPORT_LEVEL if model.conformal else None  # the coverage its validation calibration reaches on test
    running = predicting_model(cfg.runtime, best, model, "cpu" if device == "cpu" else "cuda")
    result = evaluate_frame(Predictor(running, device=device, tta=cfg.tta, interval=level), test,
                            Path(run_dir) / "test_report", title=f"Test split of {best}", summary=summary,
                            batch_size=cfg.batch_size, workers=decoding_threads(cfg), seed=cfg.seed,
                            progress=not cfg.quiet)
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
        enable_progress_bar=draws_progress_bar(cfg.quiet), enable_model_summary=False, default_root_dir=run_dir,
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


class RunConfigFile(pl.Callback):
    """Writes the run's config.yaml when fitting starts: after Lightning has looked at the checkpoint
    folder (a folder it finds already holding a file makes it warn)."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            write_run_config(self.cfg, Path(trainer.checkpoint_callback.dirpath))


def write_run_config(cfg: TrainConfig, run_dir: Path) -> Path:
    """``<run>/config.yaml``: the resolved settings; ``perspective train --config`` it to repeat the run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / RUN_CONFIG
    atomic_write(path, config_yaml(run_config(cfg), f"Settings of the run in {run_dir.name}.\n"
                                   f"perspective train --config {RUN_CONFIG} repeats it (into a new folder); "
                                   "flags on the command line win over these."))
    return path




def fit(cfg: TrainConfig, data: LabelledData, splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
        callbacks: Sequence[pl.Callback] = (), start: Start | None = None) -> TrainResult:
    """Fit a model as ``cfg`` says on ``splits`` (train, validation and test rows of ``data``), test its best
    checkpoint, and say where it is.

    ``callbacks`` are added to the Trainer's own (a hyperparameter search passes its pruning callback).
    ``start``: ``run_start(cfg)``, given when the caller settled it before reading the data.
    """
    start = start or run_start(cfg)
    model, perm = seeded_model(cfg, data, splits[0], start)
    datamodule = build_datamodule(cfg, data, splits, start.preprocessing, perm)
    config_file = [] if cfg.resume else [RunConfigFile(cfg)]  # a resumed run keeps the config it started with
    return fit_model(cfg, model, datamodule, data, splits[2], max(1, len(splits[0]) // cfg.batch_size),
                     [*callbacks, *config_file])


@keeps_ctrl_c
def fit_model(cfg: TrainConfig, model: PerspectiveModel, datamodule: PerspectiveDataModule, data: LabelledData,
              test: pd.DataFrame, steps_per_epoch: int, callbacks: Sequence[pl.Callback] = (),
              validate: bool = True) -> TrainResult:
    """Fit ``model`` on ``datamodule`` in the run's Trainer (``build_trainer``; ``--lr-find`` first), then test
    its best checkpoint on the ``test`` rows of ``data``. A Ctrl-C leaves the checkpoints so far and is
    raised again as ``KeyboardInterrupt``."""
    trainer = build_trainer(cfg, model, steps_per_epoch, callbacks, validate=validate)
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
    # the run's own model gets a summary; its internal runs (search trials, audit folds, a FixMatch teacher:
    # ``test`` false) need none
    if validate and best and trainer.is_global_zero and cfg.test and not trainer.interrupted:
        store_novelty_summary(cfg, trainer, best, datamodule.splits)
    metrics, table = _tested(cfg, trainer, best, data, test, run_dir)
    return TrainResult(best, run_dir, metrics, table, trainer.is_global_zero, found_rate)


def store_novelty_summary(cfg: TrainConfig, trainer: pl.Trainer, best: str,
                          splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    """Write the best checkpoint's novelty summary into it (``models.novelty``): its features of a sample of
    the training rows, calibrated on the validation rows, which it did not learn from."""
    device = "cpu" if trainer.strategy.root_device.type == "cpu" else str(trainer.strategy.root_device)
    predictor = Predictor(load_checkpoint(best), device=device)
    summary = novelty_summary(predictor, splits[0]["path"].tolist(), splits[1]["path"].tolist(), cfg.batch_size,
                              decoding_threads(cfg), cfg.seed)
    if summary is not None:
        store_calibration(best, novelty=summary)


def _tested(cfg: TrainConfig, trainer: pl.Trainer, best: str, data: LabelledData, test: pd.DataFrame,
            run_dir: str) -> tuple[dict[str, float], pd.DataFrame | None]:
    """The test metrics and table of ``best``, where this process reports them (rank 0 of a finished run that
    has test rows and was not asked for no test); empty otherwise."""
    if trainer.interrupted:
        log.warning("training interrupted; the checkpoints so far are in %s", run_dir)
    elif not trainer.is_global_zero or not cfg.test:
        pass  # rank 0 evaluates and reports, unless the caller asked for no test
    elif len(test) and best:
        result = evaluate_test_split(cfg, trainer, best, data, test, run_dir)
        return flat_metrics(result.metrics), result.table
    else:
        log.info("no test split (--test-fraction 0 and no --test-data): skipping the test")
    return {}, None
