"""``train --unlabelled DIR``: a classifier that learns from the photos nobody labelled too.

A teacher trains on the labelled photos as any run does (folder ``<run>-teacher``); then the run's
model (folder ``<run>``) learns from the unlabelled photos as ``--semi`` says:

- ``fixmatch`` (the default; ``training.fixmatch``): the teacher's model goes on training for
  ``--fixmatch-steps`` steps on labelled and unlabelled photos together; an unlabelled photo it is
  sure of, seen mildly augmented, teaches its class for a strongly augmented view. On
  Fashion-MNIST-500 from a SimCLR backbone it gained on every seed (0.846 to 0.852, 3 seeds).
- ``self-training`` (``training.self_training``): a student from the run's own start learns from the
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

import pytorch_lightning as pl

from ..config import SEMI_METHODS, TrainConfig
from ..data import list_images
from ..errors import UserError
from .checkpointing import ended_run_best, expect_existing_checkpoints
from .data import load_splits

log = logging.getLogger(__name__)

TEACHER_SUFFIX = "-teacher"  # the teacher's run folder: <run>-teacher beside <run>


def learn_from_unlabelled(cfg: TrainConfig, train_run, callbacks: Sequence[pl.Callback] = ()):
    """Teacher, then the run's model from ``cfg.unlabelled`` as ``cfg.semi`` says; the latter's ``TrainResult``.

    ``train_run`` is ``training.run.train`` (passed in: it calls this module for ``--unlabelled``);
    ``cfg.resume`` is a checkpoint path already (``training.run.resolve_resume``).
    """
    if cfg.semi not in SEMI_METHODS:
        raise UserError(f"--semi must be one of {', '.join(SEMI_METHODS)}, not {cfg.semi!r}")
    if not 0 < cfg.pseudo_share <= 1:  # the settings are checked before the teacher spends its time
        raise UserError(f"--pseudo-share must lie in (0, 1], not {cfg.pseudo_share}")
    if cfg.fixmatch_steps < 1:
        raise UserError(f"--fixmatch-steps must be at least 1, not {cfg.fixmatch_steps}")
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
        name, teacher = _resumed_teacher(cfg, train_run, callbacks, (data, parts))
    else:
        name = cfg.run_name or time.strftime("%Y%m%d-%H%M%S")
        teacher = train_run(replace(cfg, run_name=name + TEACHER_SUFFIX, test=False), callbacks,
                            prepared=(data, parts)).best_checkpoint
    cfg = replace(cfg, run_name=name, resume=None)
    if cfg.semi == "fixmatch":
        from .fixmatch import student
    else:
        from .self_training import student
    return student(cfg, train_run, callbacks, data, parts, pool, teacher)


def _resumed_teacher(cfg: TrainConfig, train_run, callbacks: Sequence[pl.Callback], prepared) -> tuple[str, str]:
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
        best = train_run(replace(cfg, resume=str(teacher_checkpoint), test=False), callbacks,
                         prepared=prepared).best_checkpoint
    else:
        log.info("--resume: the teacher %s had ended; its best checkpoint %s teaches", teacher_checkpoint.parent, best)
    return name, best
