"""Which labels look wrong: out-of-fold predictions ranked by cleanlab's label-quality scores.

A model cannot judge the labels it trained on (it learns them, errors included), so the data is cut
into k folds; k short training runs each leave one fold out and predict it. Every row then has a
prediction from a model that never saw its label. cleanlab scores how well each given label agrees
with that prediction (``cleanlab.rank.get_label_quality_scores`` for classes, from the predicted
probabilities; ``cleanlab.regression.rank.get_label_quality_scores`` per regression target, a row
scoring as its worst target), and the rows are written worst first with a contact sheet of the
worst ones, for a person to look at. Nothing is changed in the data.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import AuditConfig, TrainConfig
from ..data import LabelledData, split_data
from ..errors import UserError
from ..evaluation.report import image_grid, thumbnail
from ..models.checkpoint import load_checkpoint
from ..models.outputs import output_keys
from ..prediction.predictor import Predictor
from ..results import atomic_write
from ..training import decoding_threads, read_training_data, train, trains_on_cpu
from .explain import short_name

log = logging.getLogger(__name__)

AUDIT_CSV = "audit.csv"
CONTACT_SHEET = "worst.png"
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


def out_of_fold_outputs(cfg: TrainConfig, data: LabelledData, folds: int) -> np.ndarray:
    """``(n, k)`` predictions (scores or class probabilities) of each row by the run that left its fold out.

    A row whose image could not be read gets NaN.
    """
    frame = data.frame.reset_index(drop=True)
    assignment = fold_assignment(len(frame), folds, cfg.seed)
    outputs = np.full((len(frame), len(data.names)), np.nan)
    stamp = time.strftime("%Y%m%d-%H%M%S")  # each audit's runs in folders of their own
    for fold in range(folds):
        held = frame[assignment == fold]
        rest = LabelledData(frame[assignment != fold], data.task, data.names, data.source)
        train_part, val_part, empty = split_data(rest, cfg.val_fraction, 0.0, cfg.seed)
        if len(val_part) == 0 or len(train_part) < 2:
            raise UserError(f"{data.source}: too few images for {folds} folds ({len(frame)}); use fewer --folds")
        log.info("audit fold %d of %d: training on %d images, predicting %d", fold + 1, folds, len(train_part),
                 len(held))
        run = train(replace(cfg, test=False, run_name=f"{cfg.run_name or 'audit'}-{stamp}-fold{fold}"),
                    prepared=(data, (train_part, val_part, empty)))
        predictor = Predictor(load_checkpoint(run.best_checkpoint), "cpu" if trains_on_cpu(cfg) else "auto",
                              tta=cfg.tta)
        rows = predictor.predict_paths(held["path"].tolist(), cfg.batch_size, decoding_threads(cfg),
                                       progress=not cfg.quiet)
        columns = output_keys(data.task, data.names)
        for index, row in zip(held.index, rows):
            if not row["error"]:
                outputs[index] = [row[c] for c in columns]
    return outputs


def label_quality(data: LabelledData, outputs: np.ndarray) -> np.ndarray:
    """cleanlab's label-quality score of each row in [0, 1] (low: the label disagrees); NaN where unpredicted."""
    require_cleanlab()
    frame = data.frame.reset_index(drop=True)
    predicted = ~np.isnan(outputs).any(axis=1)
    scores = np.full(len(frame), np.nan)
    if data.task == "classification":
        from cleanlab.rank import get_label_quality_scores

        index = {c: i for i, c in enumerate(data.names)}
        labels = frame["label"].map(index).to_numpy()
        probs = outputs[predicted] / outputs[predicted].sum(axis=1, keepdims=True)
        scores[predicted] = get_label_quality_scores(labels[predicted], probs)
        return scores
    from cleanlab.regression.rank import get_label_quality_scores

    per_target = np.full((len(frame), len(data.names)), np.nan)
    for j, name in enumerate(data.names):
        labelled = predicted & frame[name].notna().to_numpy()
        if labelled.sum() >= 2:
            per_target[labelled, j] = get_label_quality_scores(frame.loc[labelled, name].to_numpy(dtype=float),
                                                                outputs[labelled, j])
    worst = np.nanmin(np.where(np.isnan(per_target), np.inf, per_target), axis=1)
    scores[predicted] = np.where(np.isinf(worst[predicted]), np.nan, worst[predicted])
    return scores


def audit_table(data: LabelledData, outputs: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """The rows worst first: ``filename``, ``label_quality``, the given label or targets, the out-of-fold prediction."""
    frame = data.frame.reset_index(drop=True)
    table: dict[str, Any] = {"filename": [os.path.basename(p) for p in frame["path"]],
                             "label_quality": np.round(scores, 6)}
    if data.task == "classification":
        table["label"] = frame["label"]
        best = np.where(np.isnan(outputs).any(axis=1), -1, np.nan_to_num(outputs).argmax(axis=1))
        table["predicted"] = [data.names[b] if b >= 0 else None for b in best]
        table["predicted_probability"] = np.round(np.nan_to_num(outputs).max(axis=1), 6)
    else:
        for j, name in enumerate(data.names):
            table[name] = frame[name]
            table[f"predicted_{name}"] = np.round(outputs[:, j], 6)
    table["path"] = frame["path"]
    return pd.DataFrame(table).sort_values("label_quality", na_position="last", kind="stable").reset_index(drop=True)


def contact_sheet(table: pd.DataFrame, task: str, names: list[str], rows: int = SHEET_ROWS) -> bytes:
    """A PNG grid of the worst ``rows``: each image titled with its score, the given and the predicted value."""
    worst = table.head(rows)
    titles = []
    for _, row in worst.iterrows():
        if task == "classification":
            titles.append(f"{row['label_quality']:.2f}: given {row['label']}, predicted {row['predicted']}")
        else:
            j = int(np.argmax([abs(row[n] - row[f"predicted_{n}"]) if pd.notna(row[n]) else -1 for n in names]))
            name = names[j]
            titles.append(f"{row['label_quality']:.2f}: {short_name(name)} given {row[name]:.2f}, "
                          f"predicted {row[f'predicted_{name}']:.2f}")
    return image_grid(worst["path"].tolist(), titles, thumbnail, "worst labels first (label quality: given, predicted)")


def run_audit(cfg: TrainConfig, folds: int = AuditConfig.folds, output: str | os.PathLike = AuditConfig.output
              ) -> pd.DataFrame:
    """Audit ``cfg``'s data: ``output/audit.csv`` (worst first) and ``output/worst.png``; returns the table."""
    require_cleanlab()
    if folds < 2:
        raise UserError(f"--folds must be at least 2, not {folds}")
    data = read_training_data(cfg)
    outputs = out_of_fold_outputs(cfg, data, folds)
    table = audit_table(data, outputs, label_quality(data, outputs))
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / AUDIT_CSV, table.to_csv(index=False))
    atomic_write(out / CONTACT_SHEET, contact_sheet(table, data.task, list(data.names)))
    return table


if __name__ == "__main__":
    raise SystemExit("perspective.trust.audit is the audit's library module; run the command: perspective audit -h")
