"""Experiment loggers for training: Lightning's own, chosen by name (``--logger tensorboard,csv``).

- ``tensorboard`` (default): ``<logs>/<backbone>/<run>/events.*``, with the test report's plots.
- ``csv``: ``<logs>/<backbone>/<run>/metrics.csv``, one row per epoch with every epoch metric side by
  side, the table a spreadsheet opens. Lightning's ``CSVLogger`` writes a row per logging call
  (training and validation of one epoch on separate rows, per-step losses between them) and deletes
  the file when a resumed run starts; here a resumed run goes on with its table.
- ``mlflow``: an MLflow run named after the run folder in the experiment named after the backbone;
  its store is ``$MLFLOW_TRACKING_URI``, else the SQLite file ``<logs>/mlflow.db`` (``mlflow ui
  --backend-store-uri sqlite:///<logs>/mlflow.db``; MLflow 3 retired the plain-folder store).
- ``wandb``: a Weights & Biases run in project ``perspective``, offline (synchronise it later with
  ``wandb sync``) unless ``WANDB_MODE=online``.

mlflow and wandb are optional packages: naming one that is not installed is a one-line error.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from lightning_fabric.loggers.csv_logs import _ExperimentWriter
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger
from pytorch_lightning.loggers.logger import rank_zero_experiment

from ..results import atomic_write

WANDB_PROJECT = "perspective"


class _EpochTable(_ExperimentWriter):
    """One row per epoch, merged from every logging call of that epoch; the whole file rewritten atomically."""

    def __init__(self, log_dir: str) -> None:  # not the parent's: it deletes the table of a resumed run
        self.log_dir = log_dir
        self.metrics_file_path = os.path.join(log_dir, self.NAME_METRICS_FILE)
        self.metrics: list[dict[str, float]] = []
        self.metrics_keys: list[str] = []
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self.rows: dict[int, dict[str, Any]] = {}
        self.pending: dict[str, float] = {}  # logged without an epoch, joins the next epoch's row
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as file:
                for row in csv.DictReader(file):
                    self.rows[int(row["epoch"])] = {k: v for k, v in row.items() if v != ""}

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        values = {k: float(v.item() if hasattr(v, "item") else v) for k, v in metrics_dict.items()
                  if not k.endswith("_step")}  # per-step values stay in TensorBoard
        if "epoch" not in values:  # the learning-rate monitor, at the start of an epoch: held for its row
            self.pending.update(values)
            return
        epoch = int(values.pop("epoch"))
        row = self.rows.setdefault(epoch, {})
        row.update({**self.pending, **values})
        self.pending.clear()
        row["step"] = step

    def save(self) -> None:
        if not self.rows:
            return
        keys = sorted({k for row in self.rows.values() for k in row} - {"step"})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["epoch", "step", *keys])
        writer.writeheader()
        for epoch in sorted(self.rows):
            writer.writerow({"epoch": epoch, **self.rows[epoch]})
        atomic_write(self.metrics_file_path, buffer.getvalue())


class EpochCSVLogger(CSVLogger):
    """Lightning's CSVLogger writing ``metrics.csv`` as one row per epoch (see ``_EpochTable``)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _EpochTable:
        if self._experiment is None:
            self._experiment = _EpochTable(self.log_dir)
        return self._experiment

    def log_hyperparams(self, params: Any = None) -> None:
        pass  # the checkpoint and the run's config.yaml hold them


def create_loggers(names: list[str], save_dir: str, name: str, version: str) -> list[Logger]:
    """The loggers of a run, each writing under ``save_dir/name/version`` or its own store."""
    loggers: list[Logger] = []
    for logger in names:
        if logger == "tensorboard":
            loggers.append(TensorBoardLogger(save_dir=save_dir, name=name, version=version))
        elif logger == "csv":
            loggers.append(EpochCSVLogger(save_dir=save_dir, name=name, version=version))
        elif logger == "mlflow":
            from pytorch_lightning.loggers import MLFlowLogger

            root = Path(save_dir).resolve()
            root.mkdir(parents=True, exist_ok=True)
            uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"
            loggers.append(MLFlowLogger(experiment_name=name, run_name=version, tracking_uri=uri,
                                        artifact_location=(root / "mlartifacts").as_uri()))
        elif logger == "wandb":
            from pytorch_lightning.loggers import WandbLogger

            offline = os.environ.get("WANDB_MODE", "offline") != "online"
            Path(save_dir).mkdir(parents=True, exist_ok=True)
            loggers.append(WandbLogger(project=WANDB_PROJECT, name=version, save_dir=save_dir, offline=offline))
    return loggers
