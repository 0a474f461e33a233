"""Training and prediction datasets and loaders: the labelled dataset that mirrors images and side
labels together, the file dataset prediction streams from, the loader that decodes in turns, the
balanced sampler and the Lightning DataModule.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler, default_collate
from torchvision.transforms.v2 import functional as F

from ..config import FIXMATCH_RATIO, TrainConfig
from .images import failure_reason, load_image, load_resized
from .tables import LabelledData

log = logging.getLogger(__name__)

_WARNED: set[str] = set()  # unreadable files already named in this process


def skip_unreadable(batch: list) -> Any:
    """DataLoader collate that drops the samples a dataset gave up on (None); None if none is left."""
    batch = [sample for sample in batch if sample is not None]
    return default_collate(batch) if batch else None


def _image_or_none(path: str, draft_size: int | None) -> Any:
    """The decoded image, or None for a file that cannot be read (named in a warning once a process)."""
    try:
        return load_image(path, draft_size)
    except Exception as exc:  # noqa: BLE001 - one bad file must not end an epoch
        if path not in _WARNED:
            _WARNED.add(path)
            log.warning("unreadable image skipped: %s (%s)", path, failure_reason(exc))
        return None


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
        image, target = _image_or_none(self.paths[i], self.draft_size), self.targets[i]
        if image is None:
            return None
        if self.flip is not None and torch.rand(()) < 0.5:
            image = F.horizontal_flip(image)
            target = target[self.flip] if target.ndim else self.flip[target]
        return self.transform(image), target


class UnlabelledViewsDataset(Dataset):
    """Unlabelled images for FixMatch: each gives ``views(image)`` (two tensors), or None when unreadable."""

    def __init__(self, paths: Sequence[str], views: Callable, draft_size: int | None = None):
        self.paths, self.views, self.draft_size = list(paths), views, draft_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        image = _image_or_none(self.paths[i], self.draft_size)
        return None if image is None else self.views(image)


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


def balanced_sampler(labels: Sequence[int], draws: int | None = None) -> WeightedRandomSampler:
    """Draws each class equally often: every image weighs 1 / (its class's count), drawn with replacement.

    An epoch draws as many images as the split holds (or ``draws``), so its length does not change; rare images
    recur within an epoch and common ones are left out at random. Under DDP Lightning shards the
    draws across the processes.
    """
    labels = torch.as_tensor(labels)
    counts = torch.bincount(labels)
    return WeightedRandomSampler((1.0 / counts[labels]).double(), num_samples=draws or len(labels), replacement=True)


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
        unlabelled, unlabelled_views, steps: FixMatch's unlabelled photos, the function that makes
            their two views (``transforms.fixmatch_views``) and the phase's length: the training
            loader then gives ``{"labelled": (x, y), "unlabelled": (weak, strong)}`` batches, both
            halves drawn with replacement, ``steps`` of them in one epoch, ``FIXMATCH_RATIO``
            unlabelled photos to a labelled one.
    """

    def __init__(
        self,
        splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
        task: str,
        names: Sequence[str],
        train_transform: Callable,
        eval_transform: Callable,
        flip_permutation: Sequence[int] | None,
        batch_size: int = TrainConfig.batch_size,
        workers: int = 0,
        draft_size: int | None = None,
        train_draft_size: int | None = None,
        balance_classes: bool = False,
        unlabelled: Sequence[str] | None = None,
        unlabelled_views: Callable | None = None,
        steps: int | None = None,
    ):
        super().__init__()
        self.unlabelled, self.unlabelled_views, self.steps = unlabelled, unlabelled_views, steps
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

    def train_dataloader(self) -> DataLoader | CombinedLoader:
        if self.unlabelled is None:
            return self._loader(self.splits[0], train=True)
        labelled = self._dataset(self.splits[0], train=True)
        unlabelled = UnlabelledViewsDataset(self.unlabelled, self.unlabelled_views, self.train_draft_size)
        sizes = {"labelled": self.batch_size, "unlabelled": self.batch_size * FIXMATCH_RATIO}
        # Samplers with replacement and a fixed count: the phase is `steps` batches whatever the folder
        # sizes, and Lightning shards a WeightedRandomSampler's draws across the processes under DDP.
        samplers = {
            "labelled": balanced_sampler(labelled.targets, self.steps * sizes["labelled"]) if self.balance_classes
            else WeightedRandomSampler(torch.ones(len(labelled)).double(), self.steps * sizes["labelled"], True),
            "unlabelled": WeightedRandomSampler(torch.ones(len(unlabelled)).double(), self.steps * sizes["unlabelled"],
                                                True),
        }
        loaders = {name: DataLoader(dataset, batch_size=sizes[name], sampler=samplers[name], drop_last=True,
                                    num_workers=self.workers, persistent_workers=self.workers > 0,
                                    collate_fn=skip_unreadable, pin_memory=torch.cuda.is_available())
                   for name, dataset in (("labelled", labelled), ("unlabelled", unlabelled))}
        return CombinedLoader(loaders, mode="min_size")

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.splits[1], train=False)
