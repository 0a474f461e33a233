"""The settings several commands share, each flag declared once: ``-q`` (every command), the batch and
its workers, the devices, and the flags that commands of different families spell alike (``-c``,
``-o``, ``--tta``, ``--images``, ``--max-pixels``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .choices import PRECISIONS, RUNTIMES
from .files import MAX_PIXELS
from .flags import HARDWARE, MODEL, OUTPUT, flag
from .values import (
    existing_file,
    existing_path,
    lightning_devices,
    non_negative_int,
    output_path,
    positive_int,
)


@dataclass
class CommandConfig:
    """What every command takes."""

    quiet: bool = flag(False, "no progress bars or info logs", "-q", group=OUTPUT)


@dataclass
class BatchConfig(CommandConfig):
    """Images a batch and the workers that decode them: every command that reads images in batches."""

    batch_size: int = flag(32, "images per batch (default {default})", "-s", type=positive_int, group=HARDWARE)
    workers: int | None = flag(None, "decoding threads, or DataLoader processes with a GPU (default: min(CPU count, "
                                     "8))", "-w", type=non_negative_int, group=HARDWARE)  # None: default_workers()


@dataclass
class DeviceConfig(BatchConfig):
    """Where a command computes: ``-g``, Lightning's flags for several processes, and the precision.

    ``gpus`` (``-g N``) means N CUDA GPUs on every command (``-g 0``: the CPU). Training and the
    prediction commands that can run in several processes (infer, evaluate) read ``accelerator``,
    ``devices``, ``num_nodes`` and ``strategy`` as Lightning does; prediction in one process runs
    on ``PredictConfig.device``.
    """

    gpus: int | None = flag(None, "CUDA GPUs; 0 = the CPU (default: what torch finds)", "-g", type=non_negative_int,
                            group=HARDWARE)
    accelerator: str = flag("auto", "cpu, gpu, cuda, mps or auto (default {default})", metavar="KIND", group=HARDWARE)
    devices: str | int | None = flag(None, "devices per machine: 2, 0,1, -1 or auto; a process each (default: auto to "
                                           "train, one to predict)", type=lightning_devices, group=HARDWARE)
    num_nodes: int = flag(1, "machines taking part (default {default})", type=positive_int, group=HARDWARE)
    strategy: str = flag("auto", "ddp, ddp_spawn, ... (default {default})", group=HARDWARE)
    precision: str = flag("auto", "auto = bf16 where native, else 32; bf16 and 16 autocast fp32 weights (default "
                                  "{default})", choices=PRECISIONS, group=HARDWARE)


# DeviceConfig's fields that spread a job over several processes: not flags of a command that predicts in one.
SEVERAL_PROCESSES = ("devices", "num_nodes", "strategy")


def checkpoint_flag(what: str = "a checkpoint of train") -> Any:
    """``-c/--checkpoint`` of a command that loads a model; None means the shipped one."""
    return flag(None, f"{what} (default: the shipped model)", "-c", type=existing_file, group=MODEL)


def output_flag(default: str | None, what: str, *aliases: str, **attributes: Any) -> Any:
    """``-o/--output`` (and a command's older spellings as ``aliases``): where a command writes."""
    shown = " (default ./{default})" if default else ""
    return flag(default, what + shown, "-o", type=output_path, aliases=aliases or None,
                required=True if default is None else None, **attributes)


def runtime_flag() -> Any:
    """``--runtime``: what computes a checkpoint's predictions (``prediction.converted``)."""
    return flag("auto", "auto = OpenVINO on a CPU where it agrees with PyTorch; torch, openvino or onnxruntime "
                        "(default {default})", choices=RUNTIMES, metavar="NAME", group=HARDWARE)


def tta_flag() -> Any:
    """``--tta``: predictions averaged with the mirror image's (infer, evaluate, serve, train's test report)."""
    return flag(False, "average each prediction with its mirror image's", group=MODEL)


def images_flag(**attributes: Any) -> Any:
    """``--images``: where the images of a labels CSV are (train, evaluate)."""
    return flag(None, "images of a CSV -d (default: images/ beside it)", type=existing_path, **attributes)


def max_pixels_flag() -> Any:
    """``--max-pixels``: the largest image a command decodes (serve, download)."""
    return flag(MAX_PIXELS, "largest image, width x height; a larger one is refused (default {default})",
                type=positive_int)
