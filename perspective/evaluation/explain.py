"""Where each score comes from: a Grad-CAM heatmap per target (regression) or for the predicted class.

Grad-CAM (Selvaraju et al. 2017) weighs the feature maps of a late layer by the gradient of one
output with respect to them: the map shows which regions raised that output. Tools that offer it
explain class scores; here every regression output is one more "class" to explain, so each of the
eight car-part scores gets its own map, and a hood score can be checked against where the hood is.

The maps come from the ``grad-cam`` package (``pytorch_grad_cam``, an optional extra); the layer
they explain is the registry's ``cam_layer`` of the backbone, and for a vision transformer its patch
tokens are reshaped to their grid (``token_grid``). Checkpoints only: an exported model has no
gradients.
"""

from __future__ import annotations

import copy
import io
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.images import load_resized
from ..data.tables import SCORE_PREFIX
from ..errors import UserError
from ..models.backbones import Preprocessing, get_spec
from ..models.transforms import eval_resize, normalise_batch
from ..progress import track

log = logging.getLogger(__name__)


def require_gradcam():
    """The ``pytorch_grad_cam`` module, or a one-line error naming the extra that installs it."""
    try:
        import pytorch_grad_cam
    except ImportError:
        raise UserError("--explain needs the grad-cam package: pip install 'perspective[explain]'") from None
    return pytorch_grad_cam


def check_explainable(model):
    """``pytorch_grad_cam`` when ``model`` can be explained; else a one-line error saying why."""
    if not getattr(model, "runs_in_torch", True):
        raise UserError("--explain needs the .ckpt checkpoint: an exported model has no gradients")
    return require_gradcam()


def _token_grid(tokens: torch.Tensor) -> torch.Tensor:
    """(batch, 1 + n*n, channels) transformer tokens -> (batch, channels, n, n), the class token dropped."""
    patches = tokens[:, 1:, :]
    side = math.isqrt(patches.shape[1])
    return patches.reshape(patches.shape[0], side, side, patches.shape[2]).permute(0, 3, 1, 2)


class _Outputs(nn.Module):
    """The model's raw outputs in fp32 (regression scores, classification logits), what Grad-CAM differentiates."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).float()


class Explainer:
    """Grad-CAM maps of a checkpoint's outputs.

    Args:
        model: a ``PerspectiveModel`` (``predict.load_checkpoint``). The explainer works on a copy, in
            fp32 on the CPU: Grad-CAM's hooks then stay off the model that predicts (the server's, a
            report's), and its device and precision stay as they were.
    """

    def __init__(self, model):
        cam = check_explainable(model)
        self.model = copy.deepcopy(model).cpu().float().eval()
        spec = get_spec(model.hparams.backbone)
        layer = self.model.backbone.get_submodule(spec.cam_layer)
        self.cam = cam.GradCAM(model=_Outputs(self.model), target_layers=[layer],
                               reshape_transform=_token_grid if spec.token_grid else None)
        self.names = model.names
        self.task = model.hparams.task
        self.preprocessing = Preprocessing.from_dict(model.hparams.preprocessing)

    def maps(self, image: torch.Tensor) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """One normalised image ``(3, H, W)`` -> (outputs, maps ``(k, H, W)`` in [0, 1], the output index of each map).

        Regression: one map per target. Classification: one map, for the predicted class; outputs
        are the class probabilities.
        """
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        with torch.no_grad():
            outputs = self.model.predict_outputs(image[None]).float()[0].numpy()
        explained = list(range(len(self.names))) if self.task == "regression" else [int(outputs.argmax())]
        batch = image[None].repeat(len(explained), 1, 1, 1)
        with torch.autocast("cpu", enabled=False):
            maps = self.cam(input_tensor=batch, targets=[ClassifierOutputTarget(j) for j in explained])
        return outputs, np.asarray(maps, dtype=np.float32), explained


def panels_png(picture: np.ndarray, maps: np.ndarray, titles: Sequence[str]) -> bytes:
    """One PNG: a panel per map, the heatmap laid over the picture (uint8 ``(H, W, 3)``), its title above."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(4, len(maps))
    rows = -(-len(maps) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, heat, title in zip(axes.ravel(), maps, titles):
        ax.imshow(picture)
        ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
        ax.set_title(title, fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.92, wspace=0.04, hspace=0.18)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    # 256 colours are plenty for a photo under a heatmap, and a quarter of the bytes
    from PIL import Image

    small = io.BytesIO()
    Image.open(buffer).convert("RGB").quantize(256).save(small, format="PNG", optimize=True)
    return small.getvalue()


def short_name(name: str) -> str:
    """``perspective_score_hood`` -> ``hood``: a panel title has little room."""
    return name.removeprefix(SCORE_PREFIX)


def explain_image(explainer: Explainer, source: str | os.PathLike) -> bytes:
    """The explanation PNG of one image file: a panel per target, or one for the predicted class."""
    pre = explainer.preprocessing
    return explain_picture(explainer, load_resized(source, eval_resize(pre), pre.decode_size))


def explain_picture(explainer: Explainer, picture: torch.Tensor) -> bytes:
    """The explanation PNG of one decoded, resized uint8 ``(H, W, 3)`` picture (``data.images.load_resized``)."""
    pre = explainer.preprocessing
    outputs, maps, explained = explainer.maps(normalise_batch(picture[None], pre)[0])
    if explainer.task == "regression":
        titles = [f"{short_name(explainer.names[j])} {outputs[j]:.2f}" for j in explained]
    else:
        titles = [f"{explainer.names[j]} {outputs[j]:.2f}" for j in explained]
    return panels_png(picture.numpy(), maps, titles)


def explanation_path(folder: str | os.PathLike, image: str | os.PathLike, taken: set[str]) -> Path:
    """``folder/<image stem>.png``; a second image of the same stem gets ``_2``, ``_3`` ... (``taken`` records them)."""
    stem = Path(image).stem
    name, k = f"{stem}.png", 1
    while name in taken:
        k += 1
        name = f"{stem}_{k}.png"
    taken.add(name)
    return Path(folder) / name


def write_explanations(explainer: Explainer, paths: Sequence[str], folder: str | os.PathLike,
                       progress: bool = True) -> int:
    """``folder/<image>.png`` for each readable image of ``paths``; returns how many were written.

    An unreadable image is skipped (its prediction row already says why it could not be read).
    """
    from ..results import atomic_write

    os.makedirs(folder, exist_ok=True)
    taken: set[str] = set()
    written = 0
    for path in track(paths, log, len(paths), show=progress and len(paths) > 1, desc="explain"):
        try:
            png = explain_image(explainer, path)
        except (OSError, ValueError):
            continue
        atomic_write(explanation_path(folder, path, taken), png)
        written += 1
    return written
