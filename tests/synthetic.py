"""Tiny generated datasets whose targets are learnable from the pixels, for the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def colour_image(rng: np.random.Generator, rgb: tuple[float, float, float], size: int = 64) -> Image.Image:
    """A flat colour (0-1 per channel) with a little noise."""
    base = np.array(rgb, dtype=np.float32) * 255
    pixels = base + rng.normal(0, 8, size=(size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_regression_set(root: Path, n: int = 48, seed: int = 0, size: int = 64) -> Path:
    """``root/labels.csv`` + ``root/images``: targets ``redness`` and ``greenness`` in [0, 1]."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        r, g = rng.uniform(0, 1, size=2)
        colour_image(rng, (r, g, 0.5), size).save(root / "images" / f"img{i:03d}.png")
        rows.append({"filename": f"img{i:03d}.png", "redness": round(r, 4), "greenness": round(g, 4)})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


CLASS_COLOURS = {"red": (0.9, 0.1, 0.1), "green": (0.1, 0.9, 0.1), "blue": (0.1, 0.1, 0.9)}


def make_class_folders(root: Path, per_class: int = 12, seed: int = 0, size: int = 64) -> Path:
    """ImageFolder layout: ``root/<class>/*.png`` for red, green and blue images."""
    rng = np.random.default_rng(seed)
    for name, rgb in CLASS_COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            jitter = np.clip(np.array(rgb) + rng.uniform(-0.1, 0.1, 3), 0, 1)
            colour_image(rng, tuple(jitter), size).save(root / name / f"{name}{i:02d}.png")
    return root
