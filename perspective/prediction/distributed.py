"""Prediction in several processes through Lightning (``predict_distributed``).

Lightning starts the processes (``--strategy ddp`` on one machine, ``srun`` on a SLURM cluster,
``torchrun``) and gives each its rank; these three pieces do the rest:

- ``ShardedImages`` (a DataModule): in ``setup``, which every process runs once the processes
  know each other, the first one prepares the part files, all read which images are done, and
  each takes every ``world``-th remaining image from its rank on. The sampler is not Lightning's
  DistributedSampler, which pads the shards to equal length by repeating images.
- ``PredictionModule``: runs a ``Predictor`` on the process's device, so rows and numbers are
  those of a one-process run (precision, TTA, rounding).
- ``PartFileWriter`` (a ``BasePredictionWriter``): streams each batch's rows into the process's
  part file; shows a bar (images/s, time left) on the first process where stderr is a terminal, and a
  log line every N images on the other processes and wherever no bar draws; at the end it waits for
  all, so the first process merges complete parts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader

from ..config import NOVELTY_LEVEL, PredictConfig
from ..data.datasets import ImageFileDataset
from ..errors import UserError
from ..interrupts import keeps_ctrl_c
from ..models.backbones import Preprocessing
from ..models.transforms import eval_resize
from ..progress import progress, quiet_lightning
from .parts import Outcome, PartStore, PartWriter, RunState, part_path, shard, start_run
from .predictor import Predictor, model_intervals

log = logging.getLogger(__name__)


class ShardedImages(pl.LightningDataModule):
    """This process's share of the images still to predict, as a DataLoader of decoded batches."""

    def __init__(self, paths: Sequence[str], store: PartStore, model, *, resume: bool, result_format: str,
                 batch_size: int, workers: int):
        super().__init__()
        self.paths, self.store = paths, store
        self.preprocessing = Preprocessing.from_dict(model.hparams.preprocessing)
        self.resume, self.result_format = resume, result_format
        self.batch_size, self.workers = batch_size, workers
        self.state: RunState | None = None
        self.positions = None  # input positions of this process's images, ascending
        self.files: ImageFileDataset | None = None

    def setup(self, stage: str) -> None:
        strategy = self.trainer.strategy
        self.state = start_run(self.store, self.paths, self.resume, self.result_format, strategy.barrier,
                               is_first=self.trainer.is_global_zero)
        self.positions = shard(self.state.todo, self.trainer.global_rank, self.trainer.world_size)
        pre = self.preprocessing
        self.files = ImageFileDataset([self.paths[i] for i in self.positions], eval_resize(pre), pre.image_size,
                                      pre.decode_size)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.files, batch_size=self.batch_size, num_workers=self.workers,
                          pin_memory=self.trainer.strategy.root_device.type == "cuda")


class PredictionModule(pl.LightningModule):
    """A ``Predictor`` on the device Lightning gives this process; each batch becomes result rows."""

    def __init__(self, model, precision: str, tta: bool, compile: bool, interval: float | None = None,
                 novelty: float = NOVELTY_LEVEL):
        super().__init__()
        self.model = model
        self.settings = {"precision": precision, "tta": tta, "compile": compile, "interval": interval,
                         "novelty": novelty}
        self.predictor: Predictor | None = None

    def on_predict_start(self) -> None:
        device = "cpu" if self.device.type == "cpu" else str(self.device)
        self.predictor = Predictor(self.model, device=device, **self.settings)

    def predict_step(self, batch, batch_idx: int) -> list[dict[str, Any]]:
        images, local, errors = batch
        files = self.trainer.datamodule.files
        return self.predictor.batch_rows(images, [files.paths[i] for i in local.tolist()], errors)


class PartFileWriter(BasePredictionWriter):
    """Streams each process's rows into its part file; the first process shows the bar."""

    def __init__(self, store: PartStore, progress: bool, log_every: int):
        super().__init__(write_interval="batch")
        self.store, self.progress, self.log_every = store, progress, log_every
        self.part: PartWriter | None = None

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        data: ShardedImages = trainer.datamodule
        self.positions = data.positions
        self.written = 0
        self.part = PartWriter(part_path(self.store.folder, data.state.generation, trainer.global_rank),
                               self.store.columns).__enter__()
        self.meter = progress(log, len(self.positions), show=self.progress, bar=trainer.is_global_zero,
                              desc=f"rank {trainer.global_rank} of {trainer.world_size}", every=self.log_every,
                              seconds=None)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx: int,
                           dataloader_idx: int = 0) -> None:
        _, local, _ = batch
        for i, row in zip(local.tolist(), prediction):
            self.part.write(int(self.positions[i]), row)
        self.part.flush()
        self.meter.update(len(prediction))

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.meter.close()
        self.part.__exit__(None, None, None)
        self.part = None
        trainer.strategy.barrier()  # every part complete before the first process merges them

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self.part is not None:  # what this process predicted stays for --resume
            self.part.__exit__(None, None, None)
            self.part = None


@keeps_ctrl_c
def predict_distributed(model, paths: Sequence[str], store: PartStore, cfg: PredictConfig, plan: dict[str, Any], *,
                        resume: bool, result_format: str, log_every: int) -> Outcome:
    """Several processes through Lightning (``plan``: its accelerator, devices, nodes and strategy), each
    predicting its shard into its own part file with ``cfg``'s settings."""
    if not getattr(model, "runs_in_torch", True):
        raise UserError("--devices/--num-nodes/--strategy run checkpoints (.ckpt); an ONNX model runs in one process")
    model_intervals(model, cfg.interval)  # a model without calibration stops here, not in every process
    data = ShardedImages(paths, store, model, resume=resume, result_format=result_format, batch_size=cfg.batch_size,
                         workers=cfg.decoding_workers)
    writer = PartFileWriter(store, progress=not cfg.quiet, log_every=log_every)
    quiet_lightning()
    trainer = pl.Trainer(
        **plan, precision="32-true", logger=False, enable_checkpointing=False, enable_model_summary=False,
        enable_progress_bar=False, use_distributed_sampler=False, callbacks=[writer], default_root_dir=str(store.folder),
    )
    module = PredictionModule(model, precision=cfg.precision, tta=cfg.tta, compile=cfg.compile, interval=cfg.interval,
                              novelty=cfg.novelty)
    trainer.predict(module, datamodule=data, return_predictions=False)
    return Outcome(trainer.is_global_zero, data.state.generation, data.state.skipped)
