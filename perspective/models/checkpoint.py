"""Checkpoint files: load one safely, write a slim copy, store a calibration, find the shipped model.

- Checkpoints are read by ``files.read_checkpoint`` (``weights_only``: a file that needs arbitrary
  pickles is refused before any of its code can run). The model is rebuilt from the hyperparameters
  stored in the checkpoint alone; no flag but the path is needed, and no weights are downloaded.
- Every write goes to a temporary name and is renamed (``save_atomically``): a reader sees the old
  file or the new one, never half of one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..results import partial_path
from .conformal import CHECKPOINT_KEY as CONFORMAL_KEY
from .files import read_checkpoint
from .module import PerspectiveModel
from .novelty import CHECKPOINT_KEY as NOVELTY_KEY
from .transforms import flip_permutation

PACKAGE = Path(__file__).resolve().parent.parent
# The shipped model(s): inside the installed package (pip install copies trained_models/ there), or
# in a checkout at the top of the repository, beside the package.
TRAINED_MODELS = (PACKAGE / "trained_models", PACKAGE.parent / "trained_models")

def shipped_checkpoint() -> Path:
    """The model shipped in ``trained_models/`` (the last ``.ckpt`` there by name)."""
    for folder in TRAINED_MODELS:
        found = sorted(folder.glob("*.ckpt"))
        if found:
            return found[-1]
    raise UserError(f"no checkpoint given (-c) and no shipped model in {TRAINED_MODELS[-1]}")


def checkpoint_path(given: str | os.PathLike | None) -> str:
    """The model file a command uses: the one given (``-c``), else the shipped model."""
    return str(given or shipped_checkpoint())


def load_checkpoint(path: str | os.PathLike) -> PerspectiveModel:
    """Rebuild the model stored in a Lightning checkpoint, in eval mode on the CPU.

    Raises ``UserError`` for a missing file, a file that is not a checkpoint of this toolkit, or one
    that would need arbitrary pickles to load (its code is never run).
    """
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict) or "hyper_parameters" not in checkpoint or "state_dict" not in checkpoint:
        raise UserError(f"checkpoint {path}: not a checkpoint written by train (no hyper_parameters)")
    hparams = {**checkpoint["hyper_parameters"], "weights": "none"}  # weights come from the state_dict
    if "flip_permutation" not in hparams:  # written before checkpoints recorded it: trained with the default pairs
        names = hparams.get("target_names") or hparams.get("class_names") or []
        hparams["flip_permutation"] = flip_permutation(list(names))
    try:
        model = PerspectiveModel(**hparams)
        state = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
        model.load_state_dict(state)
    except (TypeError, RuntimeError) as exc:
        raise UserError(f"checkpoint {path}: does not rebuild a model ({exc})".splitlines()[0]) from None
    model.conformal = checkpoint.get(CONFORMAL_KEY)
    model.set_novelty(checkpoint.get(NOVELTY_KEY))
    model.checkpoint_file = str(path)  # what a faster runtime converts (prediction.converted)
    return model.eval()


def save_atomically(content: dict[str, Any], target: str | os.PathLike) -> Path:
    """``torch.save`` into a temporary file beside ``target``, then renamed onto it."""
    target = Path(target)
    partial = partial_path(target)
    try:
        torch.save(content, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def slim_checkpoint(source: str | os.PathLike, target: str | os.PathLike, half: bool = True) -> Path:
    """Write a prediction-only copy of a checkpoint: hyperparameters and weights, nothing else.

    Optimizer and scheduler state make a training checkpoint three times the size of its weights;
    with ``half`` the weights are stored in fp16 (``load_checkpoint`` casts them back to fp32), which
    halves it again.
    """
    checkpoint = read_checkpoint(source)
    state = {k: v.half() if half and v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    slim = {
        "hyper_parameters": checkpoint["hyper_parameters"],
        "state_dict": state,
        "epoch": checkpoint.get("epoch"),
        CONFORMAL_KEY: checkpoint.get(CONFORMAL_KEY),
        NOVELTY_KEY: checkpoint.get(NOVELTY_KEY),
        "pytorch-lightning_version": checkpoint.get("pytorch-lightning_version"),
    }
    return save_atomically(slim, target)


def store_calibration(checkpoint: str | os.PathLike, calibration: dict[str, Any] | None = None,
                      novelty: dict[str, Any] | None = None) -> None:
    """Write a conformal ``calibration`` (``models.conformal.calibrate``) and/or a novelty summary
    (``models.novelty.summarise``) into the checkpoint file."""
    content = read_checkpoint(checkpoint)
    if calibration is not None:
        content[CONFORMAL_KEY] = calibration
    if novelty is not None:
        content[NOVELTY_KEY] = novelty
    save_atomically(content, checkpoint)


def weights_info(weights: str) -> dict[str, Any]:
    """What a ``--weights`` file says about itself: its ``hyper_parameters`` (backbone, preprocessing, and
    for ``pretrain``'s output how it was learnt); empty for ``imagenet``, ``none`` or a plain state_dict.

    Unreadable files are left to the backbone's loader, which says why in one line.
    """
    if weights in ("imagenet", "none") or not Path(weights).is_file():
        return {}
    try:
        content = read_checkpoint(weights, "--weights", lazy=True)
    except UserError:  # create_backbone reports the file's problem
        return {}
    info = content.get("hyper_parameters") if isinstance(content, dict) else None
    return dict(info) if isinstance(info, dict) else {}
