"""int8 OpenVINO models: post-training quantization with NNCF, kept only if it predicts like fp32.

    perspective export -c checkpoints/resnet18/<run>/last.ckpt --format openvino --int8 --calibration photos/ -o model.xml

Quantization needs a few hundred of the user's own images (``CALIBRATION_IMAGES``): NNCF runs the
fp32 model on them, records the range of every activation and sets the int8 scales from those
ranges, so the images must look like what the model will see (no labels needed). NNCF is
OpenVINO's own quantizer and the one its runtime is tuned for: its models put a FakeQuantize before
each convolution and matrix product, which OpenVINO fuses into int8 kernels (VNNI or AMX where the
CPU has them); it also corrects the bias shift that rounding the weights causes.

Every int8 model is checked before it is written: the fp32 and the int8 model (both run by
OpenVINO, the fp32 one in fp32) predict the same held-out images, the images of the calibration
folder that calibration did not use, or ``--check DIR``. The check reports, per target, the largest
and the mean absolute difference and the R² of the int8 scores against the fp32 ones (the fp32
model scores 1 against itself), or for classes how often the label agrees. When that R² (or the
agreement) is more than ``max_drop`` below 1, nothing is written: a file that silently predicts
worse is never left behind.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import CALIBRATION_IMAGES, ExportConfig, default_workers
from ..data.datasets import ImageFileDataset, InTurnLoader
from ..data.images import list_images
from ..errors import UserError
from ..models.backbones import Preprocessing
from ..models.module import PerspectiveModel
from ..models.outputs import output_keys
from ..models.transforms import eval_resize, normalise_batch
from ..prediction.predictor import Predictor
from ..prediction.runtimes import OpenVinoModel, encode_metadata, require_openvino
from .writers import PredictionGraph, openvino_graph, openvino_path, save_openvino

log = logging.getLogger(__name__)

CHECK_IMAGES = 1000  # at most this many held-out images are predicted twice for the check
MIN_CHECK_IMAGES = 20  # fewer say too little: then --check DIR is needed


def _progress_bars_wanted() -> bool:
    """NNCF draws progress bars on stdout: wanted on a terminal, unless -q asked for warnings only."""
    return sys.stdout.isatty() and logging.getLogger().isEnabledFor(logging.INFO)


def require_nncf():
    # NNCF's import looks for a CUDA toolkit through torch's extension builder, whose warning that there is
    # none on a CPU machine is nothing a user of int8 on the CPU can act on.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        import nncf
    except ImportError:
        raise UserError("--int8 needs nncf: pip install 'perspective[openvino]' (openvino and nncf)") from None
    return nncf


@dataclass
class Comparison:
    """How the int8 model's predictions differ from the fp32 model's on the same images."""

    task: str
    images: int
    names: list[str]
    max_abs: list[float] = field(default_factory=list)  # per target, or per class probability
    mean_abs: list[float] = field(default_factory=list)
    r2: list[float] = field(default_factory=list)  # regression: int8 scores against the fp32 scores
    agreement: float | None = None  # classification: share of images with the same label

    @property
    def score(self) -> float:
        """Mean R² against fp32 (regression) or label agreement (classification); 1 is a perfect copy."""
        return float(np.mean(self.r2)) if self.task == "regression" else float(self.agreement)

    @property
    def drop(self) -> float:
        return 1.0 - self.score

    def table(self) -> str:
        """The printed check: one line per target (or class), then the summary line."""
        width = max(len(n) for n in self.names)
        if self.task == "regression":
            lines = [f"{'target':<{width}}  max |diff|  mean |diff|  R² vs fp32"]
            lines += [f"{n:<{width}}  {m:10.4f}  {a:11.4f}  {r:10.4f}"
                      for n, m, a, r in zip(self.names, self.max_abs, self.mean_abs, self.r2)]
            lines.append(f"{'mean':<{width}}  {max(self.max_abs):10.4f}  {np.mean(self.mean_abs):11.4f}  "
                         f"{self.score:10.4f}")
            return "\n".join(lines)
        lines = [f"{'class':<{width}}  max |diff prob|  mean |diff prob|"]
        lines += [f"{n:<{width}}  {m:15.4f}  {a:16.4f}" for n, m, a in zip(self.names, self.max_abs, self.mean_abs)]
        lines.append(f"label agreement with fp32: {self.agreement:.4f} ({self.images} images)")
        return "\n".join(lines)


def compare(reference: np.ndarray, candidate: np.ndarray, task: str, names: Sequence[str]) -> Comparison:
    """``candidate``'s outputs (N, K) against ``reference``'s, as ``Comparison``."""
    difference = np.abs(candidate - reference)
    result = Comparison(task, len(reference), list(names), difference.max(axis=0).tolist(),
                        difference.mean(axis=0).tolist())
    if task == "regression":
        residual = ((candidate - reference) ** 2).sum(axis=0)
        spread = ((reference - reference.mean(axis=0)) ** 2).sum(axis=0)
        # a target the fp32 model scores the same everywhere: R² is 1 when int8 matches it, else 0
        result.r2 = [float(1 - r / s) if s > 0 else float(r == 0) for r, s in zip(residual, spread)]
    else:
        result.agreement = float((candidate.argmax(axis=1) == reference.argmax(axis=1)).mean())
    return result


class Int8Refused(UserError):
    """The int8 model predicted too differently from fp32; ``comparison`` says how."""

    def __init__(self, message: str, comparison: Comparison):
        super().__init__(message)
        self.comparison = comparison


def split_images(calibration: str | os.PathLike, check: str | os.PathLike | None, seed: int = 0
                 ) -> tuple[list[str], list[str]]:
    """(calibration images, check images): up to ``CALIBRATION_IMAGES`` of the calibration folder
    (a fixed random pick); the check images are ``check``'s, or the rest of the folder's."""
    for flag, folder in (("--calibration", calibration), ("--check", check)):
        if folder is not None and not Path(folder).is_dir():
            raise UserError(f"{flag} {folder}: no such folder")
    images = list_images(calibration, recursive=True)
    if not images:
        raise UserError(f"--calibration {calibration}: no images found")
    order = np.random.default_rng(seed).permutation(len(images))
    chosen = [images[i] for i in order[:CALIBRATION_IMAGES]]
    if check is not None:
        held_out = list_images(check, recursive=True)
        if not held_out:
            raise UserError(f"--check {check}: no images found")
    else:
        held_out = [images[i] for i in order[CALIBRATION_IMAGES:]]
        if len(held_out) < MIN_CHECK_IMAGES:
            raise UserError(
                f"--calibration {calibration}: {len(images)} images leave {len(held_out)} for the accuracy check "
                f"after {len(chosen)} for calibration; give --check DIR with other images of the same kind "
                f"(at least {MIN_CHECK_IMAGES})")
    if len(held_out) > CHECK_IMAGES:
        held_out = [held_out[i] for i in sorted(np.random.default_rng(seed + 1).permutation(len(held_out))[:CHECK_IMAGES])]
    return chosen, held_out


def _predict(model, paths: Sequence[str], batch_size: int, workers: int) -> tuple[np.ndarray, list[str]]:
    """Outputs of ``model`` on the readable ``paths`` (N, K), through the Predictor infer uses."""
    predictor = Predictor(model, device="cpu")
    keys = output_keys(model.hparams["task"], model.names)
    outputs, readable = [], []
    for row in predictor.predict_paths(paths, batch_size=batch_size, workers=workers, progress=False):
        if not row["error"]:
            readable.append(row["path"])
            outputs.append([row[k] for k in keys])
    return np.asarray(outputs, dtype=np.float64), readable


def calibration_inputs(model: PerspectiveModel, paths: Sequence[str], workers: int) -> list[np.ndarray]:
    """The model's normalised inputs for ``paths``, one (1, 3, S, S) array each; unreadable files are skipped."""
    pre = Preprocessing.from_dict(model.hparams.preprocessing)
    dataset = ImageFileDataset(paths, eval_resize(pre), pre.image_size, pre.decode_size)
    inputs = []
    for images, _, errors in InTurnLoader(dataset, ExportConfig.batch_size, workers):
        batch = normalise_batch(images, pre).contiguous().numpy()
        inputs += [batch[i:i + 1] for i, error in enumerate(errors) if not error]
    if not inputs:
        raise UserError("--calibration: none of the images could be read")
    return inputs


def export_int8(model: PerspectiveModel, target: str | os.PathLike, calibration: str | os.PathLike,
                check: str | os.PathLike | None = None, max_drop: float = ExportConfig.max_drop,
                batch_size: int = ExportConfig.batch_size, workers: int | None = None, seed: int = 0) -> Comparison:
    """Quantize ``model`` to an int8 OpenVINO IR at ``target`` (.xml) if it passes the check; the check's figures.

    Raises ``Int8Refused`` (a ``UserError``, with the comparison) when the int8 model's mean R²
    against fp32 (or its label agreement) is more than ``max_drop`` below 1; nothing is written then.
    """
    require_openvino()
    nncf = require_nncf()
    target = openvino_path(target)
    workers = default_workers() if workers is None else workers
    chosen, held_out = split_images(calibration, check, seed)
    model = model.float().eval().to(memory_format=torch.contiguous_format)
    size = model.hparams.preprocessing["image_size"]
    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    fp32 = openvino_graph(PredictionGraph(model).eval(), example, encode_metadata(model))
    log.info("calibrating int8 on %d images of %s", len(chosen), calibration)
    inputs = calibration_inputs(model, chosen, workers)
    logging.getLogger("nncf").setLevel(logging.WARNING)  # NNCF reports every statistic it collects at INFO
    with contextlib.nullcontext() if _progress_bars_wanted() else contextlib.redirect_stdout(io.StringIO()):
        quantized = nncf.quantize(fp32, nncf.Dataset(inputs), subset_size=len(inputs))
    with tempfile.TemporaryDirectory(dir=target.parent if target.parent.exists() else None) as scratch:
        fp32_path = save_openvino(fp32, Path(scratch) / "fp32.xml")
        int8_path = save_openvino(quantized, Path(scratch) / target.name)
        reference_model = OpenVinoModel(fp32_path, precision="32")
        reference, readable = _predict(reference_model, held_out, batch_size, workers)
        if not readable:
            raise UserError("the accuracy check found no readable image")
        candidate, _ = _predict(OpenVinoModel(int8_path), readable, batch_size, workers)
        comparison = compare(reference, candidate, model.hparams.task, model.names)
        what = "mean R² against fp32" if comparison.task == "regression" else "label agreement with fp32"
        if comparison.drop > max_drop:
            raise Int8Refused(f"int8 model refused: {what} {comparison.score:.4f}, {comparison.drop:.4f} below 1 "
                              f"> --max-drop {max_drop:g}; nothing written", comparison)
    save_openvino(quantized, target)
    log.info("int8 model written to %s (%s %.4f on %d images)", target, what, comparison.score, comparison.images)
    return comparison

