"""What a training run reads: the labelled data (``--data``, or the built-in synthetic set generated
on first use), its train/validation/test split, and the decoding workers that feed it."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..config import (
    BUILT_IN_EPOCHS,
    BUILT_IN_IMAGE_SIZE,
    BUILT_IN_IMAGES,
    DEFAULT_EPOCHS,
    LABELS_CSV,
    TrainConfig,
    default_loader_workers,
    default_workers,
)
from ..data import LabelledData, find_unreadable, read_labelled_data, split_data
from ..errors import UserError
from ..hardware import resolve_devices
from ..home import default_data_dir

log = logging.getLogger(__name__)

DEFAULT_DATA_SEED = 0  # sample_set/ and the model card's held-out set use other seeds


def with_data_defaults(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with the defaults that depend on the data: on the built-in data its own image size and
    length, elsewhere ``DEFAULT_EPOCHS`` (and the image size of the weights). Flags the user gave win."""
    built_in = cfg.data is None
    epochs = cfg.max_epochs or (BUILT_IN_EPOCHS if built_in else DEFAULT_EPOCHS)
    size = cfg.image_size or (BUILT_IN_IMAGE_SIZE if built_in else None)
    return replace(cfg, max_epochs=epochs, image_size=size)


def _dataset_count(path: Path) -> int:
    with open(path / LABELS_CSV, encoding="utf-8") as handle:
        return max(0, sum(1 for _ in handle) - 1)


def ensure_default_dataset(path: Path | None = None, count: int = BUILT_IN_IMAGES, progress: bool = True) -> Path:
    """The built-in synthetic car-perspective dataset, generated on first use.

    It is generated into a sibling folder and renamed into place, so an interrupted generation
    never leaves a half dataset that looks complete. A folder of another size (an older release's)
    is generated again. Its folder: ``home.default_data_dir()``.
    """
    path = path or default_data_dir()
    if (path / LABELS_CSV).is_file() and _dataset_count(path) == count:
        return path
    from ..synth import generate

    log.info("generating the built-in synthetic dataset: %d images in %s (once)", count, path)
    staging = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    generate(staging, count, DEFAULT_DATA_SEED, workers=None, progress=progress)
    if path.exists():
        shutil.rmtree(path)
    staging.replace(path)
    return path


def read_options(cfg: TrainConfig) -> dict[str, Any]:
    return dict(task=cfg.task, targets=cfg.targets, label_column=cfg.label_column, skip_bad_files=not cfg.strict,
                partial_targets=cfg.allow_missing_targets)


def read_training_data(cfg: TrainConfig) -> LabelledData:
    """The labelled data ``cfg`` trains on (``--data``, or the built-in synthetic set), before any split."""
    source = cfg.data if cfg.data is not None else ensure_default_dataset(progress=not cfg.quiet)
    return read_labelled_data(source, cfg.images, **read_options(cfg))


def load_splits(cfg: TrainConfig) -> tuple[LabelledData, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    data = read_training_data(cfg)
    read = read_options(cfg)
    extra = {}
    for name in ("val_data", "test_data"):
        path = getattr(cfg, name)
        if path:
            other = read_labelled_data(path, None, **{**read, "task": data.task})
            if data.task == "regression" and other.names != data.names:
                raise UserError(f"--{name.replace('_', '-')} {path} has targets {other.names}, not {data.names}")
            extra[name] = other.frame
    val_fraction = 0.0 if "val_data" in extra else cfg.val_fraction
    test_fraction = 0.0 if "test_data" in extra else cfg.test_fraction
    train, val, test = split_data(data, val_fraction, test_fraction, cfg.seed)
    val, test = extra.get("val_data", val), extra.get("test_data", test)
    if data.task == "classification":
        known = set(data.names)
        for frame, name in ((val, "validation"), (test, "test")):
            unknown = sorted(set(frame["label"]) - known)
            if unknown:
                raise UserError(f"{name} data has classes not in the training data: {', '.join(unknown)}")
    if len(train) < 2:
        raise UserError(f"{data.source}: the training split has {len(train)} image(s); need at least 2")
    if len(val) == 0:
        raise UserError(f"{data.source}: the validation split is empty; use more data or a larger --val-fraction")
    if len(test) == 0 and test_fraction > 0:
        raise UserError(f"{data.source}: the test split is empty; use more data, a larger --test-fraction, "
                        "or --test-fraction 0 to train without a test")
    if cfg.strict:
        check_every_image([train, val, test], decoding_threads(cfg))
    log.info("%s: %s on %d images (train %d, val %d, test %d); %s: %s", data.source, data.task,
             len(train) + len(val) + len(test), len(train), len(val), len(test),
             "targets" if data.task == "regression" else "classes", ", ".join(data.names))
    return data, (train, val, test)


def decoding_threads(cfg: TrainConfig) -> int:
    """Decoding threads for checking images and predicting the test split (``-w``)."""
    return cfg.workers if cfg.workers is not None else default_workers()


def trains_on_cpu(cfg: TrainConfig) -> bool:
    """Whether ``cfg``'s accelerator flags (``-g``, ``--accelerator``, ``--devices``) leave training on the CPU."""
    accelerator, _ = resolve_devices(cfg.gpus, cfg.accelerator, cfg.devices)
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available()
                                    and not torch.backends.mps.is_available())


def loader_workers(cfg: TrainConfig) -> int:
    """DataLoader processes for training (``-w``; by default fewer when the CPU trains, see ``default_loader_workers``)."""
    return cfg.workers if cfg.workers is not None else default_loader_workers(trains_on_cpu(cfg))


def check_every_image(frames: Sequence[pd.DataFrame], workers: int) -> None:
    """``--strict``: decode every image before training; any failure is a data error."""
    paths = [p for frame in frames for p in frame["path"]]
    bad = find_unreadable(paths, workers=workers)
    if bad:
        names = ", ".join(f"{Path(p).name} ({reason})" for p, reason in bad[:3])
        raise UserError(f"--strict: {len(bad)} of {len(paths)} image(s) cannot be read: {names}"
                        f"{' ...' if len(bad) > 3 else ''}")
