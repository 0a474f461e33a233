"""Synthetic data sets: image ``i`` of seed ``s`` rendered from ``numpy.random.default_rng([s, i])`` alone,
written as ``DIR/images/000000.jpg ...`` and ``DIR/labels.csv``.
"""

from __future__ import annotations

import csv
import logging
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import LABELS_CSV, SYNTH_SIDES, SynthConfig, default_workers
from ..errors import UserError
from ..progress import track
from .scene import (
    ELEVATION_RANGE,
    JPEG_QUALITY,
    LABEL_COLUMNS,
    PARTS,
    Camera,
    Car,
    camera_angles,
    random_camera,
    random_car,
    render,
    view_of,
)

IMAGES_DIR = "images"

log = logging.getLogger(__name__)


@dataclass
class Sample:
    """One generated photo with everything it was made from."""

    image: Image.Image
    scores: dict[str, float]
    azimuth: float
    elevation: float
    jpeg_quality: int
    car: Car
    camera: Camera

    def label_row(self, filename: str) -> list[str]:
        """The labels.csv row: angles rounded first, so ``view`` always agrees with the written azimuth."""
        azimuth = round(self.azimuth, 2) % 360.0
        elevation = round(self.elevation, 2)
        scores = [f"{self.scores[part]:.4f}" for part in PARTS]
        return [filename, *scores, f"{azimuth:.2f}", f"{elevation:.2f}", view_of(azimuth)]


def make_sample(seed: int, index: int, size: tuple[int, int] = SynthConfig.size, *,
                elevation_range: tuple[float, float] = ELEVATION_RANGE,
                backdrop: tuple[int, int, int] | None = None) -> Sample:
    """Image ``index`` of data set ``seed``: it depends on (seed, index) only, not on how many are made.

    ``elevation_range`` and ``backdrop`` shoot the same car from other camera heights or in front of a
    plain wall: photos unlike the built-in data, for testing a novelty check (``random_camera``, ``render``).
    """
    rng = np.random.default_rng([seed, index])
    car = random_car(rng)
    camera = random_camera(car, rng, size, elevation_range)
    image, scores = render(car, camera, rng, backdrop)
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    azimuth, elevation = camera_angles(car, camera)
    return Sample(image, scores, azimuth, elevation, quality, car, camera)


def _check_size(size) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise UserError(f"image size must be (width, height), got {size!r}") from None
    low, high = SYNTH_SIDES
    if not (low <= width <= high and low <= height <= high):
        raise UserError(f"image size {width}x{height}: each side must be {low} to {high} pixels")
    return width, height


def _write_sample(job: tuple[int, int, tuple[int, int], str]) -> list[str]:
    """Render image ``index`` of ``seed`` into ``images_dir``; returns its labels.csv row (a pool task)."""
    seed, index, size, images_dir = job
    sample = make_sample(seed, index, size)
    filename = f"{index:06d}.jpg"
    sample.image.save(os.path.join(images_dir, filename), "JPEG", quality=sample.jpeg_quality)
    return sample.label_row(filename)


def generate(out_dir: str | os.PathLike, count: int, seed: int, size: tuple[int, int] = SynthConfig.size,
             progress: bool = True, workers: int | None = 1) -> Path:
    """Write ``count`` images to ``out_dir/images/`` and their labels to ``out_dir/labels.csv``; returns ``out_dir``.

    With ``workers`` > 1 the images are rendered by a process pool; every image depends on (seed,
    index) alone, so the files are byte-identical whatever the number of workers. labels.csv is
    written last and atomically (``labels.csv.partial`` then renamed), so a folder with a labels.csv
    is complete.
    """
    size = _check_size(size)
    if int(count) < 1:
        raise UserError(f"count must be at least 1, got {count}")
    if int(seed) < 0:
        raise UserError(f"seed must be 0 or more, got {seed}")
    out = Path(out_dir)
    images = out / IMAGES_DIR
    try:
        images.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    jobs = [(int(seed), index, size, str(images)) for index in range(int(count))]
    workers = max(1, min(default_workers() if workers is None else int(workers), len(jobs)))
    shown = dict(show=progress, desc="synth")
    if workers == 1:
        rows = [_write_sample(job) for job in track(jobs, log, len(jobs), **shown)]
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            rows = list(track(pool.imap(_write_sample, jobs, chunksize=8), log, len(jobs), **shown))
    partial = out / (LABELS_CSV + ".partial")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(LABEL_COLUMNS)
        writer.writerows(rows)
    os.replace(partial, out / LABELS_CSV)
    return out
