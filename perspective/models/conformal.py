"""Conformal prediction: an interval around each score, or a set of classes, that holds its coverage.

Split conformal prediction (Vovk et al.; Lei et al. 2018): on labelled images the model did not
train on (the validation split at the end of each validation pass, or the data given to
``evaluate.py --calibrate``), record how wrong the model is. For a new image, the band that would
have held the truth for a share ``level`` of those images holds it for a new one with probability
at least ``level``, whatever the model, as long as the new images are like the calibration ones
(exchangeable). No retraining, no assumption about the error's distribution.

- **Regression**: the error is ``|truth - score|`` per target. A zero-heavy target (a car part that
  is often out of sight) has two kinds of error: tiny where the model says "not visible" and is
  right, large among the visible ones. One error quantile for all would give every image the same
  band, far too wide at 0 and too narrow above. So the calibration images are split into groups by
  the *predicted* score (equal-count bins, ``MAX_BINS`` at most, at least ``MIN_PER_BIN`` images each)
  and each group has its own quantile (Mondrian conformal prediction: the coverage holds within each
  group, so it holds overall). The group is chosen by the prediction, never the truth, so it is known
  for a new image.
- **Classification**: the score is ``1 - p(true class)`` (least ambiguous set-valued classifier, Sadinle
  et al. 2019); the set holds every class whose probability is at least ``1 - q``, and always the
  predicted class, so it is never empty.

The calibration is a small JSON-able dict (the sorted errors, so any level can be asked later),
stored in the checkpoint under ``CHECKPOINT_KEY`` and in an exported model's metadata.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import UserError

CHECKPOINT_KEY = "conformal"
MAX_BINS = 4  # groups by predicted score, per target
MIN_PER_BIN = 100  # calibration images per group: the 0.95 quantile of 100 errors is the 96th
DECIMALS = 6
REPORT_LEVEL = 0.9  # the coverage a training run's test report measures


def calibrate(outputs: np.ndarray, truth: np.ndarray, task: str, names: Sequence[str]) -> dict[str, Any]:
    """The calibration of a model from its ``outputs`` on labelled images.

    Args:
        outputs: ``(n, k)`` scores (regression) or class probabilities (classification).
        truth: ``(n, k)`` true scores, NaN where a target is blank; or ``(n,)`` class indices, -1 where unlabelled.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if task == "classification":
        truth = np.asarray(truth, dtype=np.int64)
        labelled = truth >= 0
        scores = 1.0 - outputs[labelled, truth[labelled]]
        return {"task": task, "method": "lac", "n": int(labelled.sum()), "scores": _sorted(scores)}
    truth = np.asarray(truth, dtype=np.float64)
    targets = {}
    for j, name in enumerate(names):
        labelled = ~np.isnan(truth[:, j])
        pred, errors = outputs[labelled, j], np.abs(truth[labelled, j] - outputs[labelled, j])
        edges = _bin_edges(pred)
        groups = np.searchsorted(edges, pred, side="right")
        targets[name] = {"edges": [round(float(e), DECIMALS) for e in edges],
                         "errors": [_sorted(errors[groups == g]) for g in range(len(edges) + 1)]}
    return {"task": task, "method": "split, binned by predicted score", "n": int(len(truth)), "targets": targets}


def _sorted(values: np.ndarray) -> list[float]:
    return [round(float(v), DECIMALS) for v in np.sort(values)]


def _bin_edges(pred: np.ndarray) -> list[float]:
    """Inner edges of up to ``MAX_BINS`` equal-count groups of ``pred`` with ``MIN_PER_BIN`` each.

    Equal predictions stay in one group (a group ends after the last of its equal scores), so a
    target the model scores 0.0 for half the images gets the zeros as one group.
    """
    bins = min(MAX_BINS, len(pred) // MIN_PER_BIN)
    ordered = np.sort(pred)
    edges: list[float] = []
    for b in range(1, bins):
        edge = float(ordered[b * len(ordered) // bins])
        below = np.searchsorted(ordered, edge, side="left")
        above = len(ordered) - np.searchsorted(ordered, edge, side="left")
        start = np.searchsorted(ordered, edges[-1], side="left") if edges else 0
        if below - start >= MIN_PER_BIN and above >= MIN_PER_BIN:
            edges.append(edge)
    return edges


def quantile(sorted_errors: Sequence[float], level: float) -> float:
    """The ``ceil((n + 1) * level)``-th smallest of n errors; infinite when n is too small for ``level``."""
    n = len(sorted_errors)
    k = math.ceil((n + 1) * level)
    return float(sorted_errors[k - 1]) if 1 <= k <= n else math.inf


def check_level(level: float) -> float:
    if not 0 < level < 1:
        raise UserError(f"--interval must lie between 0 and 1 (a coverage such as 0.9), not {level}")
    return level


class Intervals:
    """Turns a model's outputs into interval bounds (regression) or class sets at one coverage ``level``.

    Args:
        calibration: from ``calibrate`` (a checkpoint's ``conformal`` entry).
        level: the coverage asked for, for instance 0.9.
        names: the model's target or class names, in output order.
        bounds: regression scores are clipped to this range (``(0, 1)`` for sigmoid outputs), or None.
    """

    def __init__(self, calibration: dict[str, Any], level: float, names: Sequence[str],
                 bounds: tuple[float, float] | None = None):
        self.level, self.names, self.bounds = check_level(level), list(names), bounds
        self.task = calibration["task"]
        if self.task == "classification":
            self.threshold = 1.0 - quantile(calibration["scores"], level)
            return
        targets = calibration["targets"]
        missing = [n for n in self.names if n not in targets]
        if missing:
            raise UserError(f"--interval: the calibration has no errors for target(s) {', '.join(missing)}")
        self.edges = [np.asarray(targets[n]["edges"]) for n in self.names]
        self.widths = [np.asarray([quantile(e, level) for e in targets[n]["errors"]]) for n in self.names]

    def regression(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(n, k)`` scores -> ``(low, high)``, each ``(n, k)``."""
        half = np.empty_like(outputs, dtype=np.float64)
        for j, (edges, widths) in enumerate(zip(self.edges, self.widths)):
            half[:, j] = widths[np.searchsorted(edges, outputs[:, j], side="right")]
        low, high = outputs - half, outputs + half
        if self.bounds is not None:
            low, high = np.clip(low, *self.bounds), np.clip(high, *self.bounds)
        return low, high

    def class_sets(self, probabilities: np.ndarray) -> list[list[int]]:
        """``(n, k)`` probabilities -> for each image the indices of its set, most probable first."""
        sets = []
        for p in probabilities:
            order = np.argsort(-p, kind="stable")
            sets.append([int(c) for i, c in enumerate(order) if i == 0 or p[c] >= self.threshold])
        return sets


def calibration_sizes(calibration: dict[str, Any]) -> dict[str, int]:
    """How many calibration images each target's intervals rest on, in its smallest group (or the class sets on)."""
    if calibration["task"] == "classification":
        return {"classes": int(calibration["n"])}
    return {name: min(len(errors) for errors in target["errors"]) for name, target in calibration["targets"].items()}


def coverage(truth: np.ndarray, low: np.ndarray, high: np.ndarray) -> dict[str, Any]:
    """Empirical coverage and mean width of intervals of one target, overall and split by truth 0 / above 0.

    Only labelled rows count (NaN truth is left out).
    """
    labelled = ~np.isnan(truth)
    truth, low, high = truth[labelled], low[labelled], high[labelled]
    inside = (low <= truth) & (truth <= high)
    width = high - low

    def part(mask: np.ndarray) -> dict[str, float | int | None]:
        n = int(mask.sum())
        return {"n": n, "coverage": float(inside[mask].mean()) if n else None,
                "width": float(width[mask].mean()) if n else None}

    return {**part(np.ones_like(inside)), "truth_zero": part(truth == 0), "truth_above_zero": part(truth > 0)}


TAIL_SHARE, MIN_TAIL = 0.2, 5  # the largest errors of a group whose median excess sets its tail (p_values)
TAIL_SHAPE = 0.5  # the tail's generalised Pareto shape: p falls as the excess's inverse square


def p_values(pred: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How unusual each error is for a model at its predicted score: (p-value, the group's typical error).

    The rows are grouped by predicted score as the intervals group them (``_bin_edges``). Within a
    group of ``m`` rows an error's p-value is the share of the group's errors at least as large
    (conformal: a right label's error is as likely to rank anywhere). Beyond the group's ``k``
    largest errors (``TAIL_SHARE`` of it, at least ``MIN_TAIL``) the share decays with the excess as a
    generalised Pareto tail of shape ``TAIL_SHAPE`` (peaks over threshold), so the most unusual
    errors get distinct, ever smaller p-values instead of a block of ties at ``1/m``. The tail is
    polynomial, not exponential: a few dozen errors cannot support a p-value of 1e-200, and an
    exponential one underflows to a block of zeros for labels wrong by a hundred typical errors. Its
    scale comes from the median excess of those ``k``: the few wrong labels among them cannot
    stretch it as a mean would.
    The typical error is the group's 90% quantile: the model's error there for 9 rows in 10.
    """
    pred, errors = np.asarray(pred, dtype=np.float64), np.asarray(errors, dtype=np.float64)
    p, typical = np.ones(len(pred)), np.zeros(len(pred))
    groups = np.searchsorted(_bin_edges(pred), pred, side="right")
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        group = errors[members]
        m = len(group)
        descending = np.sort(group)[::-1]
        at_least = m - np.searchsorted(np.sort(group), group, side="left")  # errors >= each one, itself included
        share = at_least / m
        k = min(m, max(MIN_TAIL, math.ceil(TAIL_SHARE * m)))
        threshold = descending[k - 1]
        # the generalised Pareto distribution's median excess is scale * (2**shape - 1) / shape
        scale = float(np.median(descending[:k] - threshold)) * TAIL_SHAPE / (2**TAIL_SHAPE - 1)
        tail = group > threshold
        if scale > 0:
            share[tail] = (k / m) * (1 + TAIL_SHAPE * (group[tail] - threshold) / scale) ** (-1 / TAIL_SHAPE)
        p[members] = share
        typical[members] = float(np.quantile(group, 0.9))
    return p, typical
