"""How unlike the training photos a photo is: a novelty score beside every prediction, and its p-value.

A model trained on car photos still answers with confident-looking scores for a photo of a cat, a
screenshot or a night shot; intervals, calibrated on photos like the training ones, say nothing about
photos unlike them. So the model keeps a summary of the photos it learnt from:

- **The score** is the cosine distance from a photo's penultimate features (the head's input) to the
  nearest of a bank of training photos' features: k-nearest-neighbour detection with k = 1 (Sun et al.
  2022, "Out-of-Distribution Detection with Deep Nearest Neighbors"). Near 0 for a photo like one the
  model learnt from, larger the less it looks like any of them. Measured against Mahalanobis distance,
  a larger k, maximum softmax probability and energy (``benchmarks/bench_novelty.py``), it separated the
  near shifts best (lighting, colours, blur, camera height) and the far ones (other kinds of photo,
  noise) almost perfectly; and its summary stays small for any backbone.
- **The bank** is a seeded sample of at most ``BANK_IMAGES`` training photos' unit-length features in
  fp16, and at most ``BANK_BYTES``, so a checkpoint does not grow with the data.
- **The calibration** is the sorted scores of validation photos (photos like the training ones that
  the model did not learn from). A new photo's p-value is the share of them at least as unusual, with
  the usual +1 (split conformal): for a photo like the training ones it falls at or below a level with
  probability at most that level, so ``novel`` (p-value at or below ``--novelty``) flags about that
  share of ordinary photos, and most photos of another kind.

The score is a matrix product and a maximum: it runs inside the model's forward pass on any device
and inside an exported ONNX or OpenVINO graph, where the bank travels as a constant.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

CHECKPOINT_KEY = "novelty"  # a checkpoint's summary: the bank and the calibration
BANK_IMAGES = 2000
BANK_BYTES = 4 * 2**20  # 4 MiB of fp16 features: 2,000 photos of a 512-feature backbone, 1,000 of a 2048 one
METHOD = "knn"  # the score's name in a summary; one method today


def bank_size(features: int) -> int:
    """How many training photos the bank keeps for a backbone of ``features`` features."""
    return max(1, min(BANK_IMAGES, BANK_BYTES // (2 * features)))


def unit(features: torch.Tensor) -> torch.Tensor:
    """Each row scaled to length 1 (a zero row stays zero)."""
    return features / features.norm(dim=1, keepdim=True).clamp_min(1e-12)


def make_bank(features: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The bank: a seeded sample of at most ``bank_size`` rows of ``features``, unit length, in fp16."""
    features = features.float()
    keep = bank_size(features.shape[1])
    if len(features) > keep:
        chosen = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed))[:keep]
        features = features[chosen.sort().values]
    return unit(features).half()


def novelty_scores(features: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """The cosine distance of each row of ``features`` to its nearest row of ``bank``, in fp32.

    Plain tensor operations (no search structure), so the same code runs under autocast, on a GPU and
    in an exported graph: one product with at most ``BANK_IMAGES`` rows costs a small share of the backbone.
    """
    similarity = unit(features.float()) @ bank.float().T
    return 1.0 - similarity.max(dim=1).values


def with_novelty(outputs: torch.Tensor, features: torch.Tensor, bank: torch.Tensor | None) -> torch.Tensor:
    """``outputs`` with the novelty score as one more column (``outputs`` as they are without a bank): what the
    model's forward pass and its exported graph both return."""
    if bank is None:
        return outputs
    return torch.cat([outputs, novelty_scores(features, bank)[:, None]], dim=1)


def summarise(bank: torch.Tensor, calibration_features: torch.Tensor) -> dict[str, Any]:
    """A checkpoint's summary: the bank, and the sorted scores of the calibration photos against it."""
    if len(calibration_features) == 0:
        raise ValueError("a novelty calibration needs at least one photo")
    calibration = novelty_scores(calibration_features, bank).sort().values
    return {"method": METHOD, "bank": bank.half().contiguous(), "calibration": calibration.float().contiguous()}


def p_values(scores: np.ndarray | torch.Tensor, calibration: np.ndarray | torch.Tensor) -> np.ndarray:
    """The share of calibration scores at least as large as each score, counting the score itself:
    ``(1 + #{calibration >= score}) / (n + 1)``, in (0, 1]."""
    calibration = np.asarray(calibration, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    at_least = len(calibration) - np.searchsorted(calibration, scores, side="left")
    return (1.0 + at_least) / (len(calibration) + 1.0)


def summary_bytes(summary: dict[str, Any]) -> int:
    """The bytes a summary adds to a checkpoint (its tensors)."""
    return sum(int(v.numel() * v.element_size()) for v in summary.values() if isinstance(v, torch.Tensor))
