"""The tuned numbers of the training recipe and the worker counts: what a run does when no flag says.

Imports no torch: the commands' help lines quote some of these.
"""

from __future__ import annotations

import os

DEFAULT_EPOCHS = 20  # train -e on the user's own data
# The built-in synthetic car data (training.data) and how it trains when -d is not given: enough photos, at
# a size small enough, that `perspective train --weights none` learns the eight scores in a few minutes on
# 2 CPU cores (its measured time and R²: docs/training.md#synthetic-car-perspective-data). More photos for
# fewer epochs beat fewer photos for more, and at this size the input resolution barely matters (96 px
# learns the scores as fast, epoch for epoch, as 112 or 128 px).
BUILT_IN_IMAGES = 6000
BUILT_IN_IMAGE_SIZE = 96
BUILT_IN_EPOCHS = 12
DEFAULT_PATIENCE = 5  # early stopping under the plateau and constant schedules (see training.callbacks)
PRETRAINED_FREEZE_EPOCHS = 1  # see training.run.fine_tuning
PRETRAINED_BACKBONE_LR_SCALE = 0.1
# Weights from `perspective pretrain` (self-supervised, on the user's few thousand photos) are weaker than
# ImageNet's: they start the backbone but need no protection from the head's first gradients.
SELF_SUPERVISED_FREEZE_EPOCHS = 0
SELF_SUPERVISED_BACKBONE_LR_SCALE = 1.0
# FixMatch after the fine-tune (train --unlabelled --semi fixmatch), the settings measured on Fashion-MNIST-500:
FIXMATCH_THRESHOLD = 0.95  # confidence on the mild view that makes a pseudo-label (Sohn et al. 2020)
FIXMATCH_RATIO = 3  # unlabelled photos a step per labelled one
FIXMATCH_LEARNING_RATE = 3e-4  # AdamW's peak, the whole model at one rate
FIXMATCH_WARMUP_STEPS = 50
FIXMATCH_EMA_DECAY = 0.99  # the run is short: a 0.999 average would still hold the fine-tune's weights
CALIBRATION_IMAGES = 300  # export --int8: images NNCF calibrates on (its default subset size)
NOVELTY_LEVEL = 0.01  # --novelty: a photo is novel when its novelty p-value is at most this (models.novelty)


def default_workers() -> int:
    """Decoding threads or processes: one per core, at most 8."""
    return min(os.cpu_count() or 1, 8)


def default_loader_workers(on_cpu: bool) -> int:
    """DataLoader processes for training: ``default_workers()`` beside a GPU, one per 8 cores on the CPU.

    When the CPU trains, loader processes take cores from the model's threads, and each parallel
    step of the model waits for its slowest thread: on 2 cores, 4 epochs of resnet18 on 500 small
    images took 63.3 s with none against 65.2 s with 2 (median of 3 pairs). Decoding and augmenting
    a batch costs a few percent of a CPU training step, so the main process does it between steps;
    a machine with many cores gives a worker to each 8 of them.
    """
    return default_workers() if not on_cpu else (os.cpu_count() or 1) // 8
