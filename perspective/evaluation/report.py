"""Plots and a self-contained HTML report of prediction rows that carry their truth.

Everything here reads predictions and truths (frames), never a model's internals: the prediction
jobs run the model and hand the numbers over, and ``metrics`` scores them. Plots (PNG, matplotlib's
Agg backend): a grid of random samples with truth and prediction; per target, overlaid histograms of
predictions and labels, predicted-vs-true scatter with the identity line, and residuals against
truth; for classification the confusion matrix (counts and row-normalised) and the most confident
mistakes. A caller may add plots of its own (the saliency section).
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..config import SCORE_PREFIX
from ..data import load_image
from ..errors import NothingDone, UserError
from ..results import atomic_write, csv_float
from .metrics import compute_metrics, interval_table, metrics_table, novelty_note
from .truth import TRUE_PREFIX

if TYPE_CHECKING:
    from ..models.module import PerspectiveModel

log = logging.getLogger(__name__)


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
    return name.removeprefix(SCORE_PREFIX)


def _grid(count: int) -> tuple[int, int]:
    cols = min(4, max(1, count))
    return math.ceil(count / cols), cols


def image_grid(paths: Sequence[str], titles: Sequence[str], load: Callable[[str], Any], title: str) -> bytes:
    """A PNG grid of images (four a row), each titled; an unreadable image still gets its panel."""
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
    plots = {"samples.png": image_grid(frame["path"].iloc[pick].tolist(), titles, load,
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
    plots = {"samples.png": image_grid(labelled["path"].iloc[pick].tolist(), titles, load,
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
        plots["mistakes.png"] = image_grid(wrong["path"].tolist(), titles, load, "Most confident mistakes")
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
    if "novelty" in metrics:
        novelty = metrics["novelty"]
        intervals_html += f"<h2>Novelty</h2>\n<p>{html.escape(novelty_note(novelty['novel'], novelty['images']))}.</p>\n"
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


def thumbnail(path: str):
    """An image at most 320 px on a side, for a grid."""
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
    more_plots: Callable[[pd.DataFrame], dict[str, bytes]] | None = None,
) -> Evaluation:
    """Metrics, plots and the report of prediction rows that carry their ``true_*`` columns.

    ``more_plots`` makes further plots from the readable rows (the saliency section, which needs
    the model); they follow the standard ones. ``outdir`` None writes nothing.
    """
    unread = predictions["error"].fillna("") != ""
    if unread.all():
        raise NothingDone("no image could be read; nothing to evaluate")
    metrics = compute_metrics(model, predictions, interval)
    readable = predictions[~unread]
    if unread.any():
        failed = predictions[unread]
        log.warning("%d image(s) could not be read, left out of the metrics: %s", len(failed),
                    "; ".join(f"{p} ({e})" for p, e in zip(failed["path"][:5], failed["error"][:5])))
    make = regression_plots if model.hparams.task == "regression" else classification_plots
    plots = make(readable, model.names, metrics, thumbnail, samples=samples, seed=seed)
    if more_plots is not None:
        plots.update(more_plots(readable))
    summary = {"images": len(predictions), "unreadable": int(len(predictions) - len(readable)), **(summary or {})}
    written = None
    if outdir is not None:
        written = write_report(outdir, metrics, predictions, plots, dict(model.hparams), summary, title)
    return Evaluation(metrics, metrics_table(metrics), plots, predictions, written)
