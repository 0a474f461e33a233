"""The names each choice flag accepts; the modules that implement a choice (the losses in
``models.module``, the augmentations in ``models.transforms``, ...) import its names from here."""

from __future__ import annotations

import importlib.util

from ..errors import UserError

TASKS = ("regression", "classification")
RESIZE_MODES = ("full", "crop")
OUTPUT_ACTIVATIONS = ("sigmoid", "none")
LOSSES = ("mse", "mae", "huber", "weighted_mse")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "plateau", "none")
BALANCES = ("none", "sampler", "loss")
AUGMENT_LEVELS = ("none", "light", "strong", "trivial", "randaugment")
MIXES = ("none", "mixup", "cutmix", "cmixup")  # train --mix: mixup and cutmix for classes, cmixup for scores
PRETRAIN_METHODS = ("simclr", "dcl", "vicreg", "byol")  # pretrain --method (lightly's losses and heads)
SELECT_METHODS = ("balanced", "uncertainty", "random")  # select --by
SEMI_METHODS = ("fixmatch", "self-training")  # train --semi: how --unlabelled photos teach
NO_FLIPS = "none"  # --flip-pairs none
PRECISIONS = ("auto", "32", "bf16", "16")  # every command's --precision
RUNTIMES = ("auto", "torch", "openvino", "onnxruntime")  # what computes a checkpoint's predictions
# What training hands Lightning for each: weights stay fp32, bf16 and 16 are autocast ("mixed").
LIGHTNING_PRECISION = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}
SPLITS = ("all", "train", "val", "test")  # evaluate --split
EXPORT_FORMATS = ("onnx", "torchscript", "openvino")  # export --format
RESULT_FORMATS = ("csv", "json", "parquet")  # infer --format (parquet needs pyarrow)
LOGGERS = ("tensorboard", "csv", "mlflow", "wandb")  # train --logger (see training.loggers)
LOGGER_PACKAGES = {"mlflow": "mlflow", "wandb": "wandb"}  # the optional package each needs


def lightning_precision(value: str | None) -> str | None:
    """--precision as Lightning spells it; None (auto) stays None for ``hardware.default_precision``.

    The library also takes Lightning's own names (``32-true``, ``bf16-true``, ...) as they are; the
    commands offer ``PRECISIONS``, the same on every command.
    """
    if value in (None, "auto"):
        return None
    return LIGHTNING_PRECISION.get(value, value)


def parse_loggers(text: str | None) -> list[str]:
    """``tensorboard,csv`` -> the names, checked; ``none`` (or empty) -> no logger."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise UserError(f"--logger {text}: unknown logger {', '.join(unknown)}; choose from {', '.join(LOGGERS)} "
                        "or none")
    for name in names:
        if name in LOGGER_PACKAGES and importlib.util.find_spec(LOGGER_PACKAGES[name]) is None:
            package = LOGGER_PACKAGES[name]
            raise UserError(f"--logger {text}: {name} needs the {package} package (pip install {package})")
    return list(dict.fromkeys(names))
