"""Metrics beside trivial baselines, plots and a self-contained HTML report.

Everything here reads predictions and truths (arrays and frames), never a model: ``evaluation.py``
runs the model and hands the numbers over. Metrics come from torchmetrics, so a report says what the
training logs say.

Baselines, so that a number means something:

- regression: predict the training mean of each target for every image (``train_stats`` stored in
  the checkpoint); without training statistics the evaluated set's own mean is used and the report
  says so. R² of that baseline is about 0 by construction; a model must beat it clearly.
- classification: always answer the training set's majority class (``majority``), and guess at
  random with the training class frequencies (``prior_random``, the expected accuracy
  ``sum_c p_train(c) * p_eval(c)``).

Plots (PNG, matplotlib's Agg backend): a grid of random samples with truth and prediction; per
target, overlaid histograms of predictions and labels, predicted-vs-true scatter with the identity
line, and residuals against truth; for classification the confusion matrix (counts and
row-normalised) and the most confident mistakes.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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

from .errors import UserError
from .results import atomic_write, csv_float

TRUE_PREFIX = "true_"


# --- metrics ----------------------------------------------------------------------------------


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
                             "images": [intervals["n"]]}, index=[f"sets at {level:g}"]).astype(
                                 {"coverage": float, "mean_set_size": float})
    rows = {}
    for name, c in intervals["targets"].items():
        zero, above = c["truth_zero"], c["truth_above_zero"]
        rows[name] = [c["coverage"], c["width"], zero["coverage"], zero["width"], above["coverage"], above["width"]]
    columns = [f"coverage@{level:g}", "width", "coverage|true=0", "width|true=0", "coverage|true>0", "width|true>0"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).astype(float)


def format_table(table: pd.DataFrame) -> str:
    if "support" in table.columns:  # counts print as counts
        table = table.assign(support=["-" if pd.isna(v) else str(int(v)) for v in table["support"]])
    return table.to_string(float_format=lambda v: f"{v:.4f}", na_rep="-")


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


# --- plots ------------------------------------------------------------------------------------


def _figure_png(draw: Callable[[Any], None], size: tuple[float, float], layout: str | None = "constrained") -> bytes:
    """Draw with ``draw(figure)`` on a fresh Agg figure and return the PNG bytes.

    ``layout=None`` skips the constrained layout, which costs about a second for a grid of 16
    image panels; ``draw`` then spaces the panels itself.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100, layout=layout)
    draw(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _short(name: str) -> str:
    return name.removeprefix("perspective_score_")


def _grid(count: int) -> tuple[int, int]:
    cols = min(4, max(1, count))
    return math.ceil(count / cols), cols


def _image_grid(paths: Sequence[str], titles: Sequence[str], load: Callable[[str], Any], title: str) -> bytes:
    rows, cols = _grid(len(paths))

    height = 2.7 * rows + 0.5

    def draw(fig):
        fig.suptitle(title)
        # image panels need no tick labels, so fixed margins do what the constrained layout would, faster
        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.6 / height, wspace=0.1,
                            hspace=0.45)
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, path, text in zip(axes.flat, paths, titles):
            try:
                ax.imshow(load(path))
            except Exception:  # noqa: BLE001 - an unreadable image still gets its panel
                ax.text(0.5, 0.5, "unreadable", ha="center", va="center")
            ax.set_title(text, fontsize=8)

    return _figure_png(draw, (3.2 * cols, height), layout=None)


def _per_target(names: Sequence[str], panel: Callable[[Any, int], None], title: str) -> bytes:
    rows, cols = _grid(len(names))
    width, height = 3.6 * cols, 3.0 * rows + 0.5

    def draw(fig):
        fig.suptitle(title)
        # margins fixed in inches (tick labels, axis labels, panel titles) instead of the constrained
        # layout, which measured every text of 8 panels: 1.3 s of a test report's 2.2 s per figure
        fig.subplots_adjust(left=0.65 / width, right=1 - 0.2 / width, bottom=0.55 / height, top=1 - 0.8 / height,
                            wspace=0.35, hspace=0.5)
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax in axes.flat[len(names):]:
            ax.axis("off")
        for j, ax in enumerate(axes.flat[: len(names)]):
            ax.tick_params(labelsize=7)
            panel(ax, j)

    return _figure_png(draw, (width, height), layout=None)


def regression_plots(
    frame: pd.DataFrame, names: Sequence[str], metrics: dict[str, Any], load: Callable[[str], Any],
    samples: int = 16, seed: int = 0,
) -> dict[str, bytes]:
    """PNG bytes by file name: samples, histograms, scatter and residual plots.

    ``frame`` has ``path``, one prediction column per target and a ``true_<target>`` column each.
    """
    pred = frame[list(names)].to_numpy(dtype=np.float64)
    truth = frame[[TRUE_PREFIX + n for n in names]].to_numpy(dtype=np.float64)
    shown = list(names)[:2]
    pick = np.random.default_rng(seed).permutation(len(frame))[:samples]
    titles = ["\n".join(f"{_short(n)}: true {frame[TRUE_PREFIX + n].iloc[i]:.2f} pred {frame[n].iloc[i]:.2f}"
                        for n in shown) for i in pick]
    plots = {"samples.png": _image_grid(frame["path"].iloc[pick].tolist(), titles, load,
                                        f"{len(pick)} random samples (true and predicted scores)")} if len(pick) else {}

    def histogram(ax, j):
        bins = np.linspace(min(np.nanmin(truth[:, j]), np.nanmin(pred[:, j])),
                           max(np.nanmax(truth[:, j]), np.nanmax(pred[:, j])) + 1e-9, 31)
        ax.hist(truth[:, j][np.isfinite(truth[:, j])], bins=bins, alpha=0.5, label="labels")
        ax.hist(pred[:, j][np.isfinite(pred[:, j])], bins=bins, alpha=0.5, label="predictions")
        ax.set_title(_short(names[j]), fontsize=9)
        ax.legend(fontsize=7)

    def scatter(ax, j):
        ok = np.isfinite(truth[:, j]) & np.isfinite(pred[:, j])
        ax.scatter(truth[ok, j], pred[ok, j], s=6, alpha=0.5)
        lo, hi = min(truth[ok, j].min(initial=0), pred[ok, j].min(initial=0)), max(
            truth[ok, j].max(initial=1), pred[ok, j].max(initial=1))
        ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1)
        r2 = metrics["targets"][names[j]]["r2"]
        ax.set_title(f"{_short(names[j])}: R² {r2:.3f}" if r2 is not None else _short(names[j]), fontsize=9)
        ax.set_xlabel("true", fontsize=8)
        ax.set_ylabel("predicted", fontsize=8)

    def residuals(ax, j):
        ok = np.isfinite(truth[:, j]) & np.isfinite(pred[:, j])
        ax.scatter(truth[ok, j], pred[ok, j] - truth[ok, j], s=6, alpha=0.5)
        ax.axhline(0, color="grey", linewidth=1)
        ax.set_title(_short(names[j]), fontsize=9)
        ax.set_xlabel("true", fontsize=8)
        ax.set_ylabel("predicted - true", fontsize=8)

    plots["histograms.png"] = _per_target(names, histogram, "Distribution of labels and predictions")
    plots["scatter.png"] = _per_target(names, scatter, "Predicted against true")
    plots["residuals.png"] = _per_target(names, residuals, "Residuals against truth")
    return plots


def classification_plots(
    frame: pd.DataFrame, classes: Sequence[str], metrics: dict[str, Any], load: Callable[[str], Any],
    samples: int = 16, seed: int = 0,
) -> dict[str, bytes]:
    """PNG bytes by file name: samples, confusion matrices, most confident mistakes.

    ``frame`` has ``path``, ``label``, ``confidence`` and ``true_label``.
    """
    labelled = frame[frame[TRUE_PREFIX + "label"].isin(classes)].reset_index(drop=True)
    pick = np.random.default_rng(seed).permutation(len(labelled))[:samples]
    titles = [f"true {labelled[TRUE_PREFIX + 'label'].iloc[i]}\npred {labelled['label'].iloc[i]} "
              f"({labelled['confidence'].iloc[i]:.2f})" for i in pick]
    plots = {"samples.png": _image_grid(labelled["path"].iloc[pick].tolist(), titles, load,
                                        f"{len(pick)} random samples (true and predicted class)")} if len(pick) else {}
    counts = np.asarray(metrics["confusion_matrix"], dtype=np.float64)
    normalised = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)

    def draw(fig):
        for ax, matrix, title, fmt in zip(fig.subplots(1, 2), (counts, normalised), ("counts", "row-normalised"),
                                          ("{:.0f}", "{:.2f}")):
            ax.imshow(matrix, cmap="Blues", vmin=0)
            ax.set_title(f"Confusion matrix ({title})", fontsize=10)
            ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
            ax.set_yticks(range(len(classes)), classes, fontsize=8)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            top = matrix.max() if matrix.size else 0
            for (i, j), value in np.ndenumerate(matrix):
                ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=7,
                        color="white" if top and value > top / 2 else "black")

    side = max(4.0, 0.55 * len(classes) + 2)
    plots["confusion_matrix.png"] = _figure_png(draw, (2 * side, side))
    wrong = labelled[labelled["label"] != labelled[TRUE_PREFIX + "label"]].sort_values("confidence", ascending=False)
    wrong = wrong.head(samples)
    if len(wrong):
        titles = [f"true {t}\npred {p} ({c:.2f})" for t, p, c in
                  zip(wrong[TRUE_PREFIX + "label"], wrong["label"], wrong["confidence"])]
        plots["mistakes.png"] = _image_grid(wrong["path"].tolist(), titles, load, "Most confident mistakes")
    return plots


# --- files ------------------------------------------------------------------------------------


SALIENCY_NOTE = ("saliency: where each score comes from, Grad-CAM of that output over the image (red: the "
                 "regions that raised it most); a random image, the predicted score in each title")
PLOT_NOTES = {
    "samples.png": "random samples with their true and predicted values (fixed seed)",
    "histograms.png": "distribution of predictions against the distribution of labels, per target",
    "scatter.png": "predicted against true with the identity line; R² in each title",
    "residuals.png": "prediction error against the true value: a slope means the model shrinks towards the mean",
    "confusion_matrix.png": "counts and row-normalised confusion matrix (rows: true class)",
    "mistakes.png": "the wrong predictions the model was most sure of",
}


def render_html(
    title: str, metrics: dict[str, Any], plots: dict[str, bytes], hparams: dict[str, Any], summary: dict[str, Any]
) -> str:
    """One self-contained page: every plot inlined as a data URI, no script, no external link."""
    table = metrics_table(metrics)
    table_html = table.to_html(float_format=lambda v: f"{v:.4f}", na_rep="-", border=0, classes="metrics")
    figures = "\n".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{html.escape(PLOT_NOTES.get(name, SALIENCY_NOTE if name.startswith('saliency_') else name))}"
        "</figcaption></figure>"
        for name, png in plots.items()
    )
    shown_hparams = {k: v for k, v in hparams.items() if k != "train_stats"}

    def dl(items: dict[str, Any]) -> str:
        return "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(json.dumps(v, default=str))}</dd>"
                       for k, v in items.items())

    baseline_note = metrics["baseline"].get("source", "")
    intervals_html = ""
    if "intervals" in metrics:
        intervals_html = ("<h2>Conformal intervals</h2>\n<p>The share of images whose true value lies in its "
                          "interval (or whose class is in its set), and the mean width, against the coverage "
                          "asked for.</p>\n" + interval_table(metrics["intervals"]).to_html(
                              float_format=lambda v: f"{v:.4f}", na_rep="-", border=0, classes="metrics") + "\n")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
table.metrics {{ border-collapse: collapse; font-variant-numeric: tabular-nums; }}
table.metrics td, table.metrics th {{ padding: 2px 10px; text-align: right; border-bottom: 1px solid #ddd; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }} figcaption {{ color: #555; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: 2px 16px; }} dt {{ font-weight: 600; }}
dd {{ margin: 0; font-family: monospace; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Metrics</h2>
<p>Baseline: {html.escape(baseline_note)}.</p>
{table_html}
{intervals_html}<h2>Plots</h2>
{figures}
<h2>Data</h2>
<dl>{dl(summary)}</dl>
<h2>Checkpoint hyperparameters</h2>
<dl>{dl(shown_hparams)}</dl>
</body></html>
"""


def write_report(
    outdir: str | os.PathLike, metrics: dict[str, Any], predictions: pd.DataFrame, plots: dict[str, bytes],
    hparams: dict[str, Any], summary: dict[str, Any], title: str,
) -> Path:
    """Write metrics.json, metrics.csv, predictions.csv, the PNGs and report.html into ``outdir``."""
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out}: a file is in the way; give a folder for the report")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"-o {out}: cannot create the folder ({exc.strerror or exc})") from None
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write(out / "metrics.csv", metrics_table(metrics).to_csv(index_label="name"))
    atomic_write(out / "predictions.csv", predictions.to_csv(index=False, float_format=csv_float))
    for name, png in plots.items():
        atomic_write(out / name, png)
    atomic_write(out / "report.html", render_html(title, metrics, plots, hparams, summary))
    return out
