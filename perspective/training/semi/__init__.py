"""``train --unlabelled DIR``: a classifier that learns from the photos nobody labelled too.

A teacher trains on the labelled photos as any run does (``training.run.fit``, folder ``<run>-teacher``);
then the run's model (folder ``<run>``) learns from the unlabelled photos as ``--semi`` says:

- ``fixmatch`` (the default; ``semi.fixmatch``): the teacher's model goes on training for
  ``--fixmatch-steps`` steps on labelled and unlabelled photos together; an unlabelled photo it is
  sure of, seen mildly augmented, teaches its class for a strongly augmented view. On
  Fashion-MNIST-500 from a SimCLR backbone it gained on every seed (0.846 to 0.852, 3 seeds).
- ``self-training`` (``semi.self_training``): a student from the run's own start learns from the
  teacher's surest classes, fixed once. It lost there (0.849 to 0.838, one seed).

``--resume`` a checkpoint of the teacher continues the teacher (unless it had ended), then the second
phase; one of the second phase's folder restarts that phase from the teacher's best checkpoint (the
phase is one epoch, its partial state is not continued).

Scores are not pseudo-labelled: a predicted score carries no confidence of its own to pick the surest
by; ``perspective pretrain`` uses unlabelled photos there.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl

from ...config import TrainConfig
from ...data import LabelledData, list_images
from ...errors import UserError
from ..checkpointing import ended_run_best, expect_existing_checkpoints
from ..data import load_splits
from ..run import TrainResult, fit
from .fixmatch import fixmatch_phase
from .self_training import student

log = logging.getLogger(__name__)

TEACHER_SUFFIX = "-teacher"  # the teacher's run folder: <run>-teacher beside <run>


def learn_from_unlabelled(cfg: TrainConfig, callbacks: Sequence[pl.Callback] = ()) -> TrainResult:
    """Teacher, then the run's model from ``cfg.unlabelled`` as ``cfg.semi`` says; the latter's ``TrainResult``.

    ``cfg`` is resolved (``training.entry.resolved``): ``cfg.resume`` is a checkpoint path already. The
    values the parser checks (``--semi``, ``--pseudo-share``, ``--fixmatch-steps``) are taken as given;
    the settings checked here are checked before the teacher spends its time.
    """
    if cfg.fixmatch_with_val and cfg.semi != "fixmatch":
        raise UserError(f"--fixmatch-with-val is for --semi fixmatch, not --semi {cfg.semi}")
    if not Path(cfg.unlabelled).is_dir():
        raise UserError(f"--unlabelled {cfg.unlabelled}: not a folder of images")
    data, parts = load_splits(cfg)
    if data.task != "classification":
        raise UserError("--unlabelled is for classes; to use unlabelled photos for scores, "
                        "pretrain a backbone on them: perspective pretrain")
    labelled = {os.path.realpath(p) for p in data.frame["path"]}
    pool = [p for p in list_images(cfg.unlabelled, recursive=True) if os.path.realpath(p) not in labelled]
    if not pool:
        raise UserError(f"--unlabelled {cfg.unlabelled}: no images there that are not labelled already")
    if cfg.resume:
        name, teacher = _resumed_teacher(cfg, callbacks, data, parts)
    else:
        name = cfg.run_name or time.strftime("%Y%m%d-%H%M%S")
        teacher = fit(replace(cfg, run_name=name + TEACHER_SUFFIX, test=False), data, parts, callbacks).best_checkpoint
    cfg = replace(cfg, run_name=name, resume=None)
    if cfg.semi == "fixmatch":
        return fixmatch_phase(cfg, data, parts, pool, teacher, callbacks)
    return student(cfg, data, parts, pool, teacher, callbacks)


def _resumed_teacher(cfg: TrainConfig, callbacks: Sequence[pl.Callback], data: LabelledData,
                     parts: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> tuple[str, str]:
    """(the run's name, its teacher's best checkpoint) for ``--resume``: the teacher's run resumed from
    its checkpoint, or read if it had ended (``checkpointing.ended_run_best``)."""
    folder = Path(cfg.resume).parent
    if folder.name.endswith(TEACHER_SUFFIX):
        name, teacher_checkpoint = folder.name.removesuffix(TEACHER_SUFFIX), Path(cfg.resume)
    else:  # a checkpoint of the second phase: the phase starts again, in its own folder
        name, teacher_checkpoint = folder.name, folder.with_name(folder.name + TEACHER_SUFFIX) / "last.ckpt"
        if not teacher_checkpoint.is_file():
            raise UserError(f"--resume {cfg.resume}: not a run of --unlabelled (no {teacher_checkpoint} beside it)")
        log.info("--resume: the second phase starts again in %s, from its teacher", folder)
    expect_existing_checkpoints()
    best = ended_run_best(teacher_checkpoint, cfg.max_epochs)
    if best is None:
        best = fit(replace(cfg, resume=str(teacher_checkpoint), test=False), data, parts, callbacks).best_checkpoint
    else:
        log.info("--resume: the teacher %s had ended; its best checkpoint %s teaches", teacher_checkpoint.parent, best)
    return name, best
