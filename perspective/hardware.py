"""What the machine offers: accelerator choice and the fastest safe precision.

bf16 keeps fp32's range, so mixed bf16 needs no loss scaling and barely moves regression outputs;
it is the default wherever the hardware runs it natively (CUDA GPUs since Ampere, CPUs with
AVX-512 BF16 or AMX). Elsewhere fp16 mixed on CUDA, fp32 on the CPU.
"""

from __future__ import annotations

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
