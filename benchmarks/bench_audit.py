"""How well the label audit finds wrong labels: synthetic car photos with 5% of their labels corrupted on purpose.

    python benchmarks/bench_audit.py                         # 400 images, 5 folds of 10 epochs, 96 px, from scratch
    python benchmarks/bench_audit.py --images 200 --epochs 5

A share of the rows (``--corrupt``, 5%) get the eight scores of another, random row: a label that
belongs to another photo, the usual annotation slip. ``perspective audit`` ranks every row; the
figure is the precision among the worst rows as many as were corrupted (precision at 5%), and the
recall in twice as many; chance is the corrupted share.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perspective.cli import ArgumentParser, positive_int  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="bench_audit.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=positive_int, default=400, help="synthetic images (default 400)")
    p.add_argument("--corrupt", type=float, default=0.05, help="share of rows given another row's labels (default 0.05)")
    p.add_argument("--epochs", type=positive_int, default=10, help="epochs of each fold's run (default 10)")
    p.add_argument("--folds", type=positive_int, default=5, help="folds (default 5)")
    p.add_argument("--image-size", type=positive_int, default=96, help="input size (default 96)")
    p.add_argument("--weights", default="none",
                   help="starting weights of each fold's run, as train.py takes them (default none: from scratch)")
    p.add_argument("--seed", type=int, default=5005, help="data and corruption seed (default 5005)")
    p.add_argument("--workdir", default=None, help="keep data and runs here (default: a temporary folder)")
    return p


def main() -> int:
    args = get_args_parser().parse_args()
    from perspective.synth import generate

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        data = work / "data"
        if not (data / "labels.csv").is_file():
            generate(data, args.images, args.seed)
        labels = pd.read_csv(data / "labels.csv")
        scores = [c for c in labels.columns if c.startswith("perspective_score_")]
        rng = np.random.default_rng(args.seed)
        bad = rng.choice(len(labels), size=max(1, round(args.corrupt * len(labels))), replace=False)
        donors = (bad + rng.integers(1, len(labels), size=len(bad))) % len(labels)
        corrupted = labels[["filename", *scores]].copy()
        corrupted.loc[bad, scores] = labels.loc[donors, scores].to_numpy()
        corrupted.to_csv(work / "corrupted.csv", index=False)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "perspective", "audit", "-d", str(work / "corrupted.csv"),
                        "--images", str(data / "images"), "--weights", args.weights, "--image-size", str(args.image_size),
                        "-e", str(args.epochs), "--folds", str(args.folds), "--logger", "none", "-q",
                        "-c", str(work / "checkpoints"), "-o", str(work / "audit")], check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        table = pd.read_csv(work / "audit" / "audit.csv")
        wrong = set(labels.loc[bad, "filename"])
        k = len(wrong)
        precision = len(wrong & set(table["filename"].head(k))) / k
        recall_2k = len(wrong & set(table["filename"].head(2 * k))) / k
        print(f"{len(labels)} synthetic images (seed {args.seed}), {k} given another row's labels; "
              f"{args.folds} folds of {args.epochs} epochs at {args.image_size} px, weights {args.weights}, "
              f"{seconds:.0f} s")
        print(f"precision among the worst {k} ({k / len(labels):.0%}): {precision:.2f} (chance {k / len(labels):.2f}); "
              f"found among the worst {2 * k}: {recall_2k:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
