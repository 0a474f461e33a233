"""Self-training (``--semi self-training``): a classifier teaches itself from pseudo-labels fixed once.

A teacher trains on the labelled photos as any run does. It predicts every unlabelled photo; the
photos it is surest of, the same number for each class it predicts (so a class it favours does not
crowd out the rest), join the training split with the teacher's class as their label. A student then
trains from the same start on both and is validated and tested on the teacher's own labelled
validation and test rows, so its figures compare with the teacher's (Lee 2013, "Pseudo-label";
Xie et al. 2020, "Noisy Student": the student sees augmented photos the teacher judged clean).

Measured on Fashion-MNIST: a teacher at 0.80 test accuracy from 500 labels was right on 96% of its
600 surest photos of each class (the surest 10% of the 59,500-photo pool), where it is right on 80%
overall; the pick's share of the pool is ``--pseudo-share``. The student learnt nothing from them
(test accuracy 0.794 at its best validation epoch, 0.803 at its last, against 0.807 for the default
run, seed 0, docs/training.md): the surest photos are the ones the teacher already gets right, and the
classes it confuses (shirt, T-shirt, pullover, coat) gain few. From a backbone pretrained on the pool
(``perspective pretrain``) the teacher reached 0.849 and its student 0.838: the pseudo-labels cost.

The teacher is trained by ``training.semi``, which calls ``student`` here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl

from ...config import TrainConfig
from ...data import LabelledData
from ...errors import UserError
from ...models.checkpoint import load_checkpoint
from ...prediction.predictor import Predictor
from ...results import atomic_write
from ..data import decoding_threads, trains_on_cpu
from ..run import TrainResult, fit

log = logging.getLogger(__name__)

PSEUDO_LABELS_CSV = "pseudo_labels.csv"  # in the student's run folder: what it was taught besides the labels


def pseudo_labels(rows: Sequence[dict], classes: Sequence[str], share: float, pool: int) -> pd.DataFrame:
    """The surest ``share`` of a ``pool`` of predicted photos, as many for each predicted class:
    columns path, label, confidence (surest first within a class). Unreadable rows are left out."""
    columns = ["path", "label", "confidence"]
    frame = pd.DataFrame([[r[c] for c in columns] for r in rows if not r.get("error")], columns=columns)
    per_class = math.ceil(share * pool / max(1, len(classes)))
    frame = frame.sort_values("confidence", ascending=False, kind="stable")
    return frame.groupby("label", sort=True).head(per_class).reset_index(drop=True)


def student(cfg: TrainConfig, data: LabelledData, parts: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
            pool: list[str], teacher: str, callbacks: Sequence[pl.Callback] = ()) -> TrainResult:
    """The student of ``teacher`` (its best checkpoint): trained from ``cfg``'s own start on the labelled
    rows and the teacher's surest classes for ``pool``; its ``TrainResult``, and ``pseudo_labels.csv`` in its folder.
    """
    train_part, val_part, test_part = parts
    # every process of a multi-device run predicts the pool alike, so all train the student on the same rows
    log.info("teacher %s predicts %d unlabelled images", teacher, len(pool))
    predictor = Predictor(load_checkpoint(teacher), "cpu" if trains_on_cpu(cfg) else "auto")
    rows = list(predictor.predict_paths(pool, cfg.batch_size, decoding_threads(cfg), progress=not cfg.quiet))
    unreadable = sum(1 for r in rows if r.get("error"))
    if unreadable:
        log.warning("%d of %d unlabelled images cannot be read and are skipped", unreadable, len(pool))
    picked = pseudo_labels(rows, data.names, cfg.pseudo_share, len(pool))
    if picked.empty:
        raise UserError(f"--unlabelled {cfg.unlabelled}: none of its {len(pool)} images can be read")
    log.info("%d pseudo-labelled images join %d labelled ones (the surest %.0f%% of %d, per predicted class)",
             len(picked), len(train_part), 100 * cfg.pseudo_share, len(pool))
    student_train = pd.concat([train_part, picked[["path", "label"]]], ignore_index=True)
    result = fit(cfg, data, (student_train, val_part, test_part), callbacks)
    if result.is_global_zero:
        atomic_write(Path(result.run_dir) / PSEUDO_LABELS_CSV, picked.to_csv(index=False))
    return result
