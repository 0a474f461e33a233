"""Experiment loggers for training: Lightning's own, chosen by name (``--logger tensorboard,csv``).

- ``tensorboard`` (default): ``<logs>/<backbone>/<run>/events.*``, with the test report's plots.
- ``csv``: ``<logs>/<backbone>/<run>/metrics.csv``, one row per epoch with every epoch metric side by
  side, the table a spreadsheet opens (Lightning's ``CSVLogger`` writes a row per logging call,
  training and validation of one epoch on separate rows, and deletes the file when a resumed run
  starts; here a resumed run goes on with its table).
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

from pytorch_lightning.loggers import Logger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from ..results import atomic_write

WANDB_PROJECT = "perspective"
METRICS_CSV = "metrics.csv"


class EpochCSVLogger(Logger):
    """``<save_dir>/<name>/<version>/metrics.csv``: one row per epoch, merged from every logging call of that epoch.

    Built on Lightning's public ``Logger`` interface. Per-step values (``*_step``) stay in TensorBoard;
    a value logged without an epoch (the learning-rate monitor, at the start of an epoch) joins that
    epoch's row. The whole table is rewritten atomically at each ``save``; a resumed run reads the
    table it left and goes on with it.
    """

    def __init__(self, save_dir: str, name: str, version: str) -> None:
        super().__init__()
        self._root, self._name, self._version = save_dir, name, version
        self.rows: dict[int, dict[str, Any]] = {}
        self.pending: dict[str, float] = {}
        self.path = Path(self.log_dir) / METRICS_CSV
        if self.path.is_file():
            with open(self.path, newline="") as file:
                for row in csv.DictReader(file):
                    self.rows[int(row["epoch"])] = {k: v for k, v in row.items() if v != ""}

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    @property
    def root_dir(self) -> str:
        return os.path.join(self._root, self._name)

    @property
    def log_dir(self) -> str:
        return os.path.join(self._root, self._name, self._version)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass  # the checkpoint and the run's config.yaml hold them

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        values = {k: float(v.item() if hasattr(v, "item") else v) for k, v in metrics.items()
                  if not k.endswith("_step")}
        if "epoch" not in values:  # the learning-rate monitor, at the start of an epoch: held for its row
            self.pending.update(values)
            return
        epoch = int(values.pop("epoch"))
        row = self.rows.setdefault(epoch, {})
        row.update({**self.pending, **values})
        self.pending.clear()
        row["step"] = step

    @rank_zero_only
    def save(self) -> None:
        if not self.rows:
            return
        keys = sorted({k for row in self.rows.values() for k in row} - {"step"})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["epoch", "step", *keys])
        writer.writeheader()
        for epoch in sorted(self.rows):
            writer.writerow({"epoch": epoch, **self.rows[epoch]})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, buffer.getvalue())

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()


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
