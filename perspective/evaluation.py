"""Evaluate a checkpoint on labelled images: predictions joined to truth, metrics, plots, report.

The glue between the model side (``predict.Predictor``, the one prediction path, so an evaluation
gives exactly the numbers ``infer.py`` gives) and ``report.py``, which only sees numbers. Used by
evaluate.py, by train.py on the test split at the end of a run, and by ``infer.py --labels``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import report
from .config import SPLITS
from .conformal import CHECKPOINT_KEY as CONFORMAL_KEY
from .conformal import SET_SEPARATOR, calibrate, coverage
from .data import LABELS_CSV, LabelledData, load_image, read_csv_checked, read_labelled_data, split_data
from .errors import NothingDone, UserError
from .model import PerspectiveModel
from .predict import Predictor, output_columns

log = logging.getLogger(__name__)

TRUE = report.TRUE_PREFIX


def truth_columns(model: PerspectiveModel) -> list[str]:
    """The ``true_*`` columns added beside a model's predictions."""
    if model.hparams.task == "regression":
        return [TRUE + n for n in model.names]
    return [TRUE + "label"]


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
    return {k: {TRUE + c: v for c, v in row.items()} for k, row in zip(keys, values)}


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


def predict_with_truth(predictor: Predictor, paths: Sequence[str], lookup: dict[str, dict[str, Any]] | None,
                       batch_size: int, workers: int, progress: bool) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """The columns and the streamed rows of ``predictor.predict_paths``, with ``true_*`` columns when ``lookup``."""
    rows = predictor.predict_paths(paths, batch_size, workers, progress)
    if lookup is None:
        return predictor.columns, rows
    return result_columns(predictor.model, True, predictor.interval), with_truth(rows, lookup, truth_columns(predictor.model))


def compute_metrics(model: PerspectiveModel, frame: pd.DataFrame, interval: float | None = None) -> dict[str, Any]:
    """Metrics of prediction rows that carry truth columns; unreadable images are left out.

    With ``interval`` (the rows carry its columns) the metrics get an ``intervals`` entry: the
    coverage and the width actually reached (``interval_metrics``).
    """
    stats = model.hparams.get("train_stats") or {}
    readable = frame[frame["error"].fillna("") == ""]
    if model.hparams.task == "regression":
        pred = readable[model.names].to_numpy(dtype=np.float64)
        truth = readable[truth_columns(model)].to_numpy(dtype=np.float64)
        metrics = report.regression_metrics(pred, truth, model.names, stats.get("mean"))
    else:
        truth = [t if isinstance(t, str) else None for t in readable[TRUE + "label"]]
        metrics = report.classification_metrics(readable["label"].tolist(), truth, model.names, stats.get("counts"))
    if interval is not None:
        metrics["intervals"] = interval_metrics(model, readable, interval)
    return metrics


def calibrate_from_predictions(model: PerspectiveModel, predictions: pd.DataFrame) -> dict[str, Any]:
    """The conformal calibration (``conformal.calibrate``) of prediction rows with truth columns."""
    readable = predictions[predictions["error"].fillna("") == ""]
    if model.hparams.task == "regression":
        outputs = readable[model.names].to_numpy(dtype=np.float64)
        truth = readable[truth_columns(model)].to_numpy(dtype=np.float64)
    else:
        outputs = readable[[f"prob_{c}" for c in model.names]].to_numpy(dtype=np.float64)
        index = {c: i for i, c in enumerate(model.names)}
        truth = np.array([index.get(t, -1) if isinstance(t, str) else -1 for t in readable[TRUE + "label"]])
    return calibrate(outputs, truth, model.hparams.task, model.names)


def store_calibration(checkpoint: str | os.PathLike, calibration: dict[str, Any]) -> None:
    """Write ``calibration`` into the checkpoint file (a temporary copy, then renamed over it)."""
    import torch

    from .results import partial_path

    content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    content[CONFORMAL_KEY] = calibration
    checkpoint = Path(checkpoint)
    partial = partial_path(checkpoint)
    torch.save(content, partial)
    os.replace(partial, checkpoint)


def interval_metrics(model: PerspectiveModel, readable: pd.DataFrame, level: float) -> dict[str, Any]:
    """Empirical coverage and size of the rows' conformal intervals or class sets against the truth.

    Regression: per target, the share of labelled images whose true score lies in its interval and
    the mean width, overall and split by true score 0 and above 0 (``conformal.coverage``).
    Classification: the share of labelled images whose true class is in the set, and the mean set size.
    """
    if model.hparams.task == "regression":
        targets = {}
        for name in model.names:
            truth = readable[TRUE + name].to_numpy(dtype=np.float64)
            low = readable[f"{name}_low"].to_numpy(dtype=np.float64)
            high = readable[f"{name}_high"].to_numpy(dtype=np.float64)
            targets[name] = coverage(truth, low, high)
        return {"level": level, "targets": targets}
    labelled = readable[readable[TRUE + "label"].map(lambda t: isinstance(t, str))]
    members = [str(s).split(SET_SEPARATOR) for s in labelled["set"]]
    hits = [t in m for t, m in zip(labelled[TRUE + "label"], members)]
    return {"level": level, "n": len(hits), "coverage": float(np.mean(hits)) if hits else None,
            "mean_set_size": float(np.mean([len(m) for m in members])) if members else None}


def saliency_plots(model: PerspectiveModel, readable: pd.DataFrame, count: int, seed: int) -> dict[str, bytes]:
    """``saliency_<n>.png``: Grad-CAM of every score (``perspective.explain``) for ``count`` random readable images.

    Skipped with a log line, not an error, where it cannot run: an exported model, or no grad-cam package.
    """
    from .explain import Explainer, explain_image

    try:
        explainer = Explainer(model)
    except UserError as exc:
        log.info("no saliency section in the report: %s", exc)
        return {}
    chosen = readable.sample(min(count, len(readable)), random_state=seed)["path"]
    return {f"saliency_{i}.png": explain_image(explainer, path) for i, path in enumerate(chosen, 1)}


def _thumbnail(path: str):
    image = load_image(path, draft_size=320)  # a JPEG is decoded at the scale the thumbnail needs
    image.thumbnail((320, 320))
    return image


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    table: pd.DataFrame
    plots: dict[str, bytes]
    predictions: pd.DataFrame
    outdir: Path | None


def evaluate(
    predictor: Predictor,
    labelled_frame: pd.DataFrame,
    outdir: str | os.PathLike | None,
    *,
    title: str,
    summary: dict[str, Any] | None = None,
    batch_size: int = 32,
    workers: int = 0,
    samples: int = 16,
    seed: int = 0,
    progress: bool = True,
    explain_samples: int = 0,
) -> Evaluation:
    """Predict every image of ``labelled_frame``, score it against the truth and write the report.

    Args:
        predictor: the loaded model.
        labelled_frame: ``path`` plus truth columns as in ``LabelledData.frame`` (from ``load_truth``).
        outdir: where metrics, predictions, plots and report.html go; None writes nothing.
        title, summary: the report's heading and its data section.
        samples, seed: size and seed of the random sample grid.
    """
    model = predictor.model
    columns, rows = predict_with_truth(predictor, labelled_frame["path"].tolist(), truth_lookup(labelled_frame, model),
                                       batch_size, workers, progress)
    predictions = pd.DataFrame(list(rows), columns=columns)
    return report_predictions(model, predictions, outdir, title=title, summary=summary, samples=samples, seed=seed,
                              interval=predictor.interval, explain_samples=explain_samples)


def report_predictions(
    model: PerspectiveModel,
    predictions: pd.DataFrame,
    outdir: str | os.PathLike | None,
    *,
    title: str,
    summary: dict[str, Any] | None = None,
    samples: int = 16,
    seed: int = 0,
    interval: float | None = None,
    explain_samples: int = 0,
) -> Evaluation:
    """Metrics, plots and the report of prediction rows that carry their ``true_*`` columns (``evaluate``'s
    second half; evaluate.py calls it alone when several processes made the predictions)."""
    unread = predictions["error"].fillna("") != ""
    if unread.all():
        raise NothingDone("no image could be read; nothing to evaluate")
    metrics = compute_metrics(model, predictions, interval)
    readable = predictions[~unread]
    if unread.any():
        failed = predictions[unread]
        log.warning("%d image(s) could not be read, left out of the metrics: %s", len(failed),
                    "; ".join(f"{p} ({e})" for p, e in zip(failed["path"][:5], failed["error"][:5])))
    make = report.regression_plots if model.hparams.task == "regression" else report.classification_plots
    plots = make(readable, model.names, metrics, _thumbnail, samples=samples, seed=seed)
    if explain_samples:
        plots.update(saliency_plots(model, readable, explain_samples, seed))
    summary = {"images": len(predictions), "unreadable": int(len(predictions) - len(readable)), **(summary or {})}
    written = None
    if outdir is not None:
        written = report.write_report(outdir, metrics, predictions, plots, dict(model.hparams), summary, title)
    return Evaluation(metrics, report.metrics_table(metrics), plots, predictions, written)
