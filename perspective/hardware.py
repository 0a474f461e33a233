"""What the machine offers: where a command computes (the one device resolver) and the fastest safe precision.

bf16 keeps fp32's range, so mixed bf16 needs no loss scaling and barely moves regression outputs;
it is the default wherever the hardware runs it natively (CUDA GPUs since Ampere, CPUs with
AVX-512 BF16 or AMX). Elsewhere fp16 mixed on CUDA, fp32 on the CPU.
"""

from __future__ import annotations

from typing import Any

import torch

from .errors import UserError


def cpu_has_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX-512 BF16 or AMX)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def uses_cuda(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def default_precision(accelerator: str) -> str:
    """Lightning precision string for ``accelerator`` ("auto", "cpu", "gpu", ...)."""
    if uses_cuda(accelerator):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if accelerator in ("auto", "cpu"):
        return "bf16-mixed" if cpu_has_bf16() else "32-true"
    return "32-true"


def resolve_devices(gpus: int | None, accelerator: str, devices: str | int | None) -> tuple[str, str | int]:
    """Turn ``-g N`` / ``--accelerator`` / ``--devices`` into Lightning's accelerator and devices.

    ``-g N`` means N CUDA GPUs (``-g 0`` the CPU); it is an error when fewer are present.
    """
    if gpus is not None:
        if gpus == 0:
            return "cpu", devices or 1
        available = torch.cuda.device_count()
        if available < gpus:
            raise UserError(f"-g {gpus}: only {available} CUDA GPU(s) found")
        return "gpu", gpus
    return accelerator, devices if devices is not None else "auto"


def prediction_device(cfg: Any) -> str:
    """The one device that ``-g``, ``--accelerator`` or ``--device`` (a ``DeviceConfig``) names, as a torch device.

    ``-g`` and ``--accelerator`` mean what they mean for training (``resolve_devices``); without them,
    ``--device`` (auto, cpu, cuda, cuda:N).
    """
    if cfg.gpus is None and cfg.accelerator in (None, "auto"):
        return cfg.device
    accelerator, _ = resolve_devices(cfg.gpus, cfg.accelerator or "auto", None)
    return {"gpu": "cuda"}.get(accelerator, accelerator)


def one_device(cfg: Any) -> str:
    """``prediction_device`` for a command that runs one model on one device (the server, select)."""
    if cfg.gpus is not None and cfg.gpus > 1:
        raise UserError(f"-g {cfg.gpus}: this command runs on one device; use -g 1 or --device cuda:N")
    return prediction_device(cfg)


def process_plan(cfg: Any) -> dict[str, Any] | None:
    """Lightning's accelerator, devices, nodes and strategy when the flags ask for several processes, else None.

    One process unless ``-g`` names more than one GPU, ``--devices`` asks for more than one (a count
    above 1, a list of GPUs, -1 or auto), ``--num-nodes`` is above 1, or a ``--strategy`` is named.
    """
    devices, strategy = cfg.devices, cfg.strategy
    accelerator = cfg.accelerator
    if cfg.gpus is not None and cfg.gpus > 1:
        accelerator, devices = resolve_devices(cfg.gpus, "auto", None)
    if devices in (None, 1, "1") and cfg.num_nodes == 1 and strategy in (None, "auto"):
        return None
    if accelerator in (None, "auto"):
        device = prediction_device(cfg)
        accelerator = "cpu" if device == "cpu" else "gpu" if device.startswith("cuda") else "auto"
    return {"accelerator": accelerator, "devices": "auto" if devices is None else devices,
            "num_nodes": cfg.num_nodes, "strategy": "ddp" if strategy in (None, "auto") else strategy}
