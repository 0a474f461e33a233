"""Where prediction runs: one device, or several processes through Lightning.

The flags mean the same on every command (``config.DeviceConfig``): ``-g N`` is N CUDA GPUs (``-g 0``
the CPU), ``--device`` names one device, and Lightning's ``--accelerator``, ``--devices``,
``--num-nodes`` and ``--strategy`` ask for several processes.
"""

from __future__ import annotations

from typing import Any

from ..config import PredictConfig
from ..errors import UserError


def prediction_device(cfg: PredictConfig) -> str:
    """The one device of ``-g``, ``--accelerator`` or ``--device``, as ``Predictor`` takes it."""
    if cfg.gpus is not None:
        return "cpu" if cfg.gpus == 0 else "cuda"
    if cfg.accelerator not in (None, "auto"):
        return {"gpu": "cuda"}.get(cfg.accelerator, cfg.accelerator)
    return cfg.device


def one_device(cfg: PredictConfig) -> str:
    """``prediction_device`` for a command that runs one model on one device (the server)."""
    if cfg.gpus is not None and cfg.gpus > 1:
        raise UserError(f"-g {cfg.gpus}: this command runs on one device; use -g 1 or --device cuda:N")
    return prediction_device(cfg)


def process_plan(cfg: PredictConfig) -> dict[str, Any] | None:
    """Lightning's accelerator, devices, nodes and strategy when the flags ask for several processes, else None.

    One process unless ``-g`` names more than one GPU, ``--devices`` asks for more than one (a count
    above 1, a list of GPUs, -1 or auto), ``--num-nodes`` is above 1, or a ``--strategy`` is named.
    """
    devices, strategy = cfg.devices, cfg.strategy
    accelerator = cfg.accelerator
    if cfg.gpus is not None and cfg.gpus > 1:
        devices, accelerator = cfg.gpus, "gpu"
    if devices in (None, 1, "1") and cfg.num_nodes == 1 and strategy in (None, "auto"):
        return None
    if accelerator in (None, "auto"):
        device = prediction_device(cfg)
        accelerator = "cpu" if device == "cpu" else "gpu" if device.startswith("cuda") else "auto"
    return {"accelerator": accelerator, "devices": "auto" if devices is None else devices,
            "num_nodes": cfg.num_nodes, "strategy": "ddp" if strategy in (None, "auto") else strategy}
