"""The truth beside predictions: labels read for a model, a training run's split rebuilt, truth joined to rows.

A model's targets (regression) or its label column (classification) are read from any layout
``train`` reads; a mismatch with the model (a missing target, an unknown class) is a one-line error.
The truth goes beside the prediction columns as ``true_*`` columns, matched by the image's resolved
path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..config import LABELS_CSV, SPLITS
from ..data import LabelledData, read_csv_checked, read_labelled_data, split_data
from ..errors import UserError
from ..models.outputs import output_columns

if TYPE_CHECKING:
    from ..models.module import PerspectiveModel

log = logging.getLogger(__name__)

TRUE_PREFIX = "true_"



def truth_columns(model: PerspectiveModel) -> list[str]:
    """The ``true_*`` columns added beside a model's predictions."""
    if model.hparams.task == "regression":
        return [TRUE_PREFIX + n for n in model.names]
    return [TRUE_PREFIX + "label"]


def _csv_of(data: str | os.PathLike) -> Path | None:
    path = Path(data)
    if path.is_file():
        return path
    return path / LABELS_CSV if (path / LABELS_CSV).is_file() else None


def load_truth(
    model: PerspectiveModel, data: str | os.PathLike, images: str | os.PathLike | None = None,
    label_column: str | None = None,
) -> LabelledData:
    """Read labelled data for ``model``: its targets (regression) or its label column (classification).

    Rows with a missing label are kept (reported, then left out of the metrics). Raises ``UserError``
    naming the mismatch when the data lacks the model's targets or has classes the model does not know.
    """
    hp = model.hparams
    csv_path = _csv_of(data)
    if hp.task == "regression":
        if csv_path is None:
            raise UserError(f"{data}: a regression checkpoint needs labels.csv with its target columns")
        columns = set(read_csv_checked(csv_path).columns)
        missing = [n for n in model.names if n not in columns]
        if missing:
            raise UserError(f"{csv_path} does not match the checkpoint: no column for its target(s) {', '.join(missing)}")
        labelled = read_labelled_data(data, images, task="regression", targets=model.names, allow_missing=True)
    else:
        column = label_column or (hp.get("data_config") or {}).get("label_column")
        labelled = read_labelled_data(data, images, task="classification", label_column=column, allow_missing=True)
        unknown = sorted(set(labelled.names) - set(model.names))
        if unknown:
            raise UserError(f"{labelled.source} does not match the checkpoint: class(es) {', '.join(unknown)} "
                            f"are not among its classes {', '.join(model.names)}")
        labelled = LabelledData(labelled.frame, labelled.task, model.names, labelled.source)
    _report_missing(labelled)
    return labelled


def _report_missing(labelled: LabelledData) -> None:
    columns = labelled.names if labelled.task == "regression" else ["label"]
    blank = labelled.frame[columns].isna()
    missing = blank.all(axis=1)
    if missing.any():
        names = labelled.frame.loc[missing, "path"].map(os.path.basename).tolist()
        log.warning("%s: %d row(s) without a label, predicted but left out of the metrics: %s%s",
                    labelled.source, len(names), ", ".join(names[:5]), " ..." if len(names) > 5 else "")
    partly = blank.any(axis=1) & ~missing
    if partly.any():
        counts = ", ".join(f"{c} {int(n)}" for c, n in blank[partly].sum().items() if n)
        log.info("%s: %d row(s) leave some targets blank (%s); each target is scored on the images labelled "
                 "for it", labelled.source, int(partly.sum()), counts)


def select_split(labelled: LabelledData, split: str, model: PerspectiveModel, seed: int | None = None) -> pd.DataFrame:
    """The rows of ``split``: all of them, or the train/val/test part of the training run's split.

    The fractions and seed come from the checkpoint (``data_config``); ``seed`` overrides the seed.
    """
    if split not in SPLITS:
        raise UserError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    if split == "all":
        return labelled.frame
    config = model.hparams.get("data_config") or {}
    if config.get(f"{split}_data"):
        raise UserError(f"--split {split}: the training run took its {split} set from --{split}-data "
                        f"{config[f'{split}_data']}; evaluate that data with -d instead")
    if seed is None and "seed" not in config:
        raise UserError(f"--split {split}: the checkpoint does not record its split; give the training --seed")
    seed = seed if seed is not None else config["seed"]
    train, val, test = split_data(labelled, config.get("val_fraction", 0.15), config.get("test_fraction", 0.15), seed)
    return {"train": train, "val": val, "test": test}[split]


def truth_lookup(labelled_frame: pd.DataFrame, model: PerspectiveModel) -> dict[str, dict[str, Any]]:
    """Resolved image path -> its ``true_*`` values, for joining truth to prediction rows."""
    source = model.names if model.hparams.task == "regression" else ["label"]
    values = labelled_frame[source].to_dict("records")
    keys = [os.path.realpath(p) for p in labelled_frame["path"]]
    return {k: {TRUE_PREFIX + c: v for c, v in row.items()} for k, row in zip(keys, values)}


def with_truth(rows: Iterable[dict[str, Any]], lookup: dict[str, dict[str, Any]], columns: list[str]):
    """Yield prediction rows with their truth columns added (empty where the image has no label)."""
    empty = dict.fromkeys(columns)
    for row in rows:
        yield {**row, **lookup.get(os.path.realpath(row["path"]), empty)}


def result_columns(model: PerspectiveModel, truth: bool, interval: float | None = None) -> list[str]:
    """A result file's columns: the prediction's (with an ``interval``'s), the ``true_*`` columns before
    ``error`` when ``truth``."""
    columns = output_columns(model, interval)
    return [*columns[:-1], *truth_columns(model), "error"] if truth else columns




def find_labels(labels: str | None, directory: str | None) -> tuple[str | None, bool]:
    """The labels CSV to join to predictions of ``directory``'s images, and whether the user named it.

    Unnamed, a ``labels.csv`` is looked for in the folder (and beside it, for an ``images/`` folder);
    a found one that does not fit the model is only a warning (``truth_for``).
    """
    if labels is not None:
        return labels, True
    if directory is None:
        return None, False
    folder = os.path.abspath(directory)
    candidates = [os.path.join(folder, LABELS_CSV)]
    if os.path.basename(folder) in ("images", "imgs"):
        candidates.append(os.path.join(os.path.dirname(folder), LABELS_CSV))
    return next((c for c in candidates if os.path.isfile(c)), None), False


def truth_for(model: PerspectiveModel, labels: str | None, explicit: bool, directory: str | None,
              label_column: str | None) -> dict[str, dict[str, Any]] | None:
    """Truth by resolved image path (``truth_lookup``), or None without labels or with found ones that do not fit."""
    if labels is None:
        return None
    try:
        labelled = load_truth(model, labels, directory if explicit else None, label_column)
    except UserError as exc:
        if explicit:
            raise
        log.warning("%s ignored: %s", labels, exc)
        return None
    return truth_lookup(labelled.frame, model)
