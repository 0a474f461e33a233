"""The prediction jobs the commands run, each one call: infer (images -> a result file) and evaluate
(labelled images -> metrics and a report). They combine the prediction path, the evaluation and the
explanations, so they sit above all three.

- ``run_inference(InferConfig)``: collect the images, load the model, predict in this process (the
  ``Predictor``'s own loop) or in several (Lightning), rows streaming into part files
  (``parts``) that are merged in input order into the result file (CSV, JSON or parquet); the
  truth joined when labels are found, with its metrics; Grad-CAM images with ``explain``.
- ``run_evaluation(EvaluateConfig)``: the same prediction path on a labelled data set (or one split
  of a training run's), then ``evaluation.report`` writes the metrics, plots and report.html.

The commands parse their flags into the config, call the job and print what it returns; nothing
here parses arguments or prints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .config import EvaluateConfig, InferConfig
from .errors import NothingDone, UserError
from .evaluation.explain import Explainer, check_explainable, write_explanations
from .evaluation.labelled import evaluate_frame, saliency_section
from .evaluation.metrics import calibrate_from_predictions, compute_metrics
from .evaluation.report import Evaluation, report_predictions
from .evaluation.truth import (
    find_labels,
    load_truth,
    result_columns,
    select_split,
    truth_columns,
    truth_for,
    truth_lookup,
    with_truth,
)
from .hardware import prediction_device, process_plan
from .models.checkpoint import store_calibration
from .models.outputs import output_columns
from .prediction.distributed import predict_distributed
from .prediction.inputs import collect_paths
from .prediction.novelty import halves, novelty_summary
from .prediction.parts import Merged, PartStore, merge, predict_local
from .prediction.predictor import Predictor, predictor_for
from .prediction.runtimes import model_for
from .results import ResultWriter, require_pyarrow

log = logging.getLogger(__name__)


@dataclass
class InferenceResult:
    """What ``run_inference`` did: where the rows went, how many, the first ones, and their metrics."""

    checkpoint: str
    output: str
    task: str
    columns: list[str]  # the prediction columns (without the truth)
    counts: Merged = field(default_factory=Merged)
    skipped: int = 0  # images already predicted by the interrupted run that --resume continued
    shown: list[dict[str, Any]] = field(default_factory=list)  # the first rows, for the terminal
    labels: str | None = None  # the labels CSV joined to the rows
    metrics: dict[str, Any] | None = None
    explained: int | None = None  # Grad-CAM images written (None: not asked for)
    is_main: bool = True  # False in the other processes of a multi-process run, which report nothing

    @property
    def predicted(self) -> int:
        return self.counts.rows - self.counts.unreadable


def run_inference(cfg: InferConfig) -> InferenceResult:
    """Predict every image of ``cfg`` (``image``, ``data``, ``list``) into ``cfg.output``.

    Raises ``NothingDone`` when there is no image to predict.
    """
    paths = collect_paths(cfg.image, cfg.data, cfg.recursive, cfg.list)
    if not paths:
        raise NothingDone("no images to predict")
    if cfg.format == "parquet":
        require_pyarrow()
    checkpoint, model = model_for(cfg)
    labels, explicit = find_labels(cfg.labels, cfg.data)
    lookup = truth_for(model, labels, explicit, cfg.data, cfg.label_column)  # a mismatch stops us now
    if cfg.explain:  # before predicting: a missing extra or an exported model stops us now
        check_explainable(model)
    store = PartStore(cfg.output, output_columns(model, cfg.interval))
    plan = process_plan(cfg)
    if plan is None:
        predictor = predictor_for(cfg, model)
        try:
            outcome = predict_local(predictor, paths, store, resume=cfg.resume, result_format=cfg.format,
                                    batch_size=cfg.batch_size, workers=cfg.decoding_workers, progress=not cfg.quiet,
                                    log_every=cfg.log_every)
        except KeyboardInterrupt:  # the rows so far go into the result, as a finished run's would
            generation = max((store.generation(p) for p in store.files()), default=0)
            write_result(store, generation, cfg.output, store.columns, cfg.format)
            raise
    else:
        outcome = predict_distributed(model, paths, store, cfg, plan, resume=cfg.resume, result_format=cfg.format,
                                      log_every=cfg.log_every)
    result = InferenceResult(checkpoint, cfg.output, model.hparams.task, store.columns, skipped=outcome.skipped, labels=labels,
                             is_main=outcome.is_main)
    if not outcome.is_main:
        return result  # the first process merges and reports
    columns = result_columns(model, lookup is not None, cfg.interval)
    rows, result.counts = merge(store, outcome.generation)
    if lookup is not None:
        rows = with_truth(rows, lookup, truth_columns(model))
    scored = []
    with ResultWriter(cfg.output, columns, cfg.format) as out:
        for row in rows:
            out.write(row)
            if len(result.shown) < cfg.show:
                result.shown.append(row)
            if lookup is not None:
                scored.append(row)
    store.clear()
    if result.predicted == 0:
        return result  # the command says that no image could be read
    if cfg.explain:
        result.explained = write_explanations(Explainer(model), paths, cfg.explain, progress=not cfg.quiet)
    if lookup is not None:
        result.metrics = compute_metrics(model, pd.DataFrame(scored, columns=columns), cfg.interval)
    return result


def write_result(store: PartStore, generation: int, path: str, columns: list[str], result_format: str) -> None:
    """The rows the parts hold so far, as the result file (an interrupted run keeps what it predicted)."""
    rows, _ = merge(store, generation)
    with ResultWriter(path, columns, result_format) as out:
        for row in rows:
            out.write(row)
    store.clear()


@dataclass
class EvaluationRun:
    """What ``run_evaluation`` did: the evaluation, of which checkpoint, on how many images."""

    evaluation: Evaluation
    checkpoint: str
    images: int
    calibrated: int | None = None  # images of the calibration stored with ``calibrate``
    novelty: dict[str, int] | None = None  # the novelty summary stored with ``calibrate``: its bank and calibration


def run_evaluation(cfg: EvaluateConfig) -> EvaluationRun | None:
    """Evaluate ``cfg.checkpoint`` on ``cfg.data`` (or one split of it) into ``cfg.output``.

    Returns None in the other processes of a multi-process run (the first one writes the report).
    With ``calibrate``, the checkpoint then stores a conformal calibration made from these images, and a
    novelty summary (half of them its bank, half its calibration).
    """
    if cfg.calibrate and cfg.checkpoint is None:
        raise UserError("--calibrate writes into the checkpoint: name it with -c (the shipped model is calibrated "
                        "already)")
    checkpoint, model = model_for(cfg)
    labelled = load_truth(model, cfg.data, cfg.images, cfg.label_column)
    frame = select_split(labelled, cfg.split, model, cfg.seed)
    summary = {"data": labelled.source, "split": cfg.split, "checkpoint": checkpoint}
    title = f"Evaluation of {checkpoint}"
    plan = process_plan(cfg)
    if plan is None:
        predictor = predictor_for(cfg, model)
        evaluation = evaluate_frame(predictor, frame, cfg.output, title=title, summary=summary,
                                    batch_size=cfg.batch_size, workers=cfg.decoding_workers, samples=cfg.samples,
                                    progress=not cfg.quiet, explain_samples=cfg.explain_samples)
    else:
        predictions = predict_frame_in_processes(model, frame, cfg, plan)
        if predictions is None:
            return None
        evaluation = report_predictions(model, predictions, cfg.output, title=title, summary=summary,
                                        samples=cfg.samples, interval=cfg.interval,
                                        more_plots=saliency_section(model, cfg.explain_samples, 0))
    run = EvaluationRun(evaluation, checkpoint, len(frame))
    if cfg.calibrate:
        calibration = calibrate_from_predictions(model, evaluation.predictions)
        novelty = calibrate_novelty(cfg, model, frame)
        store_calibration(checkpoint, calibration, novelty)
        run.calibrated = calibration["n"]
        if novelty is not None:
            run.novelty = {"bank": len(novelty["bank"]), "calibration": len(novelty["calibration"])}
    return run


def calibrate_novelty(cfg: EvaluateConfig, model, frame: pd.DataFrame) -> dict[str, Any] | None:
    """``evaluate --calibrate``'s novelty summary: half the photos (seeded) for the bank, half to calibrate it."""
    if not getattr(model, "runs_in_torch", True):
        return None
    bank, held = halves(frame["path"].tolist(), cfg.seed or 0)
    return novelty_summary(Predictor(model, device=prediction_device(cfg), precision=cfg.precision), bank, held,
                           cfg.batch_size, cfg.decoding_workers, cfg.seed or 0)


def predict_frame_in_processes(model, frame: pd.DataFrame, cfg: EvaluateConfig, plan: dict[str, Any]
                               ) -> pd.DataFrame | None:
    """The predictions (with truth) of several processes through Lightning, in the first process; None in the others.

    The processes stream their rows into part files in the output folder (``predictions.csv.parts/``),
    merged here in the order of the data.
    """
    store = PartStore(Path(cfg.output) / "predictions.csv", output_columns(model, cfg.interval))
    outcome = predict_distributed(model, frame["path"].tolist(), store, cfg, plan, resume=False, result_format="csv",
                                  log_every=InferConfig.log_every)
    if not outcome.is_main:
        return None
    rows, _ = merge(store, outcome.generation)
    rows = with_truth(rows, truth_lookup(frame, model), truth_columns(model))
    predictions = pd.DataFrame(list(rows), columns=result_columns(model, True, cfg.interval))
    store.clear()
    return predictions
