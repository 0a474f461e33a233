"""Models: the backbone registry (``backbones``), the LightningModule with its heads, losses and
metrics (``module``), the image transforms and the label-aware flip (``transforms``), and checkpoint
files (``files``: the one reader of what torch.save wrote; ``checkpoint``: a model from a checkpoint,
slim copies, the shipped model)."""

from .backbones import BACKBONES, BackboneSpec, Preprocessing, create_backbone, default_preprocessing, get_spec
from .checkpoint import checkpoint_path, load_checkpoint, shipped_checkpoint, slim_checkpoint, store_calibration
from .files import read_checkpoint
from .module import PerspectiveModel
from .transforms import (
    eval_resize,
    eval_transform,
    flip_permutation,
    normalise_batch,
    parse_flip_pairs,
    train_transform,
)

__all__ = [
    "BACKBONES", "BackboneSpec", "PerspectiveModel", "checkpoint_path", "Preprocessing", "create_backbone", "default_preprocessing",
    "eval_resize", "eval_transform", "flip_permutation", "get_spec", "load_checkpoint", "normalise_batch",
    "parse_flip_pairs", "read_checkpoint", "shipped_checkpoint", "slim_checkpoint", "store_calibration", "train_transform",
]
