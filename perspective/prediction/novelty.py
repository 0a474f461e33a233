"""A model's novelty summary made from photos (``models.novelty``): the bank from photos like the ones it
learnt from, the calibration from others of the same kind that it did not learn from.

A training run makes it at its end from its training and validation rows (``training.run``);
``perspective evaluate --calibrate`` makes one for any checkpoint from the labelled photos it is given,
half of them for the bank and half for the calibration.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from ..models.novelty import bank_size, make_bank, summarise, summary_bytes
from .predictor import Predictor

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 2000  # at most this many calibration photos: p-values in steps of 1/2001 at most


def _sample(paths: Sequence[str], count: int, seed: int) -> list[str]:
    """At most ``count`` of ``paths``, a seeded sample, in their order."""
    paths = list(paths)
    if len(paths) <= count:
        return paths
    chosen = sorted(random.Random(seed).sample(range(len(paths)), count))
    return [paths[i] for i in chosen]


def novelty_summary(predictor: Predictor, bank_paths: Sequence[str], calibration_paths: Sequence[str],
                    batch_size: int = 32, workers: int = 0, seed: int = 0) -> dict[str, Any] | None:
    """The summary of ``predictor``'s model: its features of a sample of ``bank_paths`` (the bank) and the
    scores of ``calibration_paths`` against it; None (with a log line) when either has no readable photo."""
    width = predictor.model.head[-1].in_features
    bank = predictor.features_of(_sample(bank_paths, bank_size(width), seed), batch_size, workers)
    calibration = predictor.features_of(_sample(calibration_paths, CALIBRATION_IMAGES, seed), batch_size, workers)
    if not len(bank) or not len(calibration):
        log.info("no novelty summary: no readable photo to make its %s of", "bank" if not len(bank) else "calibration")
        return None
    summary = summarise(make_bank(bank, seed), calibration)
    log.info("novelty summary: %d photos' features (%.1f MB), calibrated on %d photos", len(summary["bank"]),
             summary_bytes(summary) / 2**20, len(summary["calibration"]))
    return summary


def halves(paths: Sequence[str], seed: int = 0) -> tuple[list[str], list[str]]:
    """``paths`` shuffled with ``seed`` and cut in two: the bank's photos and the calibration's."""
    order = list(paths)
    random.Random(seed).shuffle(order)
    middle = len(order) // 2
    return order[:middle], order[middle:]
