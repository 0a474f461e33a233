"""Self-supervised pretraining of a backbone on the user's own unlabelled photos.

``pretrain(PretrainConfig(...))`` is what ``perspective pretrain`` calls: every image of a folder
(subfolders too; labels, if any, are ignored) is seen as two random views, and the backbone learns
to give the two views of one photo similar features (and, for SimCLR, other photos different ones).
The methods, their heads, losses and view transforms are lightly's (``--method``: SimCLR, VICReg or
BYOL). The run is a Lightning run like ``train``'s: checkpoints (``last.ckpt`` after every epoch,
written atomically by a background thread), ``--resume`` after a kill, the loggers, a line per epoch
in a log, ``--devices/--strategy`` for several GPUs.

The output (``-o``, written once the run ends, to a temporary name and renamed) holds the backbone's
weights as ``backbone.*`` and its preprocessing, so ``perspective train --weights backbone.ckpt``
starts from it with a new head, at the image size it was pretrained at, with the fine-tuning settings
that suit self-supervised weights (``run.fine_tuning``).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from ..config import (
    PRETRAIN_KEY,
    PRETRAIN_METHODS,
    PretrainConfig,
    default_loader_workers,
    lightning_precision,
    parse_loggers,
)
from ..data import find_unreadable, list_images, load_image
from ..data.datasets import skip_unreadable
from ..errors import UserError
from ..hardware import default_precision, resolve_devices
from ..interrupts import keeps_ctrl_c
from ..models.backbones import Preprocessing, create_backbone, default_preprocessing, get_spec
from ..models.checkpoint import save_atomically
from ..models.module import warmup_cosine
from ..progress import quiet_lightning
from .checkpointing import BackgroundCheckpointIO, RunCheckpoint
from .epoch_log import EpochLog, draws_progress_bar, where_it_trains
from .loggers import create_loggers

log = logging.getLogger(__name__)

LAST = "last.ckpt"


def require_lightly():
    """The ``lightly`` module, or a one-line error naming the extra that installs it."""
    try:
        import lightly
    except ImportError:
        raise UserError("perspective pretrain needs lightly: pip install 'perspective[pretrain]'") from None
    return lightly


class UnlabelledImages(Dataset):
    """The images of a folder, each as ``views(image)`` (a list of tensors); an unreadable one is None."""

    def __init__(self, paths: list[str], views, draft_size: int | None):
        self.paths, self.views, self.draft_size = paths, views, draft_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return self.views(load_image(self.paths[i], self.draft_size))
        except (OSError, ValueError):  # damaged since the scan: dropped from its batch
            return None


def view_transform(method: str, pre: Preprocessing, hflip_prob: float = PretrainConfig.hflip_prob,
                   blur_prob: float | None = PretrainConfig.blur_prob):
    """lightly's two-view transform of ``method`` at the backbone's input size and normalisation; a view is
    mirrored with ``hflip_prob`` and blurred with ``blur_prob`` (None: the method's own chance)."""
    from lightly.transforms import BYOLTransform, SimCLRTransform, VICRegTransform
    from lightly.transforms.byol_transform import BYOLView1Transform, BYOLView2Transform

    common = {"input_size": pre.image_size, "hf_prob": hflip_prob, "normalize": {"mean": list(pre.mean), "std": list(pre.std)}}
    blur = {} if blur_prob is None else {"gaussian_blur": blur_prob}
    if method in ("simclr", "dcl"):
        return SimCLRTransform(**common, **blur)
    if method == "vicreg":
        return VICRegTransform(**common, **blur)
    return BYOLTransform(BYOLView1Transform(**common, **blur), BYOLView2Transform(**common, **blur))


class PretrainModule(pl.LightningModule):
    """A backbone, a projection head (and for BYOL a predictor and a momentum copy), trained on two views."""

    def __init__(self, backbone: str, weights: str, method: str, image_size: int, learning_rate: float,
                 weight_decay: float, warmup_epochs: float):
        super().__init__()
        from lightly.loss import DCLLoss, NegativeCosineSimilarity, NTXentLoss, VICRegLoss
        from lightly.models.modules.heads import (
            BYOLPredictionHead,
            BYOLProjectionHead,
            SimCLRProjectionHead,
            VICRegProjectionHead,
        )

        self.save_hyperparameters()
        features = get_spec(backbone).num_features
        self.backbone = create_backbone(backbone, weights, image_size)
        self.backbone.to(memory_format=torch.channels_last)
        if method in ("simclr", "dcl"):  # dcl: SimCLR without the positive pair in the denominator (Yeh et al. 2022)
            self.projection = SimCLRProjectionHead(features, features, 128)
            self.criterion = (NTXentLoss(temperature=0.5, gather_distributed=True) if method == "simclr"
                              else DCLLoss(temperature=0.1, gather_distributed=True))
        elif method == "vicreg":
            self.projection = VICRegProjectionHead(features, 2048, 2048)
            self.criterion = VICRegLoss(gather_distributed=True)
        else:
            self.projection = BYOLProjectionHead(features, 1024, 256)
            self.prediction = BYOLPredictionHead(256, 1024, 256)
            self.momentum_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
            self.momentum_projection = copy.deepcopy(self.projection).requires_grad_(False)
            self.criterion = NegativeCosineSimilarity()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.backbone(x.contiguous(memory_format=torch.channels_last)).float())

    def training_step(self, batch, batch_idx: int):
        if batch is None:  # every image of the batch was unreadable
            return None
        first, second = batch[0], batch[1]
        if self.hparams.method != "byol":
            loss = self.criterion(self.embed(first), self.embed(second))
        else:
            from lightly.models.utils import update_momentum
            from lightly.utils.scheduler import cosine_schedule

            momentum = cosine_schedule(self.global_step, max(1, int(self.trainer.estimated_stepping_batches)),
                                       0.99, 1.0)
            update_momentum(self.backbone, self.momentum_backbone, m=momentum)
            update_momentum(self.projection, self.momentum_projection, m=momentum)
            with torch.no_grad():
                targets = [self.momentum_projection(self.momentum_backbone(v).float()) for v in (first, second)]
            predictions = [self.prediction(self.embed(v)) for v in (first, second)]
            loss = 0.5 * (self.criterion(predictions[0], targets[1]) + self.criterion(predictions[1], targets[0]))
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(first))
        return loss

    def configure_optimizers(self):
        hp = self.hparams
        trained = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trained, lr=hp.learning_rate, weight_decay=hp.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(total // 2, round(hp.warmup_epochs * total / max(1, self.trainer.max_epochs or 1)))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, warmup, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


@dataclass
class PretrainResult:
    output: str | None  # the backbone file (None in the other processes of a DDP run, and after Ctrl-C)
    run_dir: str
    images: int  # images pretrained on
    unreadable: int  # images of the folder skipped because they could not be read
    final_loss: float | None
    seconds: float
    is_global_zero: bool = True


def readable_images(cfg: PretrainConfig, draft_size: int | None, workers: int) -> tuple[list[str], int]:
    """The folder's images that decode (subfolders too), and how many did not; one-line errors for too few."""
    if cfg.data is None or not Path(cfg.data).is_dir():
        raise UserError(f"-d {cfg.data}: not a folder of images")
    paths = list_images(cfg.data, recursive=True)
    if not paths:
        raise UserError(f"-d {cfg.data}: no images found (subfolders included)")
    bad = {path for path, _ in find_unreadable(paths, draft_size=draft_size, workers=workers)}
    if bad:
        log.warning("%d of %d images cannot be read and are skipped (for instance %s)", len(bad), len(paths),
                    Path(sorted(bad)[0]).name)
    readable = [p for p in paths if p not in bad]
    if len(readable) < cfg.batch_size:
        raise UserError(f"-d {cfg.data}: {len(readable)} readable image(s), fewer than one batch (-s "
                        f"{cfg.batch_size}); a contrastive batch compares its images with each other: use more "
                        "images or a smaller -s")
    return readable, len(bad)


def resolve_resume(cfg: PretrainConfig, runs: Path) -> str | None:
    """``--resume PATH``, or ``--resume last``: the newest last.ckpt of this backbone's pretraining runs."""
    if cfg.resume is None:
        return None
    if cfg.resume != "last":
        if not Path(cfg.resume).is_file():
            raise UserError(f"--resume {cfg.resume}: no such checkpoint file")
        return cfg.resume
    found = sorted(runs.glob(f"*/{LAST}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(f"--resume last: no {LAST} under {runs}")
    return str(found[-1])


@keeps_ctrl_c
def pretrain(cfg: PretrainConfig) -> PretrainResult:
    """Pretrain ``cfg.backbone`` on the images of ``cfg.data`` and write its weights to ``cfg.output``."""
    if cfg.method not in PRETRAIN_METHODS:
        raise UserError(f"--method must be one of {', '.join(PRETRAIN_METHODS)}, not {cfg.method!r}")
    require_lightly()
    output = Path(cfg.output)
    if output.is_dir():
        raise UserError(f"-o {output}: a folder; give the file to write (backbone.ckpt)")
    pre = default_preprocessing(cfg.backbone, cfg.image_size)
    accelerator, devices = resolve_devices(cfg.gpus, cfg.accelerator, cfg.devices)
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    workers = cfg.workers if cfg.workers is not None else default_loader_workers(on_cpu)
    paths, unreadable = readable_images(cfg, pre.decode_size, max(1, workers))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    runs = Path(cfg.checkpoints_location) / f"pretrain-{cfg.backbone}"
    resume = resolve_resume(cfg, runs)
    run = Path(resume).parent.name if resume else cfg.run_name or time.strftime("%Y%m%d-%H%M%S")
    model = PretrainModule(cfg.backbone, cfg.weights, cfg.method, pre.image_size, cfg.learning_rate,
                           cfg.weight_decay, cfg.warmup_epochs)
    loader = DataLoader(UnlabelledImages(paths, view_transform(cfg.method, pre, cfg.hflip_prob, cfg.blur_prob), pre.decode_size),
                        batch_size=cfg.batch_size, shuffle=True, drop_last=True, num_workers=workers,
                        collate_fn=skip_unreadable, persistent_workers=workers > 0)
    checkpoint = RunCheckpoint(dirpath=runs / run, save_last=True, save_top_k=0)  # last.ckpt after every epoch
    loggers = create_loggers(parse_loggers(cfg.logger), cfg.logs_location, f"pretrain-{cfg.backbone}", run)
    quiet_lightning()
    bar = draws_progress_bar(cfg.quiet)
    trainer = pl.Trainer(
        max_epochs=cfg.max_epochs, accelerator=accelerator, devices=devices, strategy=cfg.strategy,
        num_nodes=cfg.num_nodes, precision=lightning_precision(cfg.precision) or default_precision(accelerator),
        callbacks=[checkpoint, *([EpochLog("train_loss_epoch")] if not cfg.quiet and not bar else [])],
        logger=loggers or False, log_every_n_steps=max(1, min(50, len(loader))), enable_progress_bar=bar,
        enable_model_summary=bar, default_root_dir=runs / run, plugins=[BackgroundCheckpointIO()],
    )
    if trainer.is_global_zero:
        log.info("pretraining on %s", where_it_trains(trainer))
    start = time.perf_counter()
    try:
        trainer.fit(model, train_dataloaders=loader, ckpt_path=resume, weights_only=True)
    except SystemExit:
        if trainer.interrupted:  # Lightning ends its graceful Ctrl-C shutdown with sys.exit(1)
            raise KeyboardInterrupt from None
        raise
    seconds = time.perf_counter() - start
    loss = trainer.callback_metrics.get("train_loss_epoch")
    result = PretrainResult(None, str(runs / run), len(paths), unreadable, float(loss) if loss is not None else None,
                            seconds, trainer.is_global_zero)
    if trainer.interrupted:
        log.warning("pretraining interrupted; resume with --resume %s", runs / run / LAST)
        raise KeyboardInterrupt
    if trainer.is_global_zero:
        result.output = str(write_backbone(model, pre, cfg, len(paths), output))
    return result


def write_backbone(model: PretrainModule, pre: Preprocessing, cfg: PretrainConfig, images: int, output: Path) -> Path:
    """The file ``train --weights`` reads: the backbone's weights as ``backbone.*``, its preprocessing, how it was learnt."""
    state = {f"backbone.{k}": v.detach().cpu().clone() for k, v in model.backbone.state_dict().items()}
    info: dict[str, Any] = {"method": cfg.method, "epochs": cfg.max_epochs, "images": images, "data": str(cfg.data),
                            "weights": cfg.weights}
    output.parent.mkdir(parents=True, exist_ok=True)
    return save_atomically({"state_dict": state, "hyper_parameters": {"backbone": cfg.backbone,
                                                                      "preprocessing": pre.to_dict(),
                                                                      PRETRAIN_KEY: info}}, output)


if __name__ == "__main__":
    raise SystemExit("perspective.training.pretrain is the library module; run the command: perspective pretrain -h")
