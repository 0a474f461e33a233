"""Image transforms for training and evaluation, and the label-aware horizontal flip.

Evaluation follows the weights' preprocessing exactly (resize, centre crop, normalise). Training adds
augmentation at one of three levels:

- ``none``: the evaluation transform;
- ``light``: horizontal flip, rotation within +-10 degrees, mild colour jitter;
- ``strong``: as light, with a random resized crop (scale 0.6-1) and stronger jitter. A crop
  changes what is in the picture, so it suits labels that survive cropping (classes) better than
  whole-photo scores;
- ``trivial``: torchvision's ``TrivialAugmentWide`` (one random operation of random strength per
  image, Müller and Hutter 2021); ``randaugment``: ``RandAugment`` (two operations at magnitude 9).

Mirroring a photo turns the car's left side into its right, so a horizontal flip must swap every
``..._left`` target with its ``..._right`` counterpart (and ``front_left`` with ``front_right`` for
class labels). ``flip_permutation`` works out that swap; the flip itself happens in the dataset,
which holds both the image and its target.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode

from ..config import AUGMENT_LEVELS, NO_FLIPS
from ..errors import UserError
from .backbones import Preprocessing

log = logging.getLogger(__name__)



def _to_normalised_tensor(pre: Preprocessing) -> list[v2.Transform]:
    return [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(pre.mean), std=list(pre.std)),
    ]


def _resize(pre: Preprocessing) -> list[v2.Transform]:
    interpolation = InterpolationMode(pre.interpolation)
    if pre.resize_mode == "full":
        return [v2.Resize((pre.image_size, pre.image_size), interpolation=interpolation, antialias=True)]
    return [v2.Resize(pre.resize_size, interpolation=interpolation, antialias=True), v2.CenterCrop(pre.image_size)]


def eval_transform(pre: Preprocessing) -> v2.Compose:
    """PIL image -> normalised tensor: resized as ``pre.resize_mode`` says, normalised as the weights expect."""
    return v2.Compose([*_resize(pre), *_to_normalised_tensor(pre)])


def eval_resize(pre: Preprocessing) -> v2.Compose:
    """PIL image -> PIL image of ``image_size`` x ``image_size``: the geometry half of ``eval_transform``.

    The prediction path decodes and resizes per image but normalises whole batches
    (``normalise_batch``): a uint8 image is a quarter of the bytes to hand over, and one batched
    normalisation costs less than a small one per image.
    """
    return v2.Compose(_resize(pre))


def normalise_batch(images: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` images -> normalised float32 ``(N, 3, H, W)`` in channels_last memory.

    The same operations as the end of ``eval_transform`` (scale to [0, 1], subtract the mean, divide
    by the standard deviation), so both give the same numbers; the permuted view of an HWC batch is
    already channels_last, the layout the model runs fastest in, so nothing is copied to get it.
    """
    batch = v2.functional.to_dtype(images.permute(0, 3, 1, 2), torch.float32, scale=True)
    return v2.functional.normalize(batch, mean=list(pre.mean), std=list(pre.std), inplace=True)


def train_transform(pre: Preprocessing, level: str) -> v2.Compose:
    """Training transform at augmentation ``level``; the horizontal flip is not part of it."""
    if level not in AUGMENT_LEVELS:
        raise UserError(f"--augment must be one of {', '.join(AUGMENT_LEVELS)}, not {level!r}")
    if level == "none":
        return eval_transform(pre)
    if level in ("trivial", "randaugment"):  # torchvision's searched-free policies, on the resized image
        policy = v2.TrivialAugmentWide() if level == "trivial" else v2.RandAugment(num_ops=2, magnitude=9)
        return v2.Compose([*_resize(pre), policy, *_to_normalised_tensor(pre)])
    interpolation = InterpolationMode(pre.interpolation)
    if level == "strong":
        geometry = [
            v2.RandomResizedCrop(pre.image_size, scale=(0.6, 1.0), interpolation=interpolation, antialias=True),
            v2.RandomRotation(10, interpolation=InterpolationMode.BILINEAR),
        ]
        jitter = v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.05)
    else:
        geometry = [*_resize(pre), v2.RandomRotation(10, interpolation=InterpolationMode.BILINEAR)]
        jitter = v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2)
    return v2.Compose([*geometry, jitter, *_to_normalised_tensor(pre)])


def fixmatch_augmentations(image_size: int) -> tuple[v2.Compose, v2.Compose]:
    """FixMatch's ``(weak, strong)`` augmentations of a uint8 image tensor already at ``image_size``.

    The weak view mirrors and shifts (a crop of the photo padded by an eighth of its side, reflected);
    the strong one draws its own weak view, then RandAugment (2 operations at magnitude 10) and a
    black cut-out of 2-15% of the photo, the views FixMatch's paper trains with.
    """
    weak = v2.Compose([v2.RandomHorizontalFlip(),
                       v2.RandomCrop(image_size, padding=image_size // 8, padding_mode="reflect")])
    strong = v2.Compose([weak, v2.RandAugment(num_ops=2, magnitude=10),
                         v2.RandomErasing(p=1.0, scale=(0.02, 0.15), value=0)])
    return weak, strong


def fixmatch_views(pre: Preprocessing) -> Callable:
    """PIL image -> ``(weak, strong)`` normalised tensors, FixMatch's two views (``training.fixmatch``):
    resized as for evaluation, then ``fixmatch_augmentations``."""
    to_image = v2.Compose([*_resize(pre), v2.ToImage()])
    weak, strong = fixmatch_augmentations(pre.image_size)
    normalise = v2.Compose(_to_normalised_tensor(pre)[1:])

    def views(image):
        image = to_image(image)
        return normalise(weak(image)), normalise(strong(image))

    return views


def parse_flip_pairs(text: str | None) -> list[tuple[str, str]] | None:
    """``"a:b,c:d"`` -> ``[("a", "b"), ("c", "d")]``; ``None`` or empty -> ``None`` (the default pairs).

    ``"none"`` -> ``[]``: no mirror maps the labels to valid ones (text, digits), so no flips.
    """
    if not text:
        return None
    if text.strip().lower() == NO_FLIPS:
        return []
    pairs = []
    for item in text.split(","):
        left, sep, right = item.strip().partition(":")
        if not sep or not left or not right:
            raise UserError(f"--flip-pairs expects name:name pairs separated by commas, got {item!r}")
        pairs.append((left, right))
    return pairs


def flip_permutation(
    names: Sequence[str], explicit_pairs: Sequence[tuple[str, str]] | None = None
) -> list[int] | None:
    """Index permutation to apply to targets (or class ids) when the image is mirrored.

    ``names`` are target names (regression) or class names (classification). Returns the identity
    when no name mentions a side, ``None`` when a side-specific name has no counterpart (then a
    flip would corrupt its label, so horizontal flips must be disabled) or when ``explicit_pairs``
    is empty (``--flip-pairs none``).

    Args:
        names: the target or class names, in model output order.
        explicit_pairs: pairs to swap instead of the names' ``left``/``right`` pattern.
    """
    index = {name: i for i, name in enumerate(names)}
    perm = list(range(len(names)))
    if explicit_pairs is not None and not explicit_pairs:
        log.info("horizontal flips off (--flip-pairs none)")
        return None
    if explicit_pairs is not None:
        for a, b in explicit_pairs:
            for n in (a, b):
                if n not in index:
                    raise UserError(f"--flip-pairs names {n!r}, which is not one of: {', '.join(names)}")
            perm[index[a]], perm[index[b]] = index[b], index[a]
        return perm
    for name in names:
        if "left" in name:
            counterpart = name.replace("left", "right")
        elif "right" in name:
            counterpart = name.replace("right", "left")
        else:
            continue
        if counterpart not in index:
            log.warning("horizontal flips disabled: %r has no counterpart %r to swap with", name, counterpart)
            return None
        perm[index[name]] = index[counterpart]
    return perm
