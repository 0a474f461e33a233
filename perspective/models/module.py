"""The LightningModule: a registry backbone with a regression or classification head.

Everything needed to rebuild the model for prediction goes into the checkpoint through
``save_hyperparameters()``: backbone name, task, target or class names, preprocessing (input size,
resize, mean, std) and the output activation. ``models.checkpoint.load_checkpoint`` needs nothing but the file.

Regression outputs one value per target (sigmoid-squashed when every training target lies in
[0, 1]) and is trained with one of ``LOSSES``; classification outputs logits trained with
cross-entropy. Validation logs MSE, MAE, RMSE and R² per target and their mean (regression) or
accuracy and macro F1 (classification), all from torchmetrics; the test split of a run is scored by
``evaluation.labelled`` through the prediction path users get (the same metrics, with baselines).
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
from torchvision.transforms import v2

from ..config import BALANCES, LOSSES, MIXES, OPTIMIZERS, OUTPUT_ACTIVATIONS, SCHEDULERS  # noqa: F401 - re-exported
from ..config import TrainConfig as _D  # every default is TrainConfig's
from ..errors import UserError
from .backbones import create_backbone, default_preprocessing, get_spec
from .conformal import CHECKPOINT_KEY as CONFORMAL_KEY
from .conformal import calibrate
from .novelty import CHECKPOINT_KEY as NOVELTY_KEY
from .novelty import with_novelty

MIX_ALPHA = {"mixup": 1.0, "cutmix": 1.0, "cmixup": 2.0}  # Beta(alpha, alpha) of the mixing share; C-Mixup's paper uses 2
CMIXUP_BANDWIDTH = 0.2  # of the score distance: rows further apart than about 0.4 are rarely mixed


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, alpha: float = _D.weighted_mse_alpha) -> torch.Tensor:
    """Weighted mean of squared errors, weight ``alpha + target``: errors on high scores cost more.

    ``sum(w * (pred - target)**2) / sum(w)``, the score of the original regression challenge. Needs
    non-negative targets.
    """
    weight = alpha + target
    return (weight * (pred - target) ** 2).sum() / weight.sum()


def _labelled(loss, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``loss`` over the labelled cells only: a NaN target is a blank cell (``--allow-missing-targets``).

    Every labelled cell weighs the same, whichever row it is in; a batch without blanks gives
    exactly the plain loss.
    """
    labelled = ~torch.isnan(target)
    if labelled.all():
        return loss(pred, target)
    return loss(pred[labelled], target[labelled])


def regression_loss(name: str, huber_delta: float = _D.huber_delta, alpha: float = _D.weighted_mse_alpha):
    """The loss function ``(pred, target) -> scalar`` called ``name`` (picklable, for ddp_spawn).

    Blank targets (NaN) are left out. The Huber delta defaults to 0.1, not torch's 1.0: on scores
    in [0, 1] a delta of 1 would make Huber plain halved MSE.
    """
    if name == "mse":
        loss = F.mse_loss
    elif name == "mae":
        loss = F.l1_loss
    elif name == "huber":
        loss = partial(F.huber_loss, delta=huber_delta)
    elif name == "weighted_mse":
        loss = partial(weighted_mse, alpha=alpha)
    else:
        raise UserError(f"--loss must be one of {', '.join(LOSSES)} for regression, not {name!r}")
    return partial(_labelled, loss)


def balanced_class_weights(counts: Sequence[int]) -> list[float]:
    """Cross-entropy class weights ``n / (k * count)``: every class weighs as much in all as any other.

    scikit-learn's "balanced" weights; a class absent from the training split weighs as if it had
    one image.
    """
    n, k = sum(counts), len(counts)
    return [n / (k * max(1, c)) for c in counts]


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: linear warm-up to 1, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _gather_rows(module: pl.LightningModule, rows: torch.Tensor) -> torch.Tensor:
    """Every process's ``rows`` (their counts may differ: unreadable images are dropped), concatenated."""
    count = torch.tensor([len(rows)], device=module.device)
    counts = module.all_gather(count).flatten().tolist()
    padded = torch.zeros((max(counts), *rows.shape[1:]), dtype=rows.dtype, device=module.device)
    padded[: len(rows)] = rows
    gathered = module.all_gather(padded)
    return torch.cat([gathered[i, :n] for i, n in enumerate(counts)])


class PerspectiveModel(pl.LightningModule):
    """Backbone + head for regression or classification.

    Args:
        backbone: registry name (``models.backbones.BACKBONES``).
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
        backbone_lr_scale: the backbone's learning rate as a multiple of the head's (below 1 keeps
            pretrained features from being washed out by the random head's first gradients).
        freeze_epochs: epochs the backbone was frozen for at the start of training (a record: the
            freezing is done by ``callbacks.BackboneFreeze``).
        balance: ``"none"``, ``"sampler"`` (classes drawn evenly; done by the data module) or
            ``"loss"`` (cross-entropy weighted by ``balanced_class_weights`` of the training counts).
        flip_permutation: target or class permutation of a horizontal mirror (see
            ``transforms.flip_permutation``), used by test-time augmentation; None when a side has no
            counterpart.
        train_stats: statistics of the training targets (for baselines in reports).
        data_config: how the training data was read and split (``label_column``, ``seed``,
            ``val_fraction``, ``test_fraction``, ``source``), so evaluate.py can rebuild the same split.
    """

    def __init__(
        self,
        backbone: str = _D.backbone,
        task: str = "regression",
        target_names: Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
        weights: str = _D.weights,
        preprocessing: dict[str, Any] | None = None,
        output_activation: str = "sigmoid",
        loss: str = _D.loss,
        huber_delta: float = _D.huber_delta,
        weighted_mse_alpha: float = _D.weighted_mse_alpha,
        label_smoothing: float = _D.label_smoothing,
        dropout: float = _D.dropout,
        optimizer: str = _D.optimizer,
        learning_rate: float = _D.learning_rate,
        weight_decay: float = _D.weight_decay,
        scheduler: str = _D.scheduler,
        warmup_epochs: float = _D.warmup_epochs,
        backbone_lr_scale: float = 1.0,
        freeze_epochs: int = 0,
        balance: str = _D.balance,
        mix: str = _D.mix,
        mix_alpha: float | None = _D.mix_alpha,
        flip_permutation: Sequence[int] | None = None,
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
            (balance, BALANCES, "--balance"),
            (mix, MIXES, "--mix"),
        ):
            if value not in allowed:
                raise UserError(f"{flag} must be one of {', '.join(allowed)}, not {value!r}")
        self.save_hyperparameters()
        self.conformal: dict[str, Any] | None = None  # models.conformal's calibration, from validation
        self.novelty: dict[str, Any] | None = None  # models.novelty's summary (set_novelty), written at a run's end
        # The summary's bank as a buffer, so it follows the model to its device; saved under CHECKPOINT_KEY instead.
        self.register_buffer("novelty_bank", None, persistent=False)
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

        names = target_names if task == "regression" else class_names
        if not names:
            raise UserError(f"a {task} model needs {'target' if task == 'regression' else 'class'} names")
        self.backbone = create_backbone(backbone, weights, preprocessing["image_size"])
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(get_spec(backbone).num_features, len(names)))
        # channels_last: measured here, +9% (128 px) to +32% (224 px) training throughput for resnet18 in bf16
        self.backbone.to(memory_format=torch.channels_last)

        if mix == "cutmix" and task == "regression":
            raise UserError("--mix cutmix is for classes: a cut-in patch changes what a photo's scores measure")
        if mix == "cmixup" and task == "classification":
            raise UserError("--mix cmixup mixes photos with close scores; for classes use mixup or cutmix")
        if task == "regression":
            if balance != "none":
                raise UserError("--balance is for classification; regression targets have no classes")
            self.loss_fn = regression_loss(loss, huber_delta, weighted_mse_alpha)
            # One collection per target, so that a blank cell leaves out that target alone.
            self.val_metrics = nn.ModuleList(
                MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError(), "r2": R2Score()})
                for _ in names
            )
        else:
            counts = [int(((train_stats or {}).get("counts") or {}).get(c, 1)) for c in names]
            weights = balanced_class_weights(counts) if balance == "loss" else None
            # A buffer, so the weights follow the model to its device; not saved: they are in the hparams' stats.
            self.register_buffer("class_weights", torch.tensor(weights) if weights else None, persistent=False)
            self.loss_fn = partial(F.cross_entropy, label_smoothing=label_smoothing)
            k = len(names)
            self.val_metrics = MetricCollection(
                {
                    "acc": MulticlassAccuracy(num_classes=k, average="micro"),
                    "f1": MulticlassF1Score(num_classes=k, average="macro"),
                }
            )  # the test split is scored through the prediction path (evaluation.labelled)

    @property
    def names(self) -> list[str]:
        """Target names (regression) or class names (classification), in output order."""
        hp = self.hparams
        return list(hp.target_names if hp.task == "regression" else hp.class_names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Regression: activated scores; classification: logits."""
        return self._head(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's features of a normalised batch: what the head reads, and the novelty score."""
        return self.backbone(x.contiguous(memory_format=torch.channels_last))

    def _head(self, features: torch.Tensor) -> torch.Tensor:
        # The head runs in fp32 even under bf16 autocast: it is tiny, and bf16's 8-bit mantissa
        # would quantise every score to steps of about 0.004.
        with torch.autocast(features.device.type, enabled=False):
            out = self.head(features.float())
            if self.hparams.task == "regression" and self.hparams.output_activation == "sigmoid":
                out = torch.sigmoid(out)
        return out

    def predict_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """What a user reads: scores (regression) or class probabilities (classification), and when the model
        carries a novelty summary one more column, the photo's novelty score (``models.novelty``)."""
        features = self.features(x)
        out = self._head(features)
        if self.hparams.task == "classification":
            out = out.softmax(dim=-1)
        with torch.autocast(features.device.type, enabled=False):
            return with_novelty(out, features, self.novelty_bank)

    def set_novelty(self, summary: dict[str, Any] | None) -> None:
        """Carry a novelty summary (``models.novelty.summarise``), or none: every prediction then gets a score."""
        self.novelty = summary
        bank = None if summary is None else summary["bank"].to(self.device)
        self.novelty_bank = bank

    def _step(self, batch, stage: str) -> torch.Tensor | None:
        if batch is None:  # every image of this batch was unreadable (see data.skip_unreadable)
            return None
        x, y = batch
        if stage == "train" and self.hparams.mix != "none":
            x, y = self._mixed(x, y)
        out = self(x).float()
        if self.hparams.task == "regression":
            loss = self.loss_fn(out, y)
        else:
            loss = self.loss_fn(out, y, weight=self.class_weights)
        self.log(f"{stage}_loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True,
                 batch_size=len(y), sync_dist=stage != "train")
        if stage == "val":
            self._update_metrics(out, y)
            self._val_outputs.append((out.detach() if self.hparams.task == "regression" else out.detach().softmax(-1),
                                      y.detach()))
        return loss

    def _mixed(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch mixed as ``--mix`` says: each image blended with (or, cutmix, patched from)
        a partner image of the batch, the labels in the same proportion.

        Classes: torchvision's MixUp or CutMix, the labels becoming class probabilities. Scores:
        MixUp with a random partner, or C-Mixup (Yao et al., NeurIPS 2022) with a partner drawn with
        probability ``exp(-d² / 2σ²)`` of the distance ``d`` between the two rows' scores, so that
        mixed images keep labels a photo could have. A blank cell (NaN) stays blank once mixed.
        """
        hp = self.hparams
        alpha = hp.mix_alpha if hp.mix_alpha is not None else MIX_ALPHA[hp.mix]
        if hp.task == "classification":
            mix = v2.MixUp if hp.mix == "mixup" else v2.CutMix
            return mix(alpha=alpha, num_classes=len(self.names))(x, y)
        n = len(y)
        if hp.mix == "cmixup":
            filled = torch.nan_to_num(y.float(), nan=0.5)
            kernel = torch.exp(-torch.cdist(filled, filled) ** 2 / (2 * CMIXUP_BANDWIDTH**2))
            kernel.fill_diagonal_(0.0)
            kernel[kernel.sum(1) == 0] = 1.0  # a row with no close partner mixes with any
            partner = torch.multinomial(kernel, 1).squeeze(1)
        else:
            partner = torch.randperm(n, device=y.device)
        lam = torch.distributions.Beta(alpha, alpha).sample().to(x.device)
        return lam * x + (1 - lam) * x[partner], lam * y + (1 - lam) * y[partner]

    def _update_metrics(self, out: torch.Tensor, y: torch.Tensor) -> None:
        if self.hparams.task == "classification":
            self.val_metrics.update(out.argmax(-1), y)
            return
        for j, metrics in enumerate(self.val_metrics):
            labelled = ~torch.isnan(y[:, j])
            if labelled.any():
                metrics.update(out[labelled, j], y[labelled, j])

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def _log_metrics(self, stage: str) -> None:
        if self.hparams.task == "classification":
            for name, value in self.val_metrics.compute().items():
                self.log(f"{stage}_{name}", value, prog_bar=name == "acc")
            self.val_metrics.reset()
            return
        per_target = []
        nan = torch.tensor(float("nan"), device=self.device)
        # Labelled cells per target over every process, so that all of them make the same compute
        # calls (each one synchronises across processes under DDP).
        counts = torch.tensor([int(m["r2"].total) if m["mse"].update_called else 0 for m in self.val_metrics],
                              device=self.device)
        counts = self.all_gather(counts)
        counts = counts.sum(0) if counts.dim() > 1 else counts
        for metrics, labelled in zip(self.val_metrics, counts.tolist()):
            mse = metrics["mse"].compute() if labelled else nan
            per_target.append({"mse": mse, "mae": metrics["mae"].compute() if labelled else nan, "rmse": mse.sqrt(),
                               "r2": metrics["r2"].compute() if labelled >= 2 else nan})  # R² needs two labels
            metrics.reset()
        for name in ("mse", "mae", "rmse", "r2"):
            values = torch.stack([t[name] for t in per_target])
            self.log(f"{stage}_{name}", values.nanmean(), prog_bar=name == "r2")  # the targets that had labels
            if len(values) > 1:
                for target, value in zip(self.names, values):
                    self.log(f"{stage}_{name}/{target}", value)

    def on_validation_epoch_start(self) -> None:
        self._val_outputs = []

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")
        self._calibrate_on_validation()

    def _calibrate_on_validation(self) -> None:
        """The conformal calibration of these weights on this validation pass (``models.conformal``).

        Every checkpoint saved after this pass carries it, so the best checkpoint's intervals come
        from its own validation errors, at no extra cost. Under DDP the processes' outputs are gathered.
        """
        outputs, self._val_outputs = self._val_outputs, []
        regression = self.hparams.task == "regression"
        if outputs:
            preds, truth = torch.cat([o for o, _ in outputs]).float(), torch.cat([t for _, t in outputs])
        else:  # this process validated no readable image
            preds = torch.empty(0, len(self.names), device=self.device)
            truth = torch.empty((0, len(self.names)) if regression else (0,), device=self.device,
                                dtype=torch.float32 if regression else torch.long)
        if self.trainer.world_size > 1:
            preds, truth = _gather_rows(self, preds), _gather_rows(self, truth)
        if not len(preds):
            return
        self.conformal = calibrate(preds.cpu().numpy(), truth.cpu().numpy(), self.hparams.task, self.names)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.conformal is not None:
            checkpoint[CONFORMAL_KEY] = self.conformal
        if self.novelty is not None:
            checkpoint[NOVELTY_KEY] = self.novelty

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.conformal = checkpoint.get(CONFORMAL_KEY)
        self.set_novelty(checkpoint.get(NOVELTY_KEY))

    @property
    def monitor(self) -> tuple[str, str]:
        """The metric that picks the best checkpoint and stops early, and its mode."""
        return ("val_loss", "min") if self.hparams.task == "regression" else ("val_acc", "max")

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The head at the learning rate, the backbone at ``backbone_lr_scale`` times it.

        Both groups are in the optimizer from the first step, frozen or not, so the schedule, a
        resumed optimizer state and DDP all see one fixed set of parameters.
        """
        hp = self.hparams
        return [
            {"params": list(self.head.parameters()), "lr": hp.learning_rate, "name": "head"},
            {"params": list(self.backbone.parameters()), "lr": hp.learning_rate * hp.backbone_lr_scale,
             "name": "backbone"},
        ]

    def configure_optimizers(self):
        hp = self.hparams
        params = self.parameter_groups()
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
