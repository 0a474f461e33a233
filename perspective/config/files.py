"""The files perspective reads and writes: a data folder's labels, the score columns, the image
extensions and the pixel limit of every decoder, and the settings file of a training run."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

LABELS_CSV = "labels.csv"  # a data folder's labels, beside its images/ folder
SCORE_PREFIX = "perspective_score_"  # the columns of perspective scores, one per car part
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# The largest image any command decodes (width x height), checked from the header before decoding:
# a 100-megapixel camera passes, a decompression bomb does not. --max-pixels lowers it (serve, download).
MAX_PIXELS = 120_000_000
PRETRAIN_KEY = "pretrain"  # in a `perspective pretrain` output: how its weights were learnt

RUN_CONFIG = "config.yaml"  # every run folder's resolved settings
NOT_REPEATED = ("run_name", "resume", "test")  # a repeat gets its own folder; `test` is not a flag


def run_config(cfg: Any) -> dict[str, Any]:
    """The settings that repeat a run: every TrainConfig field (the long flags, underscored) but NOT_REPEATED."""
    return {k: v for k, v in asdict(cfg).items() if k not in NOT_REPEATED}


def config_yaml(values: dict[str, Any], header: str) -> str:
    """``values`` as the YAML a ``--config`` file holds, ``header`` as its comment lines."""
    import yaml

    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + yaml.safe_dump(values, sort_keys=False, allow_unicode=True)
