"""Metrics beside trivial baselines, from prediction rows that carry their truth.

Everything here reads predictions and truths (arrays and frames), never a model's internals. Metrics
come from torchmetrics, so an evaluation says what the training logs say.

Baselines, so that a number means something:

- regression: predict the training mean of each target for every image (``train_stats`` stored in
  the checkpoint); without training statistics the evaluated set's own mean is used and the report
  says so. R² of that baseline is about 0 by construction; a model must beat it clearly.
- classification: always answer the training set's majority class (``majority``), and guess at
  random with the training class frequencies (``prior_random``, the expected accuracy
  ``sum_c p_train(c) * p_eval(c)``).

The conformal side: the coverage and width the intervals of the rows actually reach
(``interval_metrics``), and a calibration made from labelled rows (``calibrate_from_predictions``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from ..models.conformal import calibrate, calibration_sizes, coverage
from ..models.outputs import SET_COLUMN, bound_columns, output_keys, set_members
from .truth import TRUE_PREFIX, truth_columns

if TYPE_CHECKING:
    from ..models.module import PerspectiveModel

def _finite(value: float) -> float | None:
    """JSON has no NaN: an undefined metric (R² of a constant truth) is written as null."""
    value = float(value)
    return value if math.isfinite(value) else None


def _regression_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float | None]:
    p, t = torch.as_tensor(pred, dtype=torch.float64), torch.as_tensor(truth, dtype=torch.float64)
    mse = float(mean_squared_error(p, t))
    r2 = float(r2_score(p, t)) if len(t) >= 2 and float(t.var()) > 0 else float("nan")
    return {"mse": _finite(mse), "mae": _finite(mean_absolute_error(p, t)), "rmse": _finite(math.sqrt(mse)),
            "r2": _finite(r2)}


def regression_metrics(
    pred: np.ndarray, truth: np.ndarray, names: Sequence[str], train_mean: Sequence[float] | None = None
) -> dict[str, Any]:
    """Per-target and mean MSE, MAE, RMSE and R², and the same for the predict-the-mean baseline.

    Args:
        pred, truth: ``(n, k)`` arrays; NaN in ``truth`` marks a missing label, and that cell is left
            out of its target's metrics (the counts say how many were used).
        names: the k target names.
        train_mean: the training mean of each target for the baseline; None uses the evaluated
            set's own mean (said in ``baseline["source"]``).
    """
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    targets, baseline, counts = {}, {}, {}
    own_mean = np.nanmean(truth, axis=0) if np.isfinite(truth).any() else np.zeros(len(names))
    means = np.asarray(train_mean, dtype=np.float64) if train_mean is not None else own_mean
    for j, name in enumerate(names):
        ok = np.isfinite(truth[:, j]) & np.isfinite(pred[:, j])
        counts[name] = int(ok.sum())
        if not ok.any():
            targets[name] = baseline[name] = {"mse": None, "mae": None, "rmse": None, "r2": None}
            continue
        targets[name] = _regression_scores(pred[ok, j], truth[ok, j])
        baseline[name] = _regression_scores(np.full(ok.sum(), means[j]), truth[ok, j])

    def mean_of(scores: dict[str, dict[str, float | None]]) -> dict[str, float | None]:
        out = {}
        for metric in ("mse", "mae", "rmse", "r2"):
            values = [s[metric] for s in scores.values() if s[metric] is not None]
            out[metric] = float(np.mean(values)) if values else None
        return out

    return {
        "task": "regression",
        "n": int(len(truth)),
        "n_labelled": counts,
        "targets": targets,
        "mean": mean_of(targets),
        "baseline": {
            "source": "training mean" if train_mean is not None else "evaluated set's own mean (no training statistics in the checkpoint)",
            "prediction": {n: float(m) for n, m in zip(names, means)},
            "targets": baseline,
            "mean": mean_of(baseline),
        },
    }


def classification_metrics(
    pred: Sequence[str], truth: Sequence[str | None], classes: Sequence[str], train_counts: dict[str, int] | None = None
) -> dict[str, Any]:
    """Accuracy, macro F1, per-class precision/recall/F1/support and the confusion matrix.

    Rows whose truth is missing (None or NaN) are left out and counted in ``n_unlabelled``.
    Baselines use the training class counts when given, else the evaluated set's.
    """
    classes = list(classes)
    index = {c: i for i, c in enumerate(classes)}
    keep = [i for i, t in enumerate(truth) if isinstance(t, str) and t in index]
    t = torch.tensor([index[truth[i]] for i in keep], dtype=torch.long)
    p = torch.tensor([index[pred[i]] for i in keep], dtype=torch.long)
    k = len(classes)
    per_class = {}
    if len(t):
        precision = multiclass_precision(p, t, k, average="none", zero_division=0)
        recall = multiclass_recall(p, t, k, average="none", zero_division=0)
        f1 = multiclass_f1_score(p, t, k, average="none", zero_division=0)
        matrix = multiclass_confusion_matrix(p, t, k).tolist()
        support = torch.bincount(t, minlength=k).tolist()
        for i, c in enumerate(classes):
            per_class[c] = {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                            "support": int(support[i])}
        accuracy = float(multiclass_accuracy(p, t, k, average="micro"))
        macro_f1 = float(multiclass_f1_score(p, t, k, average="macro", zero_division=0))
    else:
        matrix, support, accuracy, macro_f1 = [[0] * k for _ in range(k)], [0] * k, None, None
    eval_freq = np.asarray(support, dtype=np.float64) / max(1, sum(support))
    if train_counts:
        prior = np.array([train_counts.get(c, 0) for c in classes], dtype=np.float64)
        source = "training class counts"
    else:
        prior, source = np.asarray(support, dtype=np.float64), "evaluated set's own class counts"
    prior = prior / max(1.0, prior.sum())
    majority = int(np.argmax(prior))
    return {
        "task": "classification",
        "n": int(len(truth)),
        "n_unlabelled": int(len(truth) - len(keep)),
        "classes": classes,
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "per_class": per_class,
        "confusion_matrix": matrix,
        "baseline": {
            "source": source,
            "majority_class": classes[majority],
            "majority": float(eval_freq[majority]),
            "prior_random": float((prior * eval_freq).sum()),
        },
    }


def metrics_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """The metrics as a table for the terminal and metrics.csv, the baseline in its own columns."""
    if metrics["task"] == "classification":
        rows = {c: [v["precision"], v["recall"], v["f1"], v["support"]] for c, v in metrics["per_class"].items()}
        table = pd.DataFrame.from_dict(rows, orient="index", columns=["precision", "recall", "f1", "support"])
        base = metrics["baseline"]
        summary = pd.DataFrame(
            {"accuracy": [metrics["accuracy"], base["majority"], base["prior_random"]],
             "macro_f1": [metrics["macro_f1"], None, None]},
            index=["model", f"baseline: always {base['majority_class']}", "baseline: random by prior"],
        )
        table = pd.concat([summary, table])
        table["support"] = table["support"].astype("Int64")  # counts print as counts
        return table
    columns = ("mse", "mae", "rmse", "r2")
    rows = {name: [s[c] for c in columns] + [metrics["baseline"]["targets"][name][c] for c in ("rmse", "r2")]
            for name, s in metrics["targets"].items()}
    if len(rows) > 1:
        rows["mean"] = [metrics["mean"][c] for c in columns] + [metrics["baseline"]["mean"][c] for c in ("rmse", "r2")]
    return pd.DataFrame.from_dict(rows, orient="index", columns=[*columns, "baseline_rmse", "baseline_r2"]).astype(float)


def interval_table(intervals: dict[str, Any]) -> pd.DataFrame:
    """Coverage and width of conformal intervals per target (overall, true score 0, above 0), or of class sets."""
    level = intervals["level"]
    if "targets" not in intervals:
        return pd.DataFrame({"coverage": [intervals["coverage"]], "mean_set_size": [intervals["mean_set_size"]],
                             "images": [intervals["n"]], "calibrated_on": [intervals.get("calibration_images")]},
                            index=[f"sets at {level:g}"]).astype({"coverage": float, "mean_set_size": float})
    rows = {}
    for name, c in intervals["targets"].items():
        zero, above = c["truth_zero"], c["truth_above_zero"]
        rows[name] = [c["coverage"], c["width"], zero["coverage"], zero["width"], above["coverage"], above["width"],
                      c.get("calibration_images")]
    columns = [f"coverage@{level:g}", "width", "coverage|true=0", "width|true=0", "coverage|true>0", "width|true>0",
               "calibrated_on"]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    return table.astype({c: float for c in columns[:-1]} | {"calibrated_on": "Int64"})


def format_table(table: pd.DataFrame) -> str:
    if "support" in table.columns:  # counts print as counts
        table = table.assign(support=["-" if pd.isna(v) else str(int(v)) for v in table["support"]])
    return table.to_string(float_format=lambda v: f"{v:.4f}", na_rep="-")


def novelty_note(novel: int, images: int, level: float | None = None) -> str:
    """One line on the photos flagged novel: unlike the ones the model learnt from (``models.novelty``)."""
    at = f" at novelty p <= {level:g}" if level is not None else ""
    share = f" ({novel / images:.1%})" if images else ""
    return f"{novel} of {images} images flagged novel{at}{share}: unlike the photos the model learnt from"


def flat_metrics(metrics: dict[str, Any], prefix: str = "test_") -> dict[str, float]:
    """Scalar metrics with TensorBoard-style names (``test_r2``, ``test_r2/<target>``, ``test_acc``)."""
    out: dict[str, float] = {}
    if metrics["task"] == "classification":
        for key, name in (("accuracy", "acc"), ("macro_f1", "f1")):
            if metrics[key] is not None:
                out[f"{prefix}{name}"] = metrics[key]
        return out
    for metric, value in metrics["mean"].items():
        if value is not None:
            out[f"{prefix}{metric}"] = value
    for target, scores in metrics["targets"].items():
        for metric, value in scores.items():
            if value is not None and len(metrics["targets"]) > 1:
                out[f"{prefix}{metric}/{target}"] = value
    return out



def compute_metrics(model: PerspectiveModel, frame: pd.DataFrame, interval: float | None = None) -> dict[str, Any]:
    """Metrics of prediction rows that carry truth columns; unreadable images are left out.

    With ``interval`` (the rows carry its columns) the metrics get an ``intervals`` entry: the
    coverage and the width actually reached (``interval_metrics``); rows with a ``novel`` column, a
    ``novelty`` entry: how many were flagged.
    """
    stats = model.hparams.get("train_stats") or {}
    readable = frame[frame["error"].fillna("") == ""]
    if model.hparams.task == "regression":
        pred = readable[model.names].to_numpy(dtype=np.float64)
        truth = readable[truth_columns(model)].to_numpy(dtype=np.float64)
        metrics = regression_metrics(pred, truth, model.names, stats.get("mean"))
    else:
        truth = [t if isinstance(t, str) else None for t in readable[TRUE_PREFIX + "label"]]
        metrics = classification_metrics(readable["label"].tolist(), truth, model.names, stats.get("counts"))
    if interval is not None:
        metrics["intervals"] = interval_metrics(model, readable, interval)
    if "novel" in readable:  # the model carries a novelty summary (``models.novelty``)
        flagged = int(readable["novel"].astype(str).eq("True").sum())  # bools, or their text from a result file
        metrics["novelty"] = {"images": len(readable), "novel": flagged,
                              "share": flagged / len(readable) if len(readable) else 0.0}
    return metrics


def calibrate_from_predictions(model: PerspectiveModel, predictions: pd.DataFrame) -> dict[str, Any]:
    """The conformal calibration (``models.conformal.calibrate``) of prediction rows with truth columns."""
    readable = predictions[predictions["error"].fillna("") == ""]
    outputs = readable[output_keys(model.hparams.task, model.names)].to_numpy(dtype=np.float64)
    if model.hparams.task == "regression":
        truth = readable[truth_columns(model)].to_numpy(dtype=np.float64)
    else:
        index = {c: i for i, c in enumerate(model.names)}
        truth = np.array([index.get(t, -1) if isinstance(t, str) else -1 for t in readable[TRUE_PREFIX + "label"]])
    return calibrate(outputs, truth, model.hparams.task, model.names)


def interval_metrics(model: PerspectiveModel, readable: pd.DataFrame, level: float) -> dict[str, Any]:
    """Empirical coverage and size of the rows' conformal intervals or class sets against the truth.

    Regression: per target, the share of labelled images whose true score lies in its interval and
    the mean width, overall and split by true score 0 and above 0 (``models.conformal.coverage``).
    Classification: the share of labelled images whose true class is in the set, and the mean set size.
    """
    sizes = calibration_sizes(model.conformal) if getattr(model, "conformal", None) else {}
    if model.hparams.task == "regression":
        targets = {}
        for name in model.names:
            truth = readable[TRUE_PREFIX + name].to_numpy(dtype=np.float64)
            low, high = (readable[column].to_numpy(dtype=np.float64) for column in bound_columns(name))
            targets[name] = {**coverage(truth, low, high), "calibration_images": sizes.get(name)}
        return {"level": level, "targets": targets}
    labelled = readable[readable[TRUE_PREFIX + "label"].map(lambda t: isinstance(t, str))]
    members = [set_members(cell) for cell in labelled[SET_COLUMN]]
    hits = [t in m for t, m in zip(labelled[TRUE_PREFIX + "label"], members)]
    return {"level": level, "n": len(hits), "coverage": float(np.mean(hits)) if hits else None,
            "mean_set_size": float(np.mean([len(m) for m in members])) if members else None,
            "calibration_images": sizes.get("classes")}
