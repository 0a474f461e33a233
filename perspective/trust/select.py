"""Which photos to label next: the ones the model is unsure about, spread over what the photos show.

``select_images(SelectConfig)`` predicts every unlabelled photo once with the prediction path users
get, keeping the backbone's features of each (the input of the head), and ranks the photos:

- **uncertainty**: for scores, the width of each target's conformal interval (``--interval``'s, at
  ``UNCERTAINTY_LEVEL``) relative to that target's median width, averaged over the targets; for
  classes, one minus the margin between the two most probable classes;
- **diversity**: the distance in feature space to the nearest photo already chosen (or already
  labelled, ``--labelled``), so that a batch of labels does not spend itself on near-duplicates.

``balanced`` (the default) picks greedily the photo with the largest uncertainty times distance
(uncertainty as a rank in (0, 1], distance relative to the median nearest-neighbour distance):
k-center greedy weighted by uncertainty. ``uncertainty`` takes the most uncertain alone; ``random`` a
random choice (the baseline). The output: ``select.csv`` (rank, filename, reason, uncertainty,
distance, the model's answer, path) and ``select.png``, a contact sheet of the first 16; with
``--label-studio``, tasks of a Label Studio project with the model's answers as pre-annotations
(``perspective.labelling``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import SELECT_METHODS, SelectConfig
from ..data import list_images
from ..errors import NothingDone, UserError
from ..evaluation.report import image_grid, thumbnail
from ..hardware import one_device
from ..labelling import connect, selection_tasks, send
from ..models.outputs import bound_columns
from ..prediction.predictor import Predictor, predictor_for
from ..prediction.runtimes import model_for
from ..results import atomic_write

log = logging.getLogger(__name__)

SELECT_CSV = "select.csv"
PROJECT = "perspective select"  # the Label Studio project of --label-studio without --project
CONTACT_SHEET = "select.png"
UNCERTAINTY_LEVEL = 0.9
SHEET_ROWS = 16


@dataclass
class Scored:
    """The readable photos of a folder with the model's uncertainty and features for each."""

    paths: list[str]
    uncertainty: np.ndarray  # larger: less sure
    features: np.ndarray  # (n, d), L2-normalised
    unreadable: int
    predicted: dict[str, list] = field(default_factory=dict)  # column -> each photo's score (or class)


def score_images(predictor: Predictor, paths: list[str], batch_size: int, workers: int, progress: bool) -> Scored:
    """One pass of the prediction path over ``paths``: each readable photo's uncertainty and backbone features."""
    model = predictor.model
    captured: list[torch.Tensor] = []
    hook = model.head.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].float().cpu()))
    try:
        rows = [row for row in predictor.predict_paths(paths, batch_size, workers, progress)]
    finally:
        hook.remove()
    readable = [row for row in rows if not row["error"]]
    if not readable:
        raise NothingDone("no image could be read")
    features = torch.cat(captured).numpy()
    features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    names = model.names
    if model.hparams.task == "regression":
        widths = np.array([[row[bound_columns(n)[1]] - row[bound_columns(n)[0]] for n in names] for row in readable],
                          dtype=np.float64)
        typical = np.maximum(np.median(widths, axis=0), 1e-6)
        uncertainty = (widths / typical).mean(axis=1)
    else:
        probabilities = np.array([[row[f"prob_{c}"] for c in names] for row in readable], dtype=np.float64)
        top = np.sort(probabilities, axis=1)[:, ::-1]
        uncertainty = 1.0 - (top[:, 0] - top[:, 1])
    if model.hparams.task == "regression":
        predicted = {f"predicted_{n}": [row[n] for row in readable] for n in names}
    else:
        predicted = {"predicted": [row["label"] for row in readable]}
    return Scored([row["path"] for row in readable], uncertainty, features, len(rows) - len(readable), predicted)


def choose(scored: Scored, count: int, method: str, labelled: np.ndarray | None = None, seed: int = 0
           ) -> tuple[list[int], np.ndarray]:
    """The indices of ``count`` photos in the order chosen, and each chosen photo's distance when it was chosen.

    ``labelled``: features of photos already labelled, which count as chosen for the diversity term.
    """
    n = len(scored.paths)
    count = min(count, n)
    if method == "random":
        order = np.random.default_rng(seed).permutation(n)[:count]
        return order.tolist(), np.full(count, np.nan)
    if method == "uncertainty":
        order = np.argsort(-scored.uncertainty, kind="stable")[:count]
        return order.tolist(), np.full(count, np.nan)
    ranks = (np.argsort(np.argsort(scored.uncertainty, kind="stable"), kind="stable") + 1) / n  # (0, 1]
    features = scored.features
    scale = median_nearest_distance(features)
    nearest = np.full(n, np.inf)
    if labelled is not None and len(labelled):
        for block in np.array_split(labelled, max(1, len(labelled) // 512)):
            nearest = np.minimum(nearest, np.sqrt(np.maximum(0.0, 2 - 2 * features @ block.T)).min(axis=1))
    chosen, distances = [], []
    available = np.ones(n, dtype=bool)
    for _ in range(count):
        spread = np.where(np.isinf(nearest), 1.0, nearest / scale)
        value = np.where(available, ranks * spread, -np.inf)
        pick = int(np.argmax(value))
        chosen.append(pick)
        distances.append(float(nearest[pick]) if np.isfinite(nearest[pick]) else np.nan)
        available[pick] = False
        nearest = np.minimum(nearest, np.sqrt(np.maximum(0.0, 2 - 2 * features @ features[pick])))
    return chosen, np.asarray(distances)


def median_nearest_distance(features: np.ndarray, sample: int = 2000) -> float:
    """The median distance of a photo to its nearest neighbour (on a sample): the scale of "far" in this set."""
    rng = np.random.default_rng(0)
    picked = features[rng.permutation(len(features))[:sample]]
    if len(picked) < 2:
        return 1.0
    distances = np.sqrt(np.maximum(0.0, 2 - 2 * picked @ picked.T))
    np.fill_diagonal(distances, np.inf)
    return max(float(np.median(distances.min(axis=1))), 1e-6)


def reason(method: str, uncertainty_rank: float, distance: float, scale: float, n: int) -> str:
    if method == "random":
        return "random"
    others = (uncertainty_rank * n - 1) / max(1, n - 1)
    parts = [f"less sure than {others:.0%} of the other photos"]
    if np.isfinite(distance):
        parts.append(f"{distance / scale:.1f}x the usual distance from the nearest photo chosen or labelled")
    return "; ".join(parts)


def select_images(cfg: SelectConfig) -> pd.DataFrame:
    """Rank ``cfg.data``'s photos for labelling; writes ``select.csv`` and ``select.png`` into ``cfg.output``."""
    if cfg.by not in SELECT_METHODS:
        raise UserError(f"--by must be one of {', '.join(SELECT_METHODS)}, not {cfg.by!r}")
    if cfg.data is None or not Path(cfg.data).is_dir():
        raise UserError(f"-d {cfg.data}: not a folder of images")
    paths = list_images(cfg.data, recursive=True)
    if not paths:
        raise UserError(f"-d {cfg.data}: no images found (subfolders included)")
    if str(cfg.checkpoint or "").lower().endswith((".onnx", ".xml")):
        raise UserError("select needs the .ckpt checkpoint: it reads the backbone's features")
    studio = connect(cfg.label_studio, cfg.label_studio_key, cfg.document_root) if cfg.label_studio else None
    checkpoint, model = model_for(cfg)
    interval = UNCERTAINTY_LEVEL if model.hparams.task == "regression" else None
    if interval is not None and not model.conformal:
        raise UserError("select: this model carries no conformal calibration, which measures its uncertainty; "
                        "calibrate it with evaluate -c CHECKPOINT -d DATA --calibrate")
    if cfg.runtime not in ("auto", "torch"):
        raise UserError(f"--runtime {cfg.runtime}: select reads the backbone's features, in PyTorch; use --runtime torch")
    predictor = predictor_for(replace(cfg, interval=interval, tta=False, runtime="torch"), model, device=one_device(cfg))
    scored = score_images(predictor, paths, cfg.batch_size, cfg.decoding_workers, not cfg.quiet)
    if scored.unreadable:
        log.warning("%d of %d images cannot be read and are skipped", scored.unreadable, len(paths))
    labelled = None
    if cfg.labelled:
        known = list_images(cfg.labelled, recursive=True)
        labelled = score_images(predictor, known, cfg.batch_size, cfg.decoding_workers, not cfg.quiet).features
    chosen, distances = choose(scored, cfg.count, cfg.by, labelled, cfg.seed)
    ranks = (np.argsort(np.argsort(scored.uncertainty, kind="stable"), kind="stable") + 1) / len(scored.paths)
    scale = median_nearest_distance(scored.features)
    table = pd.DataFrame({
        "rank": range(1, len(chosen) + 1),
        "filename": [os.path.basename(scored.paths[i]) for i in chosen],
        "reason": [reason(cfg.by, ranks[i], d, scale, len(scored.paths)) for i, d in zip(chosen, distances)],
        "uncertainty": np.round(scored.uncertainty[chosen], 6),
        "distance": np.round(distances, 6),
        **{column: [values[i] for i in chosen] for column, values in scored.predicted.items()},
        "path": [scored.paths[i] for i in chosen],
    })
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / SELECT_CSV, table.to_csv(index=False))
    titles = [f"#{r}: uncertainty {u:.2f}" for r, u in zip(table["rank"], table["uncertainty"])][:SHEET_ROWS]
    atomic_write(out / CONTACT_SHEET, image_grid(table["path"].tolist()[:SHEET_ROWS], titles, thumbnail,
                                                 f"photos to label next ({cfg.by})"))
    table.attrs["unreadable"] = scored.unreadable
    if studio is not None:
        title = cfg.project or PROJECT
        tasks = selection_tasks(studio, table, model.hparams.task, model.names, Path(checkpoint).stem)
        table.attrs["sent"] = (title, *send(studio, title, model.hparams.task, model.names, tasks, cfg.data))
    return table


if __name__ == "__main__":
    raise SystemExit("perspective.trust.select is the library module; run the command: perspective select -h")
