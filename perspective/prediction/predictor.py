"""The one prediction path: a loaded model on a device, images in, rows out.

infer, evaluate, the server, a training run's test report, the audit and the int8 check all go
through ``Predictor``, so a model gives the same numbers whichever front end asks. The model comes
from ``models.checkpoint.load_checkpoint`` or, exported, from ``prediction.runtimes``.

- Images are decoded and resized in parallel (threads taking turns with the model on a CPU,
  DataLoader worker processes feeding a GPU) and normalised a batch at a time where the model runs.
  An unreadable file becomes a row with its ``error`` filled and no prediction, never an exception.
- Inference runs under ``torch.inference_mode`` in channels_last, with bf16 autocast where the
  hardware computes bf16 natively (see ``hardware``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import NOVELTY_LEVEL, PRECISIONS, PredictConfig
from ..data.datasets import ImageFileDataset, InTurnLoader
from ..errors import UserError
from ..hardware import cpu_has_bf16, prediction_device
from ..models.backbones import Preprocessing
from ..models.conformal import MIN_PER_BIN, Intervals, calibration_sizes
from ..models.module import PerspectiveModel
from ..models.novelty import p_values
from ..models.outputs import (
    NOVELTY_COLUMNS,
    SET_COLUMN,
    bound_columns,
    interval_columns,
    output_columns,
    set_cell,
)
from ..models.transforms import eval_resize, normalise_batch
from ..progress import progress as progress_of
from .converted import predicting_model

log = logging.getLogger(__name__)

DECIMALS = 6  # of every predicted number in result rows (CSV, JSON, HTTP)


def mirror_permutation(model) -> list[int]:
    """Where each output of a mirrored image belongs: the training flip's target or class permutation.

    A checkpoint records it (``flip_permutation``; ``load_checkpoint`` gives one written before that
    the default pairs, every ``*left*`` name with its ``*right*`` twin, as its training had).
    """
    permutation = model.hparams.get("flip_permutation")
    if permutation is None:
        raise UserError("--tta: this model was trained without mirror flips (--flip-pairs none, or a left or "
                        "right target or class without a counterpart), so a mirrored image has no valid reading")
    return list(permutation)


def mirror_average(forward, batch: torch.Tensor, permutation: Sequence[int]) -> torch.Tensor:
    """The mean of ``forward`` on ``batch`` and on its mirror, the mirror's outputs put back in place.

    A mirror turns a car's left side into its right, so the mirror's score for ``*_left`` is the
    image's score for ``*_right`` (and the class ``front_left`` its ``front_right``); indexing by the
    flip permutation swaps them back. For classes this averages probabilities.
    """
    both = forward(torch.cat([batch, batch.flip(-1)])).float()
    plain, mirrored = both.chunk(2)
    return (plain + mirrored[:, list(permutation)]) / 2


def model_intervals(model, level: float | None) -> Intervals | None:
    """The model's conformal intervals at coverage ``level`` (None: no intervals asked for).

    Raises ``UserError`` when the model carries no calibration (``models.conformal``).
    """
    if level is None:
        return None
    calibration = getattr(model, "conformal", None)
    if not calibration:
        raise UserError("--interval: this model carries no conformal calibration (checkpoints written by train.py "
                        "since intervals exist have one); calibrate it on labelled data with "
                        "evaluate.py -c CHECKPOINT -d DATA --calibrate")
    sigmoid = model.hparams.task == "regression" and model.hparams.get("output_activation") == "sigmoid"
    intervals = Intervals(calibration, level, model.names, (0.0, 1.0) if sigmoid else None)
    warn_small_calibration(calibration)
    return intervals


_WARNED: set[int] = set()


def warn_small_calibration(calibration: dict) -> None:
    """One warning line, once per calibration, when its intervals rest on fewer than ``MIN_PER_BIN`` images per group.

    Split conformal holds its coverage on average over calibration sets; with a few dozen images
    one set's quantile can land far from the level (60 images gave 0.84-0.95 at 0.9).
    """
    if id(calibration) in _WARNED:
        return
    _WARNED.add(id(calibration))
    sizes = calibration_sizes(calibration)
    fewest = min(sizes.values())
    if fewest < MIN_PER_BIN:
        name = min(sizes, key=sizes.get)
        log.warning("--interval: the calibration rests on %d image(s) (%s), under %d: coverage may stray from the "
                    "level; calibrate on more labelled images (evaluate --calibrate, or audit --calibrate on the "
                    "training data)", fewest, name if name != "classes" else "the class sets", MIN_PER_BIN)


class Predictor:
    """A loaded model on a device, ready to turn image paths into rows.

    Args:
        model: from ``load_model`` (a checkpoint, or an exported model that runs in onnxruntime or OpenVINO on the CPU).
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda[:N]"``.
        precision: ``"auto"`` (bf16 where native), ``"32"``, ``"bf16"`` or ``"16"`` (CUDA only).
        compile: run the model through ``torch.compile`` (slow first batch, faster after).
        tta: test-time augmentation: each output is the mean of the image's and its mirror's, with
            the mirror's left and right targets (or classes) swapped back (``mirror_permutation``).
        interval: conformal coverage (for instance 0.9): each row gets ``<target>_low`` and
            ``<target>_high`` (regression) or the ``set`` of classes (``models.conformal``).
        novelty: with a model that carries a novelty summary, each row gets ``novelty_p`` and ``novel``
            (the p-value at or below this level; 0: never) (``models.novelty``).
    """

    def __init__(self, model: PerspectiveModel, device: str = "auto", precision: str = "auto", compile: bool = False,
                 tta: bool = False, interval: float | None = None, novelty: float = NOVELTY_LEVEL):
        in_torch = getattr(model, "runs_in_torch", True)
        if not in_torch:  # an exported model runs on the CPU, in what its runtime computes (OpenVINO: --precision)
            if hasattr(model, "with_precision"):
                model = model.with_precision(precision)
            device, precision = "cpu", "32"
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(device)
        except RuntimeError:
            raise UserError(f"device {device!r}: not a device name (cpu, cuda, cuda:N)") from None
        if self.device.type not in ("cpu", "cuda"):
            raise UserError(f"device {device}: prediction runs on cpu or cuda[:N]")
        if self.device.type == "cuda" and (self.device.index or 0) >= torch.cuda.device_count():
            raise UserError(f"device {device}: only {torch.cuda.device_count()} CUDA GPU(s) found")
        if precision not in PRECISIONS:
            raise UserError(f"--precision for prediction must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        if precision == "auto":
            native_bf16 = torch.cuda.is_bf16_supported() if self.device.type == "cuda" else cpu_has_bf16()
            precision = "bf16" if native_bf16 else "32"
        if precision == "16" and self.device.type != "cuda":
            raise UserError("--precision 16 needs a CUDA GPU; use bf16 or 32 on the CPU")
        self.precision = precision if in_torch else model.precision
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()
        self.preprocessing = Preprocessing.from_dict(model.hparams.preprocessing)
        self.resize = eval_resize(self.preprocessing)  # PIL image -> PIL image of the input size
        self.source_model = model  # what was given: predictor_for may swap in a faster runtime's twin
        self.intervals = model_intervals(model, interval)
        self.columns = output_columns(model, interval)
        self._forward = model.predict_outputs
        if compile and in_torch:
            self._forward = torch.compile(model.predict_outputs, dynamic=True)
        self.mirror = mirror_permutation(model) if tta else None
        self.novelty = novelty_calibration(model)
        self.novelty_level = novelty
        if self.mirror is not None and self.novelty is not None:  # the mirror's novelty score stays in its column
            self.mirror = [*self.mirror, len(model.names)]

    @property
    def interval(self) -> float | None:
        """The coverage of the rows' conformal intervals, or None without them."""
        return self.intervals.level if self.intervals is not None else None

    def _autocast(self):
        if self.precision == "32":
            return nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    @torch.inference_mode()
    def predict_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised image batch -> scores or class probabilities (fp32, on the CPU)."""
        batch = batch.to(self.device, non_blocking=True, memory_format=torch.channels_last)
        with self._autocast():
            if self.mirror is None:
                return self._forward(batch).float().cpu()
            return mirror_average(self._forward, batch, self.mirror).cpu()

    @torch.inference_mode()
    def predict_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, H, W, 3)`` images, already resized -> outputs; normalised on the model's device."""
        images = images.to(self.device, non_blocking=True)
        return self.predict_tensor(normalise_batch(images, self.preprocessing))

    def row(self, path: str, output: torch.Tensor | None, error: str) -> dict[str, Any]:
        """One result row; numbers rounded to ``DECIMALS`` (a float32 output's further digits are noise)."""
        row: dict[str, Any] = {"path": path}
        names = self.model.names
        score = None if output is None or self.novelty is None else float(output[len(names)])
        output = None if output is None else output[:len(names)]
        values = [round(v, DECIMALS) for v in output.tolist()] if output is not None else None
        if self.model.hparams.task == "regression":
            row.update(zip(names, values or [None] * len(names)))
        elif values is None:
            row.update({"label": None, "confidence": None, **{f"prob_{c}": None for c in names}})
        else:
            best = int(output.argmax())
            row.update({"label": names[best], "confidence": values[best]})
            row.update({f"prob_{c}": p for c, p in zip(names, values)})
        if self.intervals is not None:
            row.update(self._interval(output))
        if self.novelty is not None:
            row.update(self._novelty(score))
        row["error"] = error
        return row

    def _novelty(self, score: float | None) -> dict[str, Any]:
        """The row's novelty p-value and flag (empty for an unread image)."""
        if score is None:
            return dict.fromkeys(NOVELTY_COLUMNS)
        p_value = float(p_values([score], self.novelty)[0])
        return {"novelty_p": round(p_value, DECIMALS), "novel": p_value <= self.novelty_level}

    def _interval(self, output: torch.Tensor | None) -> dict[str, Any]:
        """The row's interval columns: each target's bounds, or the class set (empty for an unread image)."""
        names = self.model.names
        if self.intervals.task == "classification":
            members = self.intervals.class_sets(output.numpy()[None])[0] if output is not None else []
            return {SET_COLUMN: set_cell([names[c] for c in members]) if output is not None else None}
        if output is None:
            return dict.fromkeys(interval_columns("regression", names))
        low, high = self.intervals.regression(output.numpy()[None].astype(np.float64))
        return {column: round(float(value), DECIMALS) for j, name in enumerate(names)
                for column, value in zip(bound_columns(name), (low[0, j], high[0, j]), strict=True)}

    def _batches(self, paths: Sequence[str | os.PathLike], batch_size: int, workers: int):
        """The dataset of ``paths`` and a loader of its decoded batches for this device."""
        pre = self.preprocessing
        dataset = ImageFileDataset(paths, self.resize, pre.image_size, pre.decode_size)
        if self.device.type == "cpu":
            return dataset, InTurnLoader(dataset, batch_size, workers)
        return dataset, DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=min(workers, max(1, len(dataset) // batch_size)) if workers else 0,
            pin_memory=self.device.type == "cuda",
        )

    @torch.inference_mode()
    def features_of(self, paths: Sequence[str | os.PathLike], batch_size: int = PredictConfig.batch_size,
                    workers: int = 0) -> torch.Tensor:
        """The backbone's features (the head's input) of every readable image of ``paths``, in order, fp32 on
        the CPU: what a novelty summary is made of. Unreadable images are left out."""
        if not getattr(self.model, "runs_in_torch", True):
            raise UserError("a novelty summary is made from a checkpoint's features; this is an exported model")
        _, loader = self._batches(paths, batch_size, workers)
        found = []
        for images, _, errors in loader:
            ok = torch.tensor([not e for e in errors])
            if ok.any():
                batch = normalise_batch(images[ok].to(self.device), self.preprocessing)
                with self._autocast():
                    found.append(self.model.features(batch.to(memory_format=torch.channels_last)).float().cpu())
        width = self.model.head[-1].in_features
        return torch.cat(found) if found else torch.empty(0, width)

    def predict_paths(
        self, paths: Sequence[str | os.PathLike], batch_size: int = PredictConfig.batch_size, workers: int = 0,
        progress: bool = True, log_every: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """Yield one row per path, in order, as batches finish (nothing accumulates).

        ``workers``: decoding threads that take turns with the model on a CPU, or DataLoader worker
        processes that decode while a GPU computes (see ``perspective.data.datasets.InTurnLoader``); 0 decodes
        in this thread. ``progress``: a bar on a terminal, else a log line every ``log_every`` images (0:
        every ``progress.LOG_SECONDS``).
        """
        dataset, loader = self._batches(paths, batch_size, workers)
        spacing = {"every": log_every, "seconds": None} if log_every else {}
        with progress_of(log, len(dataset), show=progress and len(loader) > 1, **spacing) as meter:
            for images, indices, errors in loader:
                yield from self.batch_rows(images, [dataset.paths[i] for i in indices.tolist()], errors)
                meter.update(len(indices))

    def batch_rows(self, images: torch.Tensor, paths: Sequence[str], errors: Sequence[str]) -> list[dict[str, Any]]:
        """The rows of one decoded batch (``ImageFileDataset`` samples, collated); unreadable ones get their error."""
        ok = torch.tensor([not e for e in errors])
        readable = images if ok.all() else images[ok]  # indexing would copy the whole batch
        outputs = self.predict_images(readable) if ok.any() else None
        rows, k = [], 0
        for path, error in zip(paths, errors):
            output = None
            if not error:
                output, k = outputs[k], k + 1
            rows.append(self.row(path, output, error))
        return rows


def predictor_for(cfg: PredictConfig, model: Any, device: str | None = None) -> Predictor:
    """The ``Predictor`` a command's flags ask for: ``cfg``'s device (``device`` instead where the command
    runs on one device of its own choosing), runtime (``--runtime``: a checkpoint's OpenVINO twin on the CPU
    by default, ``converted``), precision, ``torch.compile``, TTA, interval and novelty level.
    ``source_model`` stays the model given (saliency and features need PyTorch)."""
    device = device or prediction_device(cfg)
    checkpoint = getattr(model, "checkpoint_file", None)
    running = model
    if checkpoint is not None and not cfg.compile:
        on_gpu = str(device).startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        running = predicting_model(getattr(cfg, "runtime", "torch"), checkpoint, model, "cuda" if on_gpu else "cpu",
                                   cfg.precision)
    predictor = Predictor(running, device=device, precision=cfg.precision, compile=cfg.compile, tta=cfg.tta,
                          interval=cfg.interval, novelty=cfg.novelty)
    predictor.source_model = model
    return predictor


def novelty_calibration(model: Any) -> np.ndarray | None:
    """The sorted calibration scores of ``model``'s novelty summary, or None (and a one-line hint, once)
    for a model that carries none."""
    summary = getattr(model, "novelty", None)
    if summary is None:
        if not getattr(model, "novelty_hinted", False):  # once a model, however many predictors it gets
            model.novelty_hinted = True
            log.info("this model carries no novelty summary, so rows have no novelty_p or novel column; add one with "
                     "perspective evaluate -c CHECKPOINT -d LABELLED_PHOTOS --calibrate")
        return None
    return np.asarray(summary["calibration"], dtype=np.float64)
