"""A checkpoint's twin in a faster CPU runtime, made once and kept: what ``--runtime auto`` runs.

OpenVINO runs the same fp32 graph 1.4-1.6x faster than PyTorch on the CPUs measured
(``docs/performance.md``). So on a CPU, a checkpoint is converted to an OpenVINO model (or an ONNX one
for ``--runtime onnxruntime``) the first time it is used, and the conversion is cached:

- **keyed** by the checkpoint's content (its SHA-256), the runtime's version and ``FORMAT``, under
  ``$PERSPECTIVE_HOME/converted/`` (``home.perspective_home``), so a changed checkpoint or an upgraded
  runtime gets a fresh conversion and a stale one is never found;
- **never trusted**: a conversion enters the cache only once it agrees with PyTorch in fp32 within
  ``ExportConfig.tolerance`` on a probe batch (as ``export`` checks every file), with the digests of its
  files beside it; a cached model is used only when its files still have those digests and it loads;
  otherwise it is made again;
- **safe to make twice at once**: each process converts into a folder of its own and renames it into
  place; the first rename wins and the others use it;
- **bounded**: the ``KEEP`` most recently used conversions stay, older ones are removed as new ones come.

A model that cannot be converted, or disagrees, falls back to PyTorch with one log line saying why.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ExportConfig
from ..errors import UserError
from ..home import perspective_home
from ..models.module import PerspectiveModel
from .graphs import PredictionGraph, openvino_graph, save_openvino, write_onnx
from .runtimes import OnnxModel, OpenVinoModel, encode_metadata

log = logging.getLogger(__name__)

FORMAT = 1  # bumped when the graph a conversion writes changes
KEEP = 16  # conversions kept: the least recently used beyond these are removed when one is added
DIGESTS = "digests.json"  # written last: a folder without it is unfinished
FILES = {"openvino": ("model.xml", "model.bin"), "onnxruntime": ("model.onnx",)}
PROBE_IMAGES = 4


def cache_root() -> Path:
    return perspective_home() / "converted"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def runtime_version(runtime: str) -> str:
    return importlib.metadata.version("openvino" if runtime == "openvino" else "onnxruntime")


def cache_folder(checkpoint: str | os.PathLike, runtime: str) -> Path:
    """Where ``checkpoint``'s twin in ``runtime`` lives: its content, the runtime's version and FORMAT name it."""
    key = f"{_sha256(Path(checkpoint))[:32]}-{runtime}-{runtime_version(runtime)}-f{FORMAT}"
    return cache_root() / key


def _intact(folder: Path, runtime: str) -> bool:
    """Whether ``folder`` holds a finished conversion whose files still have the digests written with them."""
    try:
        recorded = json.loads((folder / DIGESTS).read_text())
        return all(recorded.get(name) == _sha256(folder / name) for name in FILES[runtime])
    except (OSError, ValueError):
        return False


def _load(folder: Path, runtime: str, precision: str):
    if runtime == "openvino":
        return OpenVinoModel(folder / FILES[runtime][0], precision=precision)
    return OnnxModel(folder / FILES[runtime][0])


def _convert(model: PerspectiveModel, runtime: str) -> Path:
    """Write ``model``'s graph into a new folder of the cache and rename it into place; the folder in place."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".converting-", dir=root))
    try:
        graph = PredictionGraph(model.float().eval().to(memory_format=torch.contiguous_format)).eval()
        size = model.hparams.preprocessing["image_size"]
        example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        first = scratch / FILES[runtime][0]
        if runtime == "openvino":
            save_openvino(openvino_graph(graph, example, encode_metadata(model)), first)
        else:
            write_onnx(graph, example, first, encode_metadata(model))
        (scratch / DIGESTS).write_text(json.dumps({name: _sha256(scratch / name) for name in FILES[runtime]}))
        return scratch
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _place(scratch: Path, folder: Path) -> None:
    """Rename a finished conversion into place; when another process got there first, keep its one."""
    try:
        os.rename(scratch, folder)
    except OSError:  # the folder exists: made meanwhile by another process (or a broken one, removed first)
        shutil.rmtree(scratch, ignore_errors=True)


def _agrees(converted, model: PerspectiveModel, tolerance: float) -> float:
    """The largest difference from PyTorch in fp32 on a probe batch (raises when it is over ``tolerance``)."""
    size = model.hparams.preprocessing["image_size"]
    probe = torch.randn(PROBE_IMAGES, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        reference = model.float().to(memory_format=torch.contiguous_format).predict_outputs(probe).numpy()
    difference = float(np.abs(converted.predict_outputs(probe).numpy() - reference).max())
    if not difference <= tolerance:
        raise ValueError(f"it differs from PyTorch by {difference:.1e} on a probe batch (over {tolerance:g})")
    return difference


def converted_model(checkpoint: str | os.PathLike, model: PerspectiveModel, runtime: str = "openvino",
                    precision: str = "auto", tolerance: float = ExportConfig.tolerance):
    """``model`` (loaded from ``checkpoint``) in ``runtime``, from the cache or converted now and cached.

    A conversion is checked against PyTorch before it enters the cache; a cached one is used when its files
    still have the digests written after that check (else it is made again). Raises ``UserError`` with the
    reason when it cannot be had (the runtime missing, a failed conversion, a disagreement with PyTorch);
    ``predicting_model`` turns that into a fall-back to PyTorch.
    """
    try:
        folder = cache_folder(checkpoint, runtime)
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"{runtime} is not installed") from None
    if folder.is_dir():
        if _intact(folder, runtime):
            try:
                loaded = _load(folder, runtime, precision)
                os.utime(folder)  # recently used: the last to be removed
                return loaded
            except (UserError, RuntimeError) as exc:
                log.info("the cached %s model in %s does not load (%s): converting again", runtime, folder,
                         str(exc).splitlines()[0])
        else:
            log.info("the cached %s model in %s is incomplete or changed: converting again", runtime, folder)
        shutil.rmtree(folder, ignore_errors=True)
    try:
        scratch = _convert(model, runtime)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a converter's failure of any kind means: stay in PyTorch
        raise UserError(f"the conversion to {runtime} failed ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    try:
        _agrees(_load(scratch, runtime, "32"), model, tolerance)
    except (UserError, ValueError, RuntimeError) as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise UserError(f"the {runtime} model {str(exc).splitlines()[0]}") from None
    _place(scratch, folder)
    _prune(folder.parent, keep=KEEP)
    return _load(folder, runtime, precision)


def _prune(root: Path, keep: int) -> None:
    """Remove all but the ``keep`` most recently used conversions (half-made scratch folders are left alone)."""
    done = sorted((f for f in root.iterdir() if f.is_dir() and not f.name.startswith(".")),
                  key=lambda f: f.stat().st_mtime, reverse=True)
    for stale in done[keep:]:
        shutil.rmtree(stale, ignore_errors=True)


def describe_runtime(model: Any) -> str:
    """``PyTorch``, ``OpenVINO`` or ``ONNX Runtime``: what computes a model's outputs."""
    if getattr(model, "runs_in_torch", True):
        return "PyTorch"
    return "OpenVINO" if isinstance(model, OpenVinoModel) else "ONNX Runtime"


def predicting_model(runtime: str, checkpoint: str | os.PathLike, model: Any, device: str, precision: str = "auto",
                     needs_torch: str | None = None):
    """The model a command predicts with: ``model`` itself, or its twin in ``runtime`` (``--runtime``).

    ``auto`` takes OpenVINO on the CPU when it can be had (``converted_model``), else PyTorch with one log
    line saying why; on a GPU, PyTorch. ``needs_torch`` names a part of the command that reads the model's
    insides (the backbone's features, gradients): it keeps PyTorch, and an explicit other runtime is refused.
    An exported model (``-c model.onnx``/``.xml``) is what it is.
    """
    if not getattr(model, "runs_in_torch", True) or runtime == "torch":
        return model
    if needs_torch:
        if runtime != "auto":
            raise UserError(f"--runtime {runtime}: {needs_torch} needs the model in PyTorch; use --runtime torch")
        log.info("runtime: PyTorch (%s needs it)", needs_torch)
        return model
    if runtime == "auto":
        if device != "cpu":
            return model
        if precision == "16":
            log.info("runtime: PyTorch (--precision 16)")
            return model
        try:
            converted = converted_model(checkpoint, model, "openvino", precision)
        except UserError as exc:
            log.info("runtime: PyTorch, not OpenVINO: %s", exc)
            return model
        log.info("runtime: OpenVINO (%s), converted from %s", converted.precision, Path(checkpoint).name)
        return converted
    if device != "cpu":
        raise UserError(f"--runtime {runtime} runs on the CPU; this command computes on {device}")
    return converted_model(checkpoint, model, runtime, precision)
