"""Frozen features of pretrained backbones, probed on labelled photos (a benchmark).

    python benchmarks/bench_probe.py --train WORK/data/fashion/train WORK/data/fashion/val \
        --test WORK/data/fashion/test --limit 3000 WORK/pretrained/fashion-*.ckpt

Each backbone (a ``perspective pretrain`` output, or any ``--weights`` file) turns every photo into its
feature vector without training; a logistic regression and a 10-nearest-neighbour vote (scikit-learn,
on unit-length features) learn the classes from the ``--train`` folders and are scored on ``--test``.
It asks how much a pretraining learnt before any fine-tune. On Fashion-MNIST-500 the ranking it gives
is not the fine-tune's (docs/training.md): a probe tells a backbone that learnt from one that did not,
not which of two good ones fine-tunes better.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perspective.cli import ArgumentParser, existing_path, positive_int  # noqa: E402
from perspective.data import load_resized, read_labelled_data  # noqa: E402
from perspective.models.backbones import create_backbone, default_preprocessing  # noqa: E402
from perspective.models.transforms import eval_resize, normalise_batch  # noqa: E402


def features(model: torch.nn.Module, paths: list[str], pre, batch_size: int = 256) -> np.ndarray:
    """Unit-length feature vectors of ``paths``, preprocessed as evaluation does."""
    resize = eval_resize(pre)
    out = []
    with torch.inference_mode():
        for i in range(0, len(paths), batch_size):
            batch = torch.stack([load_resized(p, resize) for p in paths[i:i + batch_size]])
            out.append(model(normalise_batch(batch, pre)).float().numpy())
    f = np.concatenate(out)
    return f / np.linalg.norm(f, axis=1, keepdims=True).clip(min=1e-12)


def labelled(folders: list[Path], limit: int | None = None) -> tuple[list[str], np.ndarray]:
    frames = [read_labelled_data(f, task="classification").frame for f in folders]
    paths = [p for fr in frames for p in fr["path"]]
    labels = np.concatenate([fr["label"].to_numpy() for fr in frames])
    return (paths[:limit], labels[:limit]) if limit else (paths, labels)


def main(argv: list[str] | None = None) -> None:
    p = ArgumentParser(prog="bench_probe.py", description=__doc__.split("\n\n")[0])
    p.add_argument("weights", nargs="+", type=lambda v: v if v == "none" else existing_path(v),
                   help="backbone files (perspective pretrain outputs); none: random weights, the floor")
    p.add_argument("--train", nargs="+", type=existing_path, required=True, help="labelled folders to learn from")
    p.add_argument("--test", type=existing_path, required=True, help="labelled folder to score on")
    p.add_argument("--limit", type=positive_int, default=None, help="score on the first N test photos (default: all)")
    p.add_argument("--backbone", default="resnet18", help="(default resnet18)")
    p.add_argument("--image-size", type=positive_int, default=64, help="the probe's input size (default 64)")
    args = p.parse_args(argv)

    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    train_paths, train_labels = labelled(args.train)
    test_paths, test_labels = labelled([args.test], args.limit)
    pre = default_preprocessing(args.backbone, args.image_size)
    print(f"{len(train_paths)} photos to learn from, {len(test_paths)} to score, {args.image_size} px")
    for weights in args.weights:
        model = create_backbone(args.backbone, str(weights), args.image_size).eval()
        train, test = features(model, train_paths, pre), features(model, test_paths, pre)
        logistic = LogisticRegression(C=10, max_iter=3000).fit(train, train_labels).score(test, test_labels)
        knn = KNeighborsClassifier(10, weights="distance").fit(train, train_labels).score(test, test_labels)
        print(f"{Path(weights).name}: logistic regression {logistic:.4f}, 10 nearest neighbours {knn:.4f}")


if __name__ == "__main__":
    main()
