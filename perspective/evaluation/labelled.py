"""Labelled rows predicted and reported: the evaluation a training run makes of its test split, and
``perspective evaluate``'s in one process.

``evaluate_frame`` runs a ``Predictor`` over the rows, joins the truth (``truth``), and writes the
metrics, plots and report (``report``); ``saliency_section`` adds Grad-CAM panels (``explain``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pandas as pd

from ..config import EvaluateConfig
from ..errors import UserError
from ..prediction.predictor import Predictor
from .explain import Explainer, explain_image
from .report import Evaluation, report_predictions
from .truth import result_columns, truth_columns, truth_lookup, with_truth

log = logging.getLogger(__name__)


def evaluate_frame(predictor: Predictor, labelled_frame: pd.DataFrame, outdir: str | os.PathLike | None, *,
                   title: str, summary: dict[str, Any] | None = None, batch_size: int = EvaluateConfig.batch_size,
                   workers: int = 0, samples: int = EvaluateConfig.samples, seed: int = 0, progress: bool = True,
                   explain_samples: int = 0) -> Evaluation:
    """Predict every image of ``labelled_frame``, score it against the truth and write the report.

    Args:
        predictor: the loaded model.
        labelled_frame: ``path`` plus truth columns as in ``LabelledData.frame`` (from ``load_truth``).
        outdir: where metrics, predictions, plots and report.html go; None writes nothing.
        title, summary: the report's heading and its data section.
        samples, seed: size and seed of the random sample grid (and of the saliency images).
        explain_samples: a saliency section of this many images (0: none).
    """
    model = predictor.model
    rows = with_truth(predictor.predict_paths(labelled_frame["path"].tolist(), batch_size, workers, progress),
                      truth_lookup(labelled_frame, model), truth_columns(model))
    predictions = pd.DataFrame(list(rows), columns=result_columns(model, True, predictor.interval))
    explained = getattr(predictor, "source_model", model)  # saliency needs gradients: the model in PyTorch
    return report_predictions(model, predictions, outdir, title=title, summary=summary, samples=samples, seed=seed,
                              interval=predictor.interval, more_plots=saliency_section(explained, explain_samples, seed))


def saliency_section(model, count: int, seed: int):
    """The report's saliency plots (``saliency_<n>.png``: Grad-CAM of every score for ``count`` random
    readable images), as ``report_predictions``' ``more_plots``; None for no section.

    Skipped with a log line, not an error, where it cannot run: an exported model, or no grad-cam package.
    """
    if not count:
        return None

    def plots(readable: pd.DataFrame) -> dict[str, bytes]:
        try:
            explainer = Explainer(model)
        except UserError as exc:
            log.info("no saliency section in the report: %s", exc)
            return {}
        chosen = readable.sample(min(count, len(readable)), random_state=seed)["path"]
        return {f"saliency_{i}.png": explain_image(explainer, path) for i, path in enumerate(chosen, 1)}

    return plots
