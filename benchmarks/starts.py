"""Starting weights the benchmarks share: the shipped model whole, or its backbone alone.

``--weights`` given the shipped checkpoint keeps its head when a run predicts the same eight car scores
(``training.run.kept_head``): the run starts from a finished model. A benchmark that measures how
well a model learns from few photos (which photos to label, how intervals calibrate) needs a start that
still has to learn them, as real photos of another task would: the shipped backbone with a new head,
written here as a plain state_dict (``backbone.*``; the run gets the shipped preprocessing through
``--image-size``).
"""

from __future__ import annotations

from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "trained_models" / "resnet18_synthetic.ckpt"
SHIPPED_SIZE = "160"


def shipped_backbone(folder: Path) -> Path:
    """The shipped model's backbone without its head, as a state_dict file in ``folder`` (written once)."""
    target = Path(folder) / "shipped_backbone.pt"
    if not target.is_file():
        state = torch.load(SHIPPED, map_location="cpu", weights_only=True)["state_dict"]
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.float() for k, v in state.items() if k.startswith("backbone.")}, target)
    return target
