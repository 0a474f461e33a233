"""Reading one image safely: any mode Pillow reads becomes 8-bit RGB with its EXIF orientation
applied, a decompression bomb is refused from its header, JPEGs decode at a reduced scale when the
model needs fewer pixels; and listing the images of a folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, ImageOps

from ..config import IMAGE_EXTENSIONS, MAX_PIXELS

if TYPE_CHECKING:
    import torch



class TooManyPixels(ValueError):
    """An image over the pixel limit, found from its header before any decoding."""


def load_image(path: str | os.PathLike, draft_size: int | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image as 8-bit RGB with its EXIF orientation applied.

    ``draft_size``: a JPEG is decoded at the coarsest DCT scale (1/2, 1/4, 1/8) that still leaves
    at least this many pixels on both sides. The model sees the picture only after a resize to its
    input size, so decoding a 640x480 photo at 320x240 for a 224 px model loses nothing that the resize
    would keep, and costs about a third less (measured in benchmarks/bench_infer.py).
    """
    with Image.open(path) as img:
        if img.width * img.height > max_pixels:  # read from the header: a decompression bomb costs nothing
            raise TooManyPixels(f"{img.width}x{img.height} pixels is over the limit of {max_pixels} pixels")
        if draft_size and img.format == "JPEG":
            img.draft(None, (draft_size, draft_size))
        img = ImageOps.exif_transpose(img)
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            # 16-bit or float grayscale: scale to 8 bits instead of clipping everything to white.
            arr = np.asarray(img, dtype=np.float32)
            scale = 257.0 if arr.max(initial=0) > 255 else 1.0
            img = Image.fromarray(np.clip(arr / scale, 0, 255).astype(np.uint8), mode="L")
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            img = img.convert("RGBA")
            background = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, img)
        return img.convert("RGB")


def load_resized(source: str | os.PathLike | BinaryIO, resize: Callable, draft_size: int | None = None,
                 max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """A file (path or file object) -> the uint8 ``(H, W, 3)`` tensor prediction batches are stacked from.

    ``resize`` maps the PIL image to the model's input size (``transforms.eval_resize``);
    normalisation happens per batch, where the model runs (``transforms.normalise_batch``).
    """
    import torch

    return torch.from_numpy(np.array(resize(load_image(source, draft_size, max_pixels)), dtype=np.uint8))


def list_images(directory: str | os.PathLike, recursive: bool = False) -> list[str]:
    """Image files in ``directory`` (and its subfolders when ``recursive``), sorted by their path's parts.

    Built from ``os.scandir``, one folder at a time: a tree of a million photos costs the list of
    path strings and nothing more. Symbolic links to files are listed; links to folders are not
    followed (a link back up the tree would never end).
    """
    found: list[str] = []

    def walk(folder: str) -> None:
        with os.scandir(folder) as entries:
            ordered = sorted(entries, key=lambda e: e.name)
        for entry in ordered:
            if os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file():
                found.append(entry.path)
            elif recursive and entry.is_dir(follow_symlinks=False):
                walk(entry.path)

    walk(os.fspath(directory))
    return found


def read_path_list(path: str | os.PathLike) -> list[str]:
    """The images a ``--list`` file names: one path a line, or a CSV's ``filename`` or ``path`` column.

    Relative paths are taken from the list file's folder, so a list travels with its images. Blank
    lines and lines starting with ``#`` are skipped.
    """
    path = Path(path)
    base = path.parent
    if path.suffix.lower() == ".csv":
        import pandas as pd

        try:
            header = pd.read_csv(path, nrows=0).columns
        except Exception as exc:  # noqa: BLE001 - an unreadable list is the user's to fix
            raise ValueError(f"--list {path}: not a readable CSV ({type(exc).__name__}: {exc})") from None
        column = next((c for c in ("filename", "path") if c in header), None)
        if column is None:
            raise ValueError(f"--list {path}: a CSV list needs a 'filename' or 'path' column; it has "
                             f"{', '.join(map(str, header)) or 'none'}")
        names = pd.read_csv(path, usecols=[column], dtype=str, keep_default_na=False)[column].tolist()
    else:
        with open(path, encoding="utf-8") as file:
            names = [line.strip() for line in file]
    return [os.path.join(base, name) if not os.path.isabs(name) else name
            for name in names if name and not name.startswith("#")]


def failure_reason(exc: BaseException) -> str:
    """Why an image could not be read, on one line (it goes into a CSV cell, a log line or an error)."""
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")


def find_unreadable(paths: Sequence[str], draft_size: int | None = None, workers: int = 0) -> list[tuple[str, str]]:
    """Decode every image (``--strict``); returns ``(path, reason)`` for each one that fails."""

    def check(path: str) -> tuple[str, str] | None:
        try:
            load_image(path, draft_size).load()
        except Exception as exc:  # noqa: BLE001 - every failure is a finding
            return path, failure_reason(exc)
        return None

    with ThreadPoolExecutor(max(1, workers)) as pool:  # Pillow decodes without the GIL
        return [bad for bad in pool.map(check, paths) if bad is not None]
