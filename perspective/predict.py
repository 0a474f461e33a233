"""The one prediction path: load a checkpoint safely, batch images, run fast, yield rows.

``infer.py`` (and later the server and the evaluation) go through ``Predictor``, so a model gives
the same numbers whichever front end asks.

- Checkpoints are read with ``torch.load(weights_only=True)``: a file that needs arbitrary pickles
  is refused before any of its code can run. The model is rebuilt from the hyperparameters stored
  in the checkpoint alone; no flag but the path is needed, and no weights are downloaded.
- Images are decoded and resized in parallel (threads taking turns with the model on a CPU,
  DataLoader worker processes feeding a GPU) and normalised a batch at a time where the model runs.
  An unreadable file becomes a row with its ``error`` filled and no prediction, never an exception.
- Inference runs under ``torch.inference_mode`` in channels_last, with bf16 autocast where the
  hardware computes bf16 natively (see ``perspective.hardware``).
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from .backbones import Preprocessing
from .config import PREDICTION_PRECISIONS as PRECISIONS
from .conformal import CHECKPOINT_KEY as CONFORMAL_KEY
from .conformal import SET_SEPARATOR, Intervals, interval_columns
from .data.datasets import ImageFileDataset, InTurnLoader
from .errors import UserError
from .hardware import cpu_has_bf16
from .model import PerspectiveModel
from .transforms import eval_resize, flip_permutation, normalise_batch

log = logging.getLogger(__name__)

DECIMALS = 6  # of every predicted number in result rows (CSV, JSON, HTTP)

TRAINED_MODELS = Path(__file__).resolve().parent / "trained_models"  # package data: installed with the code


def shipped_checkpoint() -> Path:
    """The model shipped in ``perspective/trained_models/`` (the last ``.ckpt`` there by name)."""
    found = sorted(TRAINED_MODELS.glob("*.ckpt"))
    if not found:
        raise UserError(f"no checkpoint given (-c) and no shipped model in {TRAINED_MODELS}")
    return found[-1]


ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
PICKLE_MAGIC = b"\x80"  # ... or, in its legacy format, a pickle (protocol 2 or later)


def _is_text(head: bytes) -> bool:
    try:
        return head.decode("utf-8").isprintable()
    except UnicodeDecodeError:
        return False


def load_checkpoint(path: str | os.PathLike) -> PerspectiveModel:
    """Rebuild the model stored in a Lightning checkpoint, in eval mode on the CPU.

    Raises ``UserError`` for a missing file, a file that is not a checkpoint of this toolkit, or one
    that would need arbitrary pickles to load (its code is never run).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path}: no such file")
    with open(path, "rb") as file:
        head = file.read(4)
    if head != ZIP_MAGIC and head[:1] != PICKLE_MAGIC:  # neither torch.save's zip nor its older pickle
        raise UserError(f"{path}: not a checkpoint (a .ckpt file that train.py writes; this one starts like "
                        f"{'a text file' if _is_text(head) else 'another kind of file'})")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UserError(
            f"checkpoint {path} refused: it needs arbitrary Python objects to load, which could run "
            f"code; only plain weights are accepted ({first})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - truncated or foreign files
        raise UserError(f"checkpoint {path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(checkpoint, dict) or "hyper_parameters" not in checkpoint or "state_dict" not in checkpoint:
        raise UserError(f"checkpoint {path}: not a checkpoint written by train.py (no hyper_parameters)")
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
    return model.eval()


def load_model(path: str | os.PathLike):
    """A checkpoint (``load_checkpoint``), or an exported model: ``.onnx`` runs in onnxruntime, an
    OpenVINO ``.xml`` (fp32 or int8) in OpenVINO, both on the CPU."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        from .export import OnnxModel

        return OnnxModel(path)
    if suffix == ".xml":
        from .export import OpenVinoModel

        return OpenVinoModel(path)
    return load_checkpoint(path)


def slim_checkpoint(source: str | os.PathLike, target: str | os.PathLike, half: bool = True) -> Path:
    """Write a prediction-only copy of a checkpoint: hyperparameters and weights, nothing else.

    Optimizer and scheduler state make a training checkpoint three times the size of its weights;
    with ``half`` the weights are stored in fp16 (``load_checkpoint`` casts them back to fp32), which
    halves it again. Written to a temporary name and renamed.
    """
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    state = {k: v.half() if half and v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    slim = {
        "hyper_parameters": checkpoint["hyper_parameters"],
        "state_dict": state,
        "epoch": checkpoint.get("epoch"),
        CONFORMAL_KEY: checkpoint.get(CONFORMAL_KEY),
        "pytorch-lightning_version": checkpoint.get("pytorch-lightning_version"),
    }
    target = Path(target)
    partial = target.with_name(target.name + ".partial")
    torch.save(slim, partial)
    os.replace(partial, target)
    return target


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


def output_columns(model: PerspectiveModel, interval: float | None = None) -> list[str]:
    """CSV columns for the model's rows: path, predictions, the interval's bounds or set (``interval``), error."""
    extra = interval_columns(model.hparams.task, model.names) if interval else []
    if model.hparams.task == "regression":
        return ["path", *model.names, *extra, "error"]
    return ["path", "label", "confidence", *(f"prob_{c}" for c in model.names), *extra, "error"]


def model_intervals(model, level: float | None) -> Intervals | None:
    """The model's conformal intervals at coverage ``level`` (None: no intervals asked for).

    Raises ``UserError`` when the model carries no calibration (``perspective.conformal``).
    """
    if level is None:
        return None
    calibration = getattr(model, "conformal", None)
    if not calibration:
        raise UserError("--interval: this model carries no conformal calibration (checkpoints written by train.py "
                        "since intervals exist have one); calibrate it on labelled data with "
                        "evaluate.py -c CHECKPOINT -d DATA --calibrate")
    sigmoid = model.hparams.task == "regression" and model.hparams.get("output_activation") == "sigmoid"
    return Intervals(calibration, level, model.names, (0.0, 1.0) if sigmoid else None)


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
            ``<target>_high`` (regression) or the ``set`` of classes (``perspective.conformal``).
    """

    def __init__(self, model: PerspectiveModel, device: str = "auto", precision: str = "auto", compile: bool = False,
                 tta: bool = False, interval: float | None = None):
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
        self.intervals = model_intervals(model, interval)
        self.columns = output_columns(model, interval)
        self._forward = model.predict_outputs
        if compile and in_torch:
            self._forward = torch.compile(model.predict_outputs, dynamic=True)
        self.mirror = mirror_permutation(model) if tta else None

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
        row["error"] = error
        return row

    def _interval(self, output: torch.Tensor | None) -> dict[str, Any]:
        """The row's interval columns: each target's bounds, or the class set (empty for an unread image)."""
        names = self.model.names
        if self.intervals.task == "classification":
            members = self.intervals.class_sets(output.numpy()[None])[0] if output is not None else []
            return {"set": SET_SEPARATOR.join(names[c] for c in members) if output is not None else None}
        if output is None:
            return dict.fromkeys(interval_columns("regression", names))
        low, high = self.intervals.regression(output.numpy()[None].astype(np.float64))
        return {k: round(float(v), DECIMALS) for j, n in enumerate(names)
                for k, v in ((f"{n}_low", low[0, j]), (f"{n}_high", high[0, j]))}

    def predict_paths(
        self, paths: Sequence[str | os.PathLike], batch_size: int = 32, workers: int = 0, progress: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Yield one row per path, in order, as batches finish (nothing accumulates).

        ``workers``: decoding threads that take turns with the model on a CPU, or DataLoader worker
        processes that decode while a GPU computes (see ``perspective.data.datasets.InTurnLoader``); 0 decodes
        in this thread.
        """
        pre = self.preprocessing
        dataset = ImageFileDataset(paths, self.resize, pre.image_size, pre.decode_size)
        if self.device.type == "cpu":
            loader = InTurnLoader(dataset, batch_size, workers)
        else:
            loader = DataLoader(
                dataset,
                batch_size=batch_size,
                num_workers=min(workers, max(1, len(dataset) // batch_size)) if workers else 0,
                pin_memory=self.device.type == "cuda",
            )
        bar = tqdm(total=len(dataset), unit="img", disable=not progress or len(loader) < 2)
        for images, indices, errors in loader:
            yield from self.batch_rows(images, [dataset.paths[i] for i in indices.tolist()], errors)
            bar.update(len(indices))
        bar.close()

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
