"""Which labels look wrong: each row judged against the prediction of a model that never saw it.

A model cannot judge the labels it trained on (it learns them, errors included), so the data is cut
into k folds; k short training runs each leave one fold out and predict it. Every row then has a
prediction from a model that never saw its label.

- Scores (regression): per target, how unusual the label's error is among the errors the model
  makes at that predicted level (a conformal p-value in the groups the intervals use, with a
  continuous tail, ``models.conformal.p_values``); a row scores as its most unusual target,
  corrected for the number of targets it has. audit.csv names that suspect field with its given
  value, the predicted one and the typical error there.
- Classes: cleanlab's label-quality score of the given class from the predicted probabilities
  (``cleanlab.rank.get_label_quality_scores``).

The rows are written worst first with a contact sheet of the worst ones, for a person to look at.
Nothing is changed in the data.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import FOLDS, LABELS_CSV, AuditConfig, LabelStudioConfig, TrainConfig
from ..data import LabelledData, split_data
from ..errors import UserError
from ..evaluation.explain import short_name
from ..evaluation.report import image_grid, thumbnail
from ..labelling import audit_tasks, connect, send
from ..models.checkpoint import load_checkpoint, store_calibration, weights_info
from ..models.conformal import calibrate, p_values
from ..models.outputs import output_keys
from ..prediction.predictor import Predictor
from ..results import atomic_write
from ..training import decoding_threads, read_training_data, train_on, trains_on_cpu

log = logging.getLogger(__name__)

AUDIT_CSV = "audit.csv"
CONTACT_SHEET = "worst.png"
PROJECT = "perspective audit"  # the Label Studio project of --label-studio without --project
SHEET_ROWS = 16


def require_cleanlab():
    """The ``cleanlab`` module, or a one-line error naming what installs it."""
    try:
        import cleanlab
    except ImportError:
        raise UserError("the label audit needs cleanlab: pip install 'perspective[audit]'") from None
    return cleanlab


def fold_assignment(count: int, folds: int, seed: int) -> np.ndarray:
    """Each row's fold, 0 .. folds - 1, in a fixed random order (as even as the count allows)."""
    order = np.random.default_rng(seed).permutation(count)
    assignment = np.empty(count, dtype=np.int64)
    assignment[order] = np.arange(count) % folds
    return assignment


def out_of_fold_outputs(cfg: TrainConfig, data: LabelledData, folds: int, validate_on_held: bool = False) -> np.ndarray:
    """``(n, k)`` predictions (scores or class probabilities) of each row by the run that left its fold out.

    Each fold's run picks its best epoch on a validation split of its own training part, or with
    ``validate_on_held`` on the fold it leaves out (trained on all the rest, as a model picks its
    epoch on its validation split: ``folds_like``). A row whose image could not be read gets NaN.
    """
    frame = data.frame.reset_index(drop=True)
    assignment = fold_assignment(len(frame), folds, cfg.seed)
    outputs = np.full((len(frame), len(data.names)), np.nan)
    # each audit's runs in folders of their own, also beside another audit started in the same second
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    for fold in range(folds):
        held = frame[assignment == fold]
        rest = LabelledData(frame[assignment != fold], data.task, data.names, data.source)
        if validate_on_held:
            train_part, val_part, empty = rest.frame.reset_index(drop=True), held.reset_index(drop=True), held.iloc[:0]
        else:
            train_part, val_part, empty = split_data(rest, cfg.val_fraction, 0.0, cfg.seed)
        if len(val_part) == 0 or len(train_part) < 2:
            raise UserError(f"{data.source}: too few images for {folds} folds ({len(frame)}); use fewer --folds")
        log.info("audit fold %d of %d: training on %d images, predicting %d", fold + 1, folds, len(train_part),
                 len(held))
        name = f"{cfg.run_name or 'audit'}-{stamp}-fold{fold}"
        run = train_on(replace(cfg, test=False, run_name=name), data, (train_part, val_part, empty))
        predictor = Predictor(load_checkpoint(run.best_checkpoint), "cpu" if trains_on_cpu(cfg) else "auto",
                              tta=cfg.tta)
        rows = predictor.predict_paths(held["path"].tolist(), cfg.batch_size, decoding_threads(cfg),
                                       progress=not cfg.quiet)
        columns = output_keys(data.task, data.names)
        for index, row in zip(held.index, rows):
            if not row["error"]:
                outputs[index] = [row[c] for c in columns]
        # a fold's model has done its work once it has predicted its fold: its checkpoints (several
        # hundred MB for each of k runs) are removed, its logs kept
        folder = Path(run.best_checkpoint).parent
        if folder.name == name:
            shutil.rmtree(folder, ignore_errors=True)
    return outputs


@dataclass
class Suspicion:
    """Each row's score and its suspect: ``quality`` (low: the label is unlikely for this photo; NaN for
    an unpredicted row), the suspect target (or ``label``), and for scores the typical error there."""

    quality: np.ndarray
    suspect: list[str | None]
    typical_error: np.ndarray


def label_quality(data: LabelledData, outputs: np.ndarray) -> Suspicion:
    """How likely each row's label is, given the out-of-fold prediction of a model that never saw it.

    Classes: cleanlab's label-quality score of the given class from the predicted probabilities.
    Scores: per target, the p-value of the label's error among the errors the model makes at that
    predicted level (``models.conformal.p_values``: the groups the intervals use, a continuous tail,
    so no block of ties); a row scores as its most unusual target, times the number of targets it
    has (Bonferroni: a row with eight targets gets eight chances to look unusual by luck), at most 1.
    A wrong value in one field is the usual label error, and it is judged on its own scale: a
    target the model predicts closely makes a small slip stand out, a hard one needs a larger one.
    """
    frame = data.frame.reset_index(drop=True)
    predicted = ~np.isnan(outputs).any(axis=1)
    n = len(frame)
    quality, typical = np.full(n, np.nan), np.full(n, np.nan)
    if data.task == "classification":
        require_cleanlab()
        from cleanlab.rank import get_label_quality_scores

        index = {c: i for i, c in enumerate(data.names)}
        labels = frame["label"].map(index).to_numpy()
        probs = outputs[predicted] / outputs[predicted].sum(axis=1, keepdims=True)
        quality[predicted] = get_label_quality_scores(labels[predicted], probs)
        return Suspicion(quality, ["label" if ok else None for ok in predicted], typical)
    per_target = np.full((n, len(data.names)), np.nan)
    typical_per_target = np.full((n, len(data.names)), np.nan)
    for j, name in enumerate(data.names):
        labelled = predicted & frame[name].notna().to_numpy()
        if labelled.sum() >= 2:
            errors = np.abs(frame.loc[labelled, name].to_numpy(dtype=float) - outputs[labelled, j])
            per_target[labelled, j], typical_per_target[labelled, j] = p_values(outputs[labelled, j], errors)
    judged = ~np.isnan(per_target).all(axis=1)
    worst = np.nanargmin(np.where(np.isnan(per_target), np.inf, per_target), axis=1)
    rows = np.arange(n)
    tested = (~np.isnan(per_target)).sum(axis=1)
    quality[judged] = np.minimum(1.0, per_target[rows, worst] * tested)[judged]
    typical[judged] = typical_per_target[rows, worst][judged]
    suspect = [data.names[w] if ok else None for w, ok in zip(worst, judged)]
    return Suspicion(quality, suspect, typical)


def audit_table(data: LabelledData, outputs: np.ndarray, suspicion: Suspicion) -> pd.DataFrame:
    """The rows worst first: the score, the suspect field with its given and predicted value (and, for
    scores, the typical error there), every target's given and predicted value, the path."""
    frame = data.frame.reset_index(drop=True)
    table: dict[str, Any] = {"filename": [os.path.basename(p) for p in frame["path"]],
                             "label_quality": suspicion.quality, "suspect": suspicion.suspect}
    if data.task == "classification":
        best = np.where(np.isnan(outputs).any(axis=1), -1, np.nan_to_num(outputs).argmax(axis=1))
        table["given"] = frame["label"]
        table["predicted"] = [data.names[b] if b >= 0 else None for b in best]
        table["predicted_probability"] = np.round(np.nan_to_num(outputs).max(axis=1), 6)
    else:
        column = {name: j for j, name in enumerate(data.names)}
        rows = range(len(frame))
        table["given"] = [frame.at[i, s] if s else None for i, s in zip(rows, suspicion.suspect)]
        table["predicted"] = [round(float(outputs[i, column[s]]), 6) if s else None for i, s in zip(rows, suspicion.suspect)]
        table["typical_error"] = np.round(suspicion.typical_error, 6)
        for j, name in enumerate(data.names):
            table[name] = frame[name]
            table[f"predicted_{name}"] = np.round(outputs[:, j], 6)
    table["path"] = frame["path"]
    result = pd.DataFrame(table)
    order = np.lexsort((np.arange(len(result)), np.nan_to_num(suspicion.quality, nan=np.inf)))
    return result.iloc[order].reset_index(drop=True)


def learnt_these_labels(info: dict[str, Any], source: str) -> bool:
    """Whether a ``--weights`` checkpoint (its ``weights_info``) was trained on the data at ``source``.

    Its fold runs would then start from a model that learnt every row's label, wrong ones included
    (a checkpoint of the same outputs starts them whole: ``training.run.kept_head``).
    """
    trained_on = (info.get("data_config") or {}).get("source")

    def labels_file(path: str) -> str:  # a folder's labels.csv, as the data reader records it
        inside = os.path.join(path, LABELS_CSV)
        return os.path.realpath(inside if os.path.isfile(inside) else path)

    return bool(trained_on) and labels_file(trained_on) == labels_file(source)


def check_same_outputs(model, data: LabelledData) -> None:
    if model.hparams.task != data.task or list(model.names) != list(data.names):
        raise UserError(f"--calibrate: the checkpoint predicts {', '.join(model.names)}; the data has "
                        f"{', '.join(data.names)}")


def folds_like(calibration: dict[str, Any] | None, rows: int) -> int:
    """As many folds as make each fold's run train on as many images as the model whose ``calibration``
    came from its validation split: every labelled row over the validation images (at least 2).

    Cross-conformal calibration (CV+) stands in for the model's own validation errors only if the
    fold models are like it: fold models trained on fewer images err more and the intervals
    over-cover (5 folds of 360 images, each run training on 230 against the model's 300: 0.90-0.99
    at 0.9), trained on more they under-cover.
    """
    if not calibration:
        raise UserError("--calibrate: the checkpoint has no conformal calibration to size the folds by; "
                        "give --folds")
    return max(2, round(rows / max(1, int(calibration["n"]))))


def calibrate_out_of_fold(data: LabelledData, outputs: np.ndarray, checkpoint: str | os.PathLike) -> int:
    """Store in ``checkpoint`` a conformal calibration from every row's out-of-fold error; the images it rests on.

    A model's own validation split is small on small data (60 images gave coverage 0.84-0.95 at
    0.9); the k fold models' errors cover every labelled row (the cross-conformal idea of CV+,
    Barber et al. 2021), judged here on the model trained on all of them.
    """
    frame = data.frame.reset_index(drop=True)
    predicted = ~np.isnan(outputs).any(axis=1)
    if data.task == "regression":
        truth = frame[data.names].to_numpy(dtype=np.float64)[predicted]
    else:
        index = {c: i for i, c in enumerate(data.names)}
        truth = frame["label"].map(index).fillna(-1).to_numpy(dtype=np.int64)[predicted]
    calibration = calibrate(outputs[predicted], truth, data.task, data.names)
    calibration["method"] += ", out of fold (audit)"
    store_calibration(checkpoint, calibration)
    log.info("conformal calibration from %d out-of-fold errors stored in %s", int(predicted.sum()), checkpoint)
    return int(predicted.sum())


def contact_sheet(table: pd.DataFrame, task: str, names: list[str], rows: int = SHEET_ROWS) -> bytes:
    """A PNG grid of the worst ``rows``: each image titled with its score, the given and the predicted value."""
    worst = table.head(rows)
    titles = []
    for _, row in worst.iterrows():
        if task == "classification":
            titles.append(f"{row['label_quality']:.2g}: given {row['given']}, predicted {row['predicted']}")
        elif isinstance(row["suspect"], str):
            titles.append(f"{row['label_quality']:.2g}: {short_name(row['suspect'])} given {row['given']:.2f}, "
                          f"predicted {row['predicted']:.2f}")
        else:
            titles.append("not predicted")
    return image_grid(worst["path"].tolist(), titles, thumbnail, "worst labels first (label quality: given, predicted)")


def run_audit(cfg: TrainConfig, folds: int | None = AuditConfig.folds, output: str | os.PathLike = AuditConfig.output,
              calibrate_model: str | os.PathLike | None = None,
              send_to: LabelStudioConfig | None = None, count: int = AuditConfig.count) -> tuple[pd.DataFrame, int]:
    """Audit ``cfg``'s data: ``output/audit.csv`` (worst first) and ``output/worst.png``; (the table, the folds).

    ``calibrate_model``: a checkpoint of the same targets or classes, trained on this data, whose
    conformal calibration is replaced by one from the out-of-fold errors of every row
    (``calibrate_out_of_fold``); each fold's run is then shaped like the model's own (``folds_like``,
    unless ``folds`` is given) and picks its epoch on the fold it leaves out.
    ``folds`` None: ``FOLDS``, or with ``calibrate_model`` ``folds_like``.
    ``send_to`` with a ``label_studio`` address: the worst ``count`` rows become tasks of a Label Studio project,
    each with its given label and the out-of-fold models' answer as pre-annotations (``table.attrs["sent"]``).
    """
    if folds is not None and folds < 2:
        raise UserError(f"--folds must be at least 2, not {folds}")
    studio = None
    if send_to is not None and send_to.label_studio:  # a wrong address or token stops us before any training
        studio = connect(send_to.label_studio, send_to.label_studio_key, send_to.document_root)
    data = read_training_data(cfg)
    if learnt_these_labels(weights_info(cfg.weights), data.source):
        log.warning("--weights %s was trained on %s: every fold run starts from a model that has seen the labels "
                    "it is to judge, so wrong ones look right; start from its backbone or from other weights",
                    cfg.weights, data.source)
    if calibrate_model is not None:
        model = load_checkpoint(calibrate_model)
        check_same_outputs(model, data)  # before any fold trains
        if folds is None:
            folds = folds_like(model.conformal, len(data.frame))
    if data.task == "classification":
        require_cleanlab()
    folds = folds or FOLDS
    outputs = out_of_fold_outputs(cfg, data, folds, validate_on_held=calibrate_model is not None)
    if calibrate_model is not None:
        calibrate_out_of_fold(data, outputs, calibrate_model)
    table = audit_table(data, outputs, label_quality(data, outputs))
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / AUDIT_CSV, table.to_csv(index=False))
    atomic_write(out / CONTACT_SHEET, contact_sheet(table, data.task, list(data.names)))
    if studio is not None:
        title = send_to.project or PROJECT
        worst = table.head(count)
        tasks = audit_tasks(studio, worst, data.task, list(data.names), f"out-of-fold models ({folds} folds)")
        folder = os.path.commonpath([os.path.dirname(p) for p in worst["path"]])
        table.attrs["sent"] = (title, *send(studio, title, data.task, list(data.names), tasks, folder))
    return table, folds


if __name__ == "__main__":
    raise SystemExit("perspective.trust.audit is the audit's library module; run the command: perspective audit -h")
