"""The LightningModule: a registry backbone with a regression or classification head.

Everything needed to rebuild the model for prediction goes into the checkpoint through
``save_hyperparameters()``: backbone name, task, target or class names, preprocessing (input size,
resize, mean, std) and the output activation. ``perspective.predict`` needs nothing but the file.

Regression outputs one value per target (sigmoid-squashed when every training target lies in
[0, 1]) and is trained with one of ``LOSSES``; classification outputs logits trained with
cross-entropy. Validation logs MSE, MAE, RMSE and R² per target and their mean (regression) or
accuracy and macro F1 (classification), all from torchmetrics; the test split of a run is scored by
``perspective.evaluation`` through the prediction path users get (the same metrics, with baselines).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score

from .backbones import create_backbone, default_preprocessing, get_spec
from .errors import UserError

OUTPUT_ACTIVATIONS = ("sigmoid", "none")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "plateau", "none")


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, alpha: float = 1 / 30) -> torch.Tensor:
    """Weighted mean of squared errors, weight ``alpha + target``: errors on high scores cost more.

    ``sum(w * (pred - target)**2) / sum(w)``, the score of the original regression challenge. Needs
    non-negative targets.
    """
    weight = alpha + target
    return (weight * (pred - target) ** 2).sum() / weight.sum()


LOSSES = ("mse", "mae", "huber", "weighted_mse")


def regression_loss(name: str, huber_delta: float = 0.1, alpha: float = 1 / 30):
    """The loss function ``(pred, target) -> scalar`` called ``name`` (picklable, for ddp_spawn).

    The Huber delta defaults to 0.1, not torch's 1.0: on scores in [0, 1] a delta of 1 would make
    Huber plain halved MSE.
    """
    if name == "mse":
        return F.mse_loss
    if name == "mae":
        return F.l1_loss
    if name == "huber":
        return partial(F.huber_loss, delta=huber_delta)
    if name == "weighted_mse":
        return partial(weighted_mse, alpha=alpha)
    raise UserError(f"--loss must be one of {', '.join(LOSSES)} for regression, not {name!r}")


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: linear warm-up to 1, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class PerspectiveModel(pl.LightningModule):
    """Backbone + head for regression or classification.

    Args:
        backbone: registry name (``perspective.backbones.BACKBONES``).
        task: ``"regression"`` or ``"classification"``.
        target_names: regression target names, in output order.
        class_names: classification class names, in output order.
        weights: ``"imagenet"``, ``"none"`` or a state_dict path for the backbone.
        preprocessing: ``Preprocessing.to_dict()``; default: the weights' own.
        output_activation: ``"sigmoid"`` or ``"none"`` on regression outputs.
        loss: regression loss name (``LOSSES``); classification always uses cross-entropy.
        huber_delta, weighted_mse_alpha: parameters of the huber and weighted_mse losses.
        label_smoothing: cross-entropy label smoothing.
        dropout: dropout probability before the head.
        optimizer: ``"adamw"``, ``"adam"`` or ``"sgd"`` (momentum 0.9).
        learning_rate, weight_decay: optimizer settings.
        scheduler: ``"cosine"`` (linear warm-up, cosine decay per step), ``"plateau"`` or ``"none"``.
        warmup_epochs: warm-up length of the cosine schedule.
        train_stats: statistics of the training targets (for baselines in reports).
        data_config: how the training data was read and split (``label_column``, ``seed``,
            ``val_fraction``, ``test_fraction``, ``source``), so evaluate.py can rebuild the same split.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        task: str = "regression",
        target_names: Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
        weights: str = "imagenet",
        preprocessing: dict[str, Any] | None = None,
        output_activation: str = "sigmoid",
        loss: str = "mse",
        huber_delta: float = 0.1,
        weighted_mse_alpha: float = 1 / 30,
        label_smoothing: float = 0.0,
        dropout: float = 0.0,
        optimizer: str = "adamw",
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        scheduler: str = "cosine",
        warmup_epochs: float = 1.0,
        train_stats: dict[str, Any] | None = None,
        data_config: dict[str, Any] | None = None,
    ):
        super().__init__()
        if preprocessing is None:
            preprocessing = default_preprocessing(backbone).to_dict()
        target_names = list(target_names) if target_names is not None else None
        class_names = list(class_names) if class_names is not None else None
        for value, allowed, flag in (
            (output_activation, OUTPUT_ACTIVATIONS, "--output-activation"),
            (optimizer, OPTIMIZERS, "--optimizer"),
            (scheduler, SCHEDULERS, "--scheduler"),
        ):
            if value not in allowed:
                raise UserError(f"{flag} must be one of {', '.join(allowed)}, not {value!r}")
        self.save_hyperparameters()

        names = target_names if task == "regression" else class_names
        if not names:
            raise UserError(f"a {task} model needs {'target' if task == 'regression' else 'class'} names")
        self.backbone = create_backbone(backbone, weights, preprocessing["image_size"])
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(get_spec(backbone).num_features, len(names)))
        # channels_last: measured here, +9% (128 px) to +32% (224 px) training throughput for resnet18 in bf16
        self.backbone.to(memory_format=torch.channels_last)

        if task == "regression":
            self.loss_fn = regression_loss(loss, huber_delta, weighted_mse_alpha)
            n = len(names)
            metrics = MetricCollection(
                {
                    "mse": MeanSquaredError(num_outputs=n),
                    "mae": MeanAbsoluteError(num_outputs=n),
                    "r2": R2Score(multioutput="raw_values"),
                }
            )
        else:
            self.loss_fn = partial(F.cross_entropy, label_smoothing=label_smoothing)
            k = len(names)
            metrics = MetricCollection(
                {
                    "acc": MulticlassAccuracy(num_classes=k, average="micro"),
                    "f1": MulticlassF1Score(num_classes=k, average="macro"),
                }
            )
        self.val_metrics = metrics.clone(prefix="val_")  # the test split is scored by perspective.evaluation

    @property
    def names(self) -> list[str]:
        """Target names (regression) or class names (classification), in output order."""
        hp = self.hparams
        return list(hp.target_names if hp.task == "regression" else hp.class_names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Regression: activated scores; classification: logits."""
        features = self.backbone(x.contiguous(memory_format=torch.channels_last))
        # The head runs in fp32 even under bf16 autocast: it is tiny, and bf16's 8-bit mantissa
        # would quantise every score to steps of about 0.004.
        with torch.autocast(features.device.type, enabled=False):
            out = self.head(features.float())
            if self.hparams.task == "regression" and self.hparams.output_activation == "sigmoid":
                out = torch.sigmoid(out)
        return out

    def predict_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """What a user reads: scores (regression) or class probabilities (classification)."""
        out = self(x)
        return out if self.hparams.task == "regression" else out.softmax(dim=-1)

    def _step(self, batch, stage: str) -> torch.Tensor | None:
        if batch is None:  # every image of this batch was unreadable (see data.skip_unreadable)
            return None
        x, y = batch
        out = self(x).float()
        loss = self.loss_fn(out, y)
        self.log(f"{stage}_loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True,
                 batch_size=len(y), sync_dist=stage != "train")
        if stage == "val":
            self.val_metrics.update(out if self.hparams.task == "regression" else out.argmax(-1), y)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def _log_metrics(self, metrics: MetricCollection, stage: str) -> None:
        values = {k.removeprefix(f"{stage}_"): v for k, v in metrics.compute().items()}
        metrics.reset()
        if self.hparams.task == "regression":
            values["rmse"] = values["mse"].sqrt()
            for name, per_target in values.items():
                per_target = per_target.reshape(-1)
                self.log(f"{stage}_{name}", per_target.mean(), prog_bar=name == "r2")
                if len(per_target) > 1:
                    for target, value in zip(self.names, per_target):
                        self.log(f"{stage}_{name}/{target}", value)
        else:
            for name, value in values.items():
                self.log(f"{stage}_{name}", value, prog_bar=name == "acc")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics, "val")

    @property
    def monitor(self) -> tuple[str, str]:
        """The metric that picks the best checkpoint and stops early, and its mode."""
        return ("val_loss", "min") if self.hparams.task == "regression" else ("val_acc", "max")

    def configure_optimizers(self):
        hp = self.hparams
        params = self.parameters()
        if hp.optimizer == "adamw":
            optimizer = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
        elif hp.optimizer == "adam":
            optimizer = torch.optim.Adam(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
        else:
            optimizer = torch.optim.SGD(params, lr=hp.learning_rate, momentum=0.9, weight_decay=hp.weight_decay)
        if hp.scheduler == "none":
            return optimizer
        if hp.scheduler == "plateau":
            monitor, mode = self.monitor
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5, patience=2)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": monitor}}
        total = max(1, int(self.trainer.estimated_stepping_batches))
        per_epoch = total / max(1, self.trainer.max_epochs or 1)
        warmup = min(total // 2, round(hp.warmup_epochs * per_epoch))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, warmup, total)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
