"""Backbone registry: one place that knows every supported torchvision model.

Each entry names the torchvision builder, its ImageNet weights enum, the size of the feature vector
left once the original classifier is removed, and the dotted path of that classifier's last linear
layer. Everything else (input size, resize, mean and std) comes from the weights' own metadata, so
the preprocessing of a fine-tuned model is the one its weights were trained with.

``create_backbone(name, weights)`` is the one factory (as timm's ``create_model``): it returns a
module that maps a normalised image batch to a ``(batch, num_features)`` tensor.

Weights are one of:
- ``"imagenet"``: torchvision's weights API; the file is cached under ``torch.hub.get_dir()``
  (``$TORCH_HOME/hub/checkpoints``) and downloaded only when it is not there;
- ``"none"``: random initialisation (tests, offline machines, models trained from scratch);
- a path to a local ``state_dict`` file (a torchvision checkpoint or a backbone-only one), or a
  checkpoint written by train.py, whose backbone starts the new run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision import models
from torchvision.models import WeightsEnum

from ..config import BACKBONE_NAMES, DEFAULT_BACKBONE, RESIZE_MODES  # noqa: F401 - re-exported
from ..config.backbones import BACKBONE_TABLE, BackboneEntry
from ..errors import UserError
from .files import read_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class BackboneSpec(BackboneEntry):
    """How to build one backbone and turn it into a feature extractor: its table entry
    (``config.backbones.BackboneEntry``: feature size, classifier, Grad-CAM layer, ...) and its builder.

    Args:
        builder: torchvision model builder, called as ``builder(weights=..., **build_kwargs)``.
        weights_enum: the builder's weights enum; its ``DEFAULT`` member is what "imagenet" means.
    """

    builder: Callable[..., nn.Module]
    weights_enum: type[WeightsEnum]

    @property
    def default_weights(self) -> WeightsEnum:
        return self.weights_enum.DEFAULT

    @property
    def min_size(self) -> int:
        """Smallest legal input side, from the weights' metadata (at least 32 px in practice)."""
        return max(32, max(self.default_weights.meta["min_size"]))


def _spec(entry: BackboneEntry) -> BackboneSpec:
    """The registry entry of a table entry: its torchvision builder and weights enum, found by name."""
    return BackboneSpec(**asdict(entry), builder=getattr(models, entry.name),
                        weights_enum=models.get_model_weights(entry.name))


# config.backbones holds the table (names, feature sizes, classifier and Grad-CAM layers) without torch.
BACKBONES: dict[str, BackboneSpec] = {entry.name: _spec(entry) for entry in BACKBONE_TABLE}


def get_spec(name: str) -> BackboneSpec:
    """The registry entry for ``name``; an unknown name is a usage error listing the valid ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise UserError(
            f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}"
        ) from None


@dataclass(frozen=True)
class Preprocessing:
    """What an image goes through before the network: resize (and crop), normalise.

    ``resize_mode`` "full" resizes the whole image to ``image_size`` x ``image_size``: nothing is
    cut off, which matters when the target describes the whole photo (how much of a car part is in
    the picture). "crop" is the ImageNet habit of the weights' own transforms: shorter side to
    ``resize_size``, then a centre crop of ``image_size``.
    """

    image_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    resize_mode: str = "full"

    @property
    def decode_size(self) -> int:
        """The smallest side the decoded image needs before the resize loses nothing (see ``load_image``)."""
        return self.image_size if self.resize_mode == "full" else self.resize_size

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_size": self.image_size,
            "resize_size": self.resize_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "resize_mode": self.resize_mode,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        return cls(
            image_size=int(d["image_size"]),
            resize_size=int(d["resize_size"]),
            mean=tuple(d["mean"]),
            std=tuple(d["std"]),
            interpolation=str(d["interpolation"]),
            resize_mode=str(d.get("resize_mode", "crop")),
        )


def default_preprocessing(name: str, image_size: int | None = None, resize_mode: str = "full") -> Preprocessing:
    """Preprocessing from the weights' metadata, optionally at another input size.

    A custom ``image_size`` keeps the weights' resize-to-crop ratio (256/224 for most), so the
    centre crop keeps the same share of the picture.
    """
    if resize_mode not in RESIZE_MODES:
        raise UserError(f"--resize-mode must be one of {', '.join(RESIZE_MODES)}, not {resize_mode!r}")
    spec = get_spec(name)
    t = spec.default_weights.transforms()
    crop, resize = int(t.crop_size[0]), int(t.resize_size[0])
    if image_size is not None and image_size != crop:
        if image_size < spec.min_size:
            raise UserError(f"--image-size {image_size} is below {name}'s minimum of {spec.min_size} px")
        if spec.fixed_size and image_size % 16:
            raise UserError(f"--image-size for {name} must be a multiple of its 16 px patches")
        resize = round(image_size * resize / crop)
        crop = image_size
    return Preprocessing(
        image_size=crop,
        resize_size=resize,
        mean=tuple(float(m) for m in t.mean),
        std=tuple(float(s) for s in t.std),
        interpolation=t.interpolation.value,
        resize_mode=resize_mode,
    )


def cached_weights_path(weights: WeightsEnum) -> Path:
    """Where torchvision's weights API keeps (or would keep) the file for ``weights``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _build(spec: BackboneSpec, weights: WeightsEnum | None, image_size: int) -> nn.Module:
    kwargs = dict(spec.build_kwargs)
    if spec.fixed_size:
        kwargs["image_size"] = image_size
    if spec.name == "inception_v3" and weights is None:
        kwargs["init_weights"] = True  # silences torchvision's warning about the default changing
    return spec.builder(weights=weights, **kwargs)


def _build_imagenet(spec: BackboneSpec, image_size: int) -> nn.Module:
    weights = spec.default_weights
    if spec.fixed_size and image_size != weights.meta["min_size"][0]:
        raise UserError(
            f"{spec.name} with ImageNet weights takes {weights.meta['min_size'][0]} px images; "
            "drop --image-size or use --weights none"
        )
    path = cached_weights_path(weights)
    try:
        return _build(spec, weights, image_size)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError
        if path.exists() and not isinstance(exc, OSError):
            raise UserError(f"cached ImageNet weights at {path} are damaged ({exc}); delete the file") from None
        raise UserError(
            f"ImageNet weights for {spec.name} are not cached at {path} and could not be downloaded "
            f"({type(exc).__name__}: {exc}). Put {weights.url} at that path (TORCH_HOME moves it), "
            "or use --weights none (random initialisation) or --weights PATH (a local state_dict)."
        ) from None


def _load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise UserError(f"--weights: no such file {path} (expected imagenet, none, or a state_dict file)")
    obj = read_checkpoint(path, "--weights")
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"--weights {path}: expected a dict of tensors (a state_dict)")
    return obj


def _load_local(spec: BackboneSpec, path: Path, model: nn.Module) -> None:
    """Load a torchvision-style state_dict, or the backbone of a toolkit checkpoint; classifiers are ignored.

    A checkpoint written by train.py holds ``backbone.*`` and ``head.*`` weights (the averaged ones
    when the run kept an EMA); only the backbone is taken here (``training.run.kept_head`` takes the
    head when the new run predicts the same outputs).
    """
    state = _load_state_dict_file(path)
    if any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    state = {k: v for k, v in state.items() if not k.startswith(spec.classifier + ".")}
    state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise UserError(f"--weights {path} does not fit {spec.name}: {str(exc).splitlines()[1].strip()}") from None
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise UserError(
            f"--weights {path} does not fit {spec.name}: {len(missing)} missing and "
            f"{len(unexpected)} unexpected keys ({detail}...)"
        )


def _replace_module(root: nn.Module, dotted: str, new: nn.Module) -> nn.Module:
    parent_path, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    old = parent.get_submodule(child)
    setattr(parent, child, new)  # also right for nn.Sequential, whose children are named "0", "1", ...
    return old


def create_backbone(name: str, weights: str = "imagenet", image_size: int | None = None) -> nn.Module:
    """Build ``name`` as a feature extractor: images in, ``(batch, num_features)`` out.

    Args:
        name: a registry name (see ``BACKBONES``).
        weights: ``"imagenet"``, ``"none"`` or a path to a state_dict file.
        image_size: input side; only architectures with ``fixed_size`` depend on it.
    """
    spec = get_spec(name)
    image_size = image_size or default_preprocessing(name).image_size
    model = _build_imagenet(spec, image_size) if weights == "imagenet" else _build(spec, None, image_size)
    removed = _replace_module(model, spec.classifier, nn.Identity())
    if getattr(removed, "in_features", spec.num_features) != spec.num_features:
        raise AssertionError(f"registry feature size for {name} is wrong")
    if spec.name == "inception_v3":
        model.aux_logits = False
        model.AuxLogits = None
    if weights not in ("imagenet", "none"):
        _load_local(spec, Path(weights), model)
    return model
