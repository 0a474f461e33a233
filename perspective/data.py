"""Datasets: reading labelled data in its supported layouts, splitting it, loading images.

Layouts (``read_labelled_data``):

- a folder with ``labels.csv`` and ``images/`` (or ``imgs/``; else the folder itself);
- a CSV file, its images in ``--images DIR`` (default: as for a folder, beside the CSV);
- a folder of class subfolders (torchvision's ImageFolder layout): classification.

A CSV has a ``filename`` column. It is a classification set when it has the label column
(``label``, or ``--label-column``) or ``--task classification`` says so; otherwise a regression set
whose targets are ``--targets``, else every ``perspective_score_*`` column (the car-perspective
format, whose other numeric columns such as ``azimuth`` are metadata), else every numeric column.

Images are anything Pillow reads: EXIF orientation is applied and every mode (RGBA, palette,
grayscale, 16-bit) becomes 8-bit RGB.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler, default_collate
from torchvision.datasets.folder import find_classes, make_dataset
from torchvision.transforms.v2 import functional as F

from .errors import UserError
from .formats import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

TASKS = ("regression", "classification")
LABELS_CSV = "labels.csv"
SCORE_PREFIX = "perspective_score_"
MAX_PIXELS = 120_000_000  # larger images are refused before decoding (a 100 MP camera still passes)


def default_workers() -> int:
    return min(os.cpu_count() or 1, 8)


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
    return torch.from_numpy(np.array(resize(load_image(source, draft_size, max_pixels)), dtype=np.uint8))


def list_images(directory: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files in ``directory`` (and its subfolders when ``recursive``), sorted."""
    root = Path(directory)
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in root.glob(pattern) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


@dataclass
class LabelledData:
    """Image paths with their targets.

    Args:
        frame: a ``path`` column (absolute paths) plus one column per target (regression) or a
            ``label`` column of class names (classification).
        task: ``"regression"`` or ``"classification"``.
        names: target column names, or the sorted class names.
        source: what was read, for messages.
    """

    frame: pd.DataFrame
    task: str
    names: list[str]
    source: str

    def targets(self) -> np.ndarray:
        """Float targets ``(n, len(names))`` or integer class ids ``(n,)``."""
        if self.task == "regression":
            return self.frame[self.names].to_numpy(dtype=np.float32)
        index = {name: i for i, name in enumerate(self.names)}
        return self.frame["label"].map(index).to_numpy(dtype=np.int64)


def _images_dir(base: Path) -> Path:
    for name in ("images", "imgs"):
        if (base / name).is_dir():
            return base / name
    return base


def _csv_lines(rows: pd.Series, limit: int = 5) -> str:
    """The file's line numbers (line 1 is the header) of the first ``limit`` rows where ``rows`` is True."""
    return ", ".join(str(i + 2) for i in np.flatnonzero(rows.to_numpy())[:limit])


def read_csv_checked(csv_path: Path) -> pd.DataFrame:
    """A labels CSV read as text, refused with one line when unreadable, without filenames or empty."""
    try:
        # index_col=False: a trailing comma on each row must not turn the first column into the index
        frame = pd.read_csv(csv_path, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())  # pandas ends some messages with a newline: keep this one line
        raise UserError(f"{csv_path}: not a readable CSV ({reason})") from None
    if "filename" not in frame.columns:
        raise UserError(f"{csv_path}: no 'filename' column (columns: {', '.join(map(str, frame.columns))})")
    if frame.empty:
        raise UserError(f"{csv_path}: no rows")
    blank = frame["filename"].isna()  # pandas 3 keeps NaN through astype(str)
    if blank.any():
        raise UserError(f"{csv_path}: no filename on line(s) {_csv_lines(blank)}")
    duplicated = frame["filename"].astype(str)[frame["filename"].duplicated()].unique().tolist()
    if duplicated:
        raise UserError(f"{csv_path}: {len(duplicated)} duplicate filename(s), each must be listed once: "
                        f"{', '.join(duplicated[:5])}")
    return frame


def _resolve(images: Path, name: str) -> str:
    """The absolute path of a listed image; a name no file can have (a NUL byte) stays as is, reported missing."""
    try:
        return str((images / name).resolve())
    except (ValueError, OSError, RuntimeError):
        return str(images / name)


def _names(paths: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(os.path.basename(p) for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _keep_existing(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Drop rows whose image is missing or empty (cheap to find before training), with one warning each."""
    checks = (("not found", lambda p: not os.path.isfile(p)), ("empty (0 bytes)", lambda p: os.path.getsize(p) == 0))
    for problem, is_bad in checks:
        bad = frame["path"].map(is_bad)
        if bad.any():
            log.warning("%s: %d image(s) %s, skipped: %s", source, int(bad.sum()), problem,
                        _names(frame.loc[bad, "path"].tolist()))
            frame = frame[~bad].reset_index(drop=True)
    if frame.empty:
        raise UserError(f"{source}: none of the listed images exists")
    return frame


def _mostly_numeric(column: pd.Series) -> bool:
    """A text column whose values are mostly numbers: a target with stray entries, not metadata."""
    if pd.api.types.is_numeric_dtype(column):
        return False
    numbers = pd.to_numeric(column, errors="coerce")
    return numbers.notna().sum() >= 0.5 * column.notna().sum() > 0


def _stray_values(frame: pd.DataFrame, column: str) -> str:
    numbers = pd.to_numeric(frame[column], errors="coerce")
    stray = frame[column].notna() & numbers.isna()
    if not stray.any():
        return ""
    return f": {frame[column][stray].iloc[0]!r} on line(s) {_csv_lines(stray)}"


def _from_csv(
    csv_path: Path,
    images: Path | None,
    task: str | None,
    targets: Sequence[str] | None,
    label_column: str | None,
    allow_missing: bool = False,
    skip_bad_files: bool = True,
    partial_targets: bool = False,
) -> LabelledData:
    frame = read_csv_checked(csv_path)
    images = images or _images_dir(csv_path.parent)
    if not images.is_dir():
        raise UserError(f"--images {images}: not a folder")
    source = str(csv_path)
    paths = frame["filename"].astype(str).map(lambda f: _resolve(images, f))
    label_col = label_column or "label"
    if task is None:
        task = "classification" if (label_column or "label" in frame.columns) else "regression"
    if task == "classification":
        if label_col not in frame.columns:
            raise UserError(f"{source}: no label column {label_col!r} for classification (use --label-column)")
        labels = frame[label_col]
        if labels.isna().any() and not allow_missing:
            raise UserError(f"{source}: {int(labels.isna().sum())} row(s) without a {label_col!r} value")
        out = pd.DataFrame({"path": paths, "label": labels.map(lambda v: str(v) if pd.notna(v) else None)})
        out = _keep_existing(out, source) if skip_bad_files else out
        return LabelledData(out, task, sorted(out["label"].dropna().unique()), source)

    excluded = {"filename", label_col}
    if targets:
        unknown = [t for t in targets if t not in frame.columns]
        if unknown:
            raise UserError(f"{source}: unknown target column(s) {', '.join(unknown)}")
        non_numeric = [t for t in targets if not pd.api.types.is_numeric_dtype(frame[t])]
        if non_numeric:
            raise UserError(f"{source}: target column(s) {', '.join(non_numeric)} are not numeric"
                            f"{_stray_values(frame, non_numeric[0])}")
        names = list(targets)
    else:
        candidates = [c for c in frame.columns if c not in excluded]
        scored = [c for c in candidates if str(c).startswith(SCORE_PREFIX)]
        for column in scored or candidates:  # with score columns, the others are metadata
            if _mostly_numeric(frame[column]):
                raise UserError(f"{source}: target column {column} is not numeric{_stray_values(frame, column)}")
        names = [c for c in frame.columns if c not in excluded and pd.api.types.is_numeric_dtype(frame[c])]
        scores = [c for c in names if str(c).startswith(SCORE_PREFIX)]
        names = scores or names  # car-perspective format: its other numeric columns are metadata
        if not names:
            raise UserError(f"{source}: no numeric target columns")
    if not allow_missing:
        blank = frame[names].isna()
        if partial_targets and blank.all(axis=1).any():
            raise UserError(f"{source}: no target value at all on line(s) {_csv_lines(blank.all(axis=1))} "
                            "(--allow-missing-targets needs at least one per row)")
        if not partial_targets and blank.any(axis=1).any():
            raise UserError(f"{source}: missing target values on line(s) {_csv_lines(blank.any(axis=1))} "
                            "(--allow-missing-targets trains on the cells that have one)")
    out = pd.concat([paths.rename("path"), frame[names].astype(np.float32)], axis=1)
    out = _keep_existing(out, source) if skip_bad_files else out
    return LabelledData(out, "regression", [str(n) for n in names], source)


def _from_image_folder(root: Path) -> LabelledData:
    try:
        classes, class_to_idx = find_classes(str(root))
        samples = make_dataset(str(root), class_to_idx, extensions=IMAGE_EXTENSIONS)
    except (FileNotFoundError, OSError) as exc:
        raise UserError(
            f"{root}: neither {LABELS_CSV} with images nor class subfolders with images ({exc})"
        ) from None
    frame = pd.DataFrame({"path": [str(Path(p).resolve()) for p, _ in samples], "label": [classes[i] for _, i in samples]})
    used = sorted(frame["label"].unique())
    if len(used) < 2:
        raise UserError(f"{root}: classification needs at least two class folders with images")
    return LabelledData(frame, "classification", used, str(root))


def read_labelled_data(
    data: str | os.PathLike,
    images: str | os.PathLike | None = None,
    task: str | None = None,
    targets: Sequence[str] | None = None,
    label_column: str | None = None,
    allow_missing: bool = False,
    skip_bad_files: bool = True,
    partial_targets: bool = False,
) -> LabelledData:
    """Read a dataset in any supported layout (see the module docstring).

    Args:
        data: a folder or a CSV file.
        images: the images folder for a CSV (default: ``images/`` or ``imgs/`` beside it).
        task: force ``"regression"`` or ``"classification"``; detected from the layout when None.
        targets: regression target columns (default: every numeric column).
        label_column: the class column of a CSV (default ``label``); implies classification.
        allow_missing: keep rows whose target or label is missing (NaN / None) instead of refusing
            the file; evaluation reports such rows and leaves them out of the metrics.
        skip_bad_files: drop rows whose image is missing or empty, with a warning; False keeps them
            (``--strict`` then reports every bad image together).
        partial_targets: a regression row may leave some targets blank (NaN; ``--allow-missing-targets``),
            though not all of them.
    """
    if task is not None and task not in TASKS:
        raise UserError(f"--task must be one of {', '.join(TASKS)}, not {task!r}")
    path = Path(data)
    images_path = Path(images) if images else None
    if path.is_file():
        return _from_csv(path, images_path, task, targets, label_column, allow_missing, skip_bad_files,
                         partial_targets)
    if not path.is_dir():
        raise UserError(f"data {path}: no such file or folder")
    if (path / LABELS_CSV).is_file():
        return _from_csv(path / LABELS_CSV, images_path or _images_dir(path), task, targets, label_column, allow_missing,
                         skip_bad_files, partial_targets)
    if task == "regression":
        raise UserError(f"{path}: regression needs {LABELS_CSV} (a filename column and numeric targets)")
    return _from_image_folder(path)


def split_data(
    data: LabelledData, val_fraction: float, test_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Random train/val/test split, stratified by class for classification.

    Rows are shuffled with ``seed``; for classification each class is spread evenly over the
    ordering (row k of a class of size n sits at position k/n), so every prefix holds the classes
    in their overall proportions. Test takes the first rows, validation the next, train the rest.
    """
    for name, fraction in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if not 0 <= fraction < 1:
            raise UserError(f"{name} must be in [0, 1), got {fraction}")
    if val_fraction + test_fraction >= 1:
        raise UserError("--val-fraction plus --test-fraction must leave rows for training")
    rng = np.random.default_rng(seed)
    frame = data.frame.iloc[rng.permutation(len(data.frame))].reset_index(drop=True)
    if data.task == "classification":
        groups = frame.groupby("label", sort=False)["label"]
        key = (groups.cumcount() + rng.random(len(frame))) / groups.transform("size")
        frame = frame.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)
    n_test = round(len(frame) * test_fraction)
    n_val = round(len(frame) * val_fraction)
    test, val, train = frame[:n_test], frame[n_test : n_test + n_val], frame[n_test + n_val :]
    return train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True)


_WARNED: set[str] = set()  # unreadable files already named in this process


def failure_reason(exc: BaseException) -> str:
    """Why an image could not be read, on one line (it goes into a CSV cell, a log line or an error)."""
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")


def skip_unreadable(batch: list) -> Any:
    """DataLoader collate that drops the samples a dataset gave up on (None); None if none is left."""
    batch = [sample for sample in batch if sample is not None]
    return default_collate(batch) if batch else None


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


class LabelledImageDataset(Dataset):
    """Images with targets for training; mirrors images and swaps side labels together.

    Args:
        paths: image files.
        targets: ``(n, k)`` float targets or ``(n,)`` class ids.
        transform: PIL image -> tensor.
        flip_permutation: target (or class id) permutation applied on a horizontal flip; None
            disables flipping.
        draft_size: JPEG decoding size hint (``load_image``); None decodes at full size.
    """

    def __init__(
        self,
        paths: Sequence[str],
        targets: np.ndarray,
        transform: Callable,
        flip_permutation: Sequence[int] | None = None,
        draft_size: int | None = None,
    ):
        self.paths = list(paths)
        self.targets = torch.from_numpy(np.array(targets))  # a writable copy
        self.transform = transform
        self.flip = torch.tensor(flip_permutation) if flip_permutation is not None else None
        self.draft_size = draft_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The sample, or None for an image that cannot be read (``skip_unreadable`` drops it)."""
        try:
            image, target = load_image(self.paths[i], self.draft_size), self.targets[i]
        except Exception as exc:  # noqa: BLE001 - one bad file must not end an epoch
            if self.paths[i] not in _WARNED:
                _WARNED.add(self.paths[i])
                log.warning("unreadable image skipped: %s (%s)", self.paths[i], failure_reason(exc))
            return None
        if self.flip is not None and torch.rand(()) < 0.5:
            image = F.horizontal_flip(image)
            target = target[self.flip] if target.ndim else self.flip[target]
        return self.transform(image), target


class ImageFileDataset(Dataset):
    """Images for prediction: yields ``(uint8 HWC tensor, index, error)``; an unreadable file never raises.

    Each image is decoded and resized (``resize``: PIL image -> PIL image of ``image_size`` px
    square) but not normalised: the batch is normalised at once where the model runs
    (``perspective.transforms.normalise_batch``), and a uint8 image is a quarter of the bytes to pass
    between processes or to a GPU. A file that cannot be read gives a zero image and its error
    message, so one bad image in a folder of thousands costs one row, not the run.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], resize: Callable, image_size: int,
                 draft_size: int | None = None):
        self.paths = [str(p) for p in paths]
        self.resize = resize
        self.image_size = image_size
        self.draft_size = draft_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, str]:
        try:
            return load_resized(self.paths[i], self.resize, self.draft_size), i, ""
        except Exception as exc:  # noqa: BLE001 - any failure to read becomes this row's error
            return torch.zeros(self.image_size, self.image_size, 3, dtype=torch.uint8), i, failure_reason(exc)


class InTurnLoader:
    """Batches of a dataset decoded by a pool of threads that takes turns with the model.

    On a CPU, decoding and the model need the same cores. DataLoader worker processes decode while
    the model runs, so the model's threads keep losing their core to a decoder, and each of its
    parallel steps waits for the slowest thread: on 2 cores resnet18 predicted 114-120 images/s
    that way, against about 175 for the model alone. Here the threads decode one batch with every
    core (Pillow releases the GIL while it decodes and resizes), then the caller runs the model with
    every core, and so on: 116-141 images/s, mostly 130-140, on the same machine (measured in one
    process; the README has the end-to-end figures). A GPU runs the model beside the CPU, so there
    the DataLoader's processes are the right tool.

    Iterating yields what ``DataLoader`` would yield for the same dataset and batch size.
    """

    def __init__(self, dataset: Dataset, batch_size: int, threads: int):
        self.dataset, self.batch_size, self.threads = dataset, batch_size, threads

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        with ThreadPoolExecutor(self.threads) if self.threads else nullcontext() as pool:
            get = pool.map if pool else map
            for start in range(0, n, self.batch_size):
                yield default_collate(list(get(self.dataset.__getitem__, range(start, min(start + self.batch_size, n)))))


def balanced_sampler(labels: Sequence[int]) -> WeightedRandomSampler:
    """Draws each class equally often: every image weighs 1 / (its class's count), drawn with replacement.

    An epoch draws as many images as the split holds, so its length does not change; rare images
    recur within an epoch and common ones are left out at random. Under DDP Lightning shards the
    draws across the processes.
    """
    labels = torch.as_tensor(labels)
    counts = torch.bincount(labels)
    return WeightedRandomSampler((1.0 / counts[labels]).double(), num_samples=len(labels), replacement=True)


class PerspectiveDataModule(pl.LightningDataModule):
    """Train, validation and test loaders over already split frames.

    Args:
        splits: ``(train, val, test)`` frames in the layout of ``LabelledData.frame``.
        task, names: as in ``LabelledData``.
        train_transform, eval_transform: PIL image -> tensor.
        flip_permutation: see ``LabelledImageDataset``; only the training set is flipped.
        batch_size, workers: DataLoader settings (persistent workers when ``workers > 0``).
        draft_size, train_draft_size: JPEG decoding size hints for evaluation and training
            (``load_image``); training passes None when its augmentation crops.
        balance_classes: draw training images with ``balanced_sampler`` (classification).
    """

    def __init__(
        self,
        splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
        task: str,
        names: Sequence[str],
        train_transform: Callable,
        eval_transform: Callable,
        flip_permutation: Sequence[int] | None,
        batch_size: int = 32,
        workers: int = 0,
        draft_size: int | None = None,
        train_draft_size: int | None = None,
        balance_classes: bool = False,
    ):
        super().__init__()
        self.balance_classes = balance_classes
        self.draft_size, self.train_draft_size = draft_size, train_draft_size
        self.splits = splits
        self.task, self.names = task, list(names)
        self.train_transform, self.eval_transform = train_transform, eval_transform
        self.flip_permutation = flip_permutation
        self.batch_size, self.workers = batch_size, workers

    def _dataset(self, frame: pd.DataFrame, train: bool) -> LabelledImageDataset:
        data = LabelledData(frame, self.task, self.names, "")
        return LabelledImageDataset(
            frame["path"].tolist(),
            data.targets(),
            self.train_transform if train else self.eval_transform,
            self.flip_permutation if train else None,
            self.train_draft_size if train else self.draft_size,
        )

    def _loader(self, frame: pd.DataFrame, train: bool) -> DataLoader:
        dataset = self._dataset(frame, train)
        sampler = balanced_sampler(dataset.targets) if train and self.balance_classes else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            drop_last=train and len(frame) > self.batch_size,
            num_workers=self.workers,
            persistent_workers=self.workers > 0,
            collate_fn=skip_unreadable,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.splits[0], train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.splits[1], train=False)
