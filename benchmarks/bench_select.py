"""What `perspective select` is worth: the score after labelling the photos it picks, against picking at random.

    python benchmarks/bench_select.py                         # cars and digits, 3 seeds, balanced/uncertainty/random
    python benchmarks/bench_select.py --tasks cars --seeds 0 --table --results benchmarks/select_results.csv

For each task and seed: a model is trained on the first labelled photos (``START``), ``select``
chooses ``ADD`` more from an unlabelled pool (``--by balanced``, ``uncertainty``, or ``random``),
their labels are revealed, a model is trained again on all of them, and its test score is the figure.

- ``cars``: synthetic car photos, 100 labelled (seed 201), a pool of 1,000 (seed 202), 500 held-out
  (seed 203); mean test R² of the 8 scores; from the shipped model's backbone with a new head (``starts.py``)
  at 160 px, ``-e 5``
  (from random weights 100-200 photos reach R² near 0 and no choice of photos shows).
- ``digits``: scikit-learn's 1,797 real digits at 64 px, 100 labelled, a pool of 1,000, the other 697
  as the test set; test accuracy; ``--flip-pairs none``, ``-e 20``.

Every finished run is appended to ``--results``; ``--table`` prints the docs' table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_recipe import headline_score  # noqa: E402
from starts import SHIPPED_SIZE, shipped_backbone  # noqa: E402

from perspective.cli import ArgumentParser, positive_int  # noqa: E402

START, ADD = 100, 100
METHODS = ("balanced", "uncertainty", "random")
# cars start from the shipped model's backbone (a stand-in for ImageNet weights, which cannot be downloaded
# here): from random weights 100-200 photos reach a test R² near 0 and every way of choosing looks alike
# (its backbone alone: with its head the model knows the eight scores already, ``starts.py``)
TRAIN = {"cars": ["--image-size", SHIPPED_SIZE, "-e", "5"],
         "digits": ["--weights", "none", "--image-size", "64", "-e", "20", "--flip-pairs", "none"]}


def get_args_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="bench_select.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", choices=list(TRAIN), default=list(TRAIN), help="(default: both)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="(default: all)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="(default 0 1 2)")
    p.add_argument("--add", type=positive_int, default=ADD, help=f"photos to label next (default {ADD})")
    p.add_argument("--workdir", default=None, help="keep data and runs here (default: a temporary folder)")
    p.add_argument("--results", default=None, help="CSV of finished runs (default: <workdir>/select.csv)")
    p.add_argument("--table", action="store_true", help="run nothing: print --results as a markdown table")
    return p


def write(folder: Path, rows: pd.DataFrame, images: Path) -> Path:
    """``folder/labels.csv`` naming images in ``images`` (absolute paths: no copies)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows.assign(filename=[str(images / f) for f in rows["filename"]]).to_csv(folder / "labels.csv", index=False)
    return folder / "labels.csv"


def make_cars(root: Path) -> dict[str, Path]:
    from perspective.synth import generate

    parts = {}
    for name, count, seed in (("start", START, 201), ("pool", 1000, 202), ("test", 500, 203)):
        if not (root / name / "labels.csv").is_file():
            generate(root / name, count, seed, progress=False, workers=None)
        parts[name] = root / name
    return parts


def make_digits(root: Path) -> dict[str, Path]:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    if not (root / "test" / "labels.csv").is_file():
        digits = load_digits()
        order = np.random.default_rng(0).permutation(len(digits.target))
        for name, chosen in (("start", order[:START]), ("pool", order[START:START + 1000]),
                             ("test", order[START + 1000:])):
            (root / name / "images").mkdir(parents=True, exist_ok=True)
            rows = []
            for i in chosen:
                image = Image.fromarray((digits.images[i] * (255 / 16)).astype("uint8"), mode="L").resize((64, 64))
                image.save(root / name / "images" / f"digit{i:04d}.png")
                rows.append({"filename": f"digit{i:04d}.png", "label": str(digits.target[i])})
            pd.DataFrame(rows).to_csv(root / name / "labels.csv", index=False)
    return {name: root / name for name in ("start", "pool", "test")}


def train(task: str, labels: Path, test: Path, seed: int, work: Path, name: str) -> tuple[str, float]:
    """Train on ``labels``, test on ``test``: (best checkpoint, test score)."""
    start = ["--weights", str(shipped_backbone(work))] if task == "cars" else []
    result = subprocess.run(
        [sys.executable, "-m", "perspective", "train", "-d", str(labels), "--images", "/", "--test-data",
         str(test / "labels.csv"), *start, *TRAIN[task], "--seed", str(seed), "-c", str(work / "ckpt"), "--logs-location",
         str(work / "logs"), "--logger", "none", "--run-name", name, "-q"],
        check=True, capture_output=True, text=True, cwd=ROOT)
    best = result.stdout.strip().splitlines()[-1].removeprefix("best checkpoint: ")
    metrics = json.loads((Path(best).parent / "test_report" / "metrics.json").read_text())
    return best, headline_score(metrics)


def main() -> int:
    args = get_args_parser().parse_args()
    if args.table:
        frame = pd.read_csv(args.results)
        lines = ["| task | picked by | seeds | test after labelling, mean ± std (min - max) | gain over random |",
                 "|---|---|---|---|---|"]
        random_mean = frame[frame["method"] == "random"].groupby("task")["test"].mean()
        for (task, method), group in frame.groupby(["task", "method"], sort=False):
            t = group["test"]
            paired = group.set_index("seed")["test"] - frame[(frame["task"] == task) & (frame["method"] == "random")
                                                             ].set_index("seed")["test"]
            gain = f"{paired.mean():+.3f} ± {paired.std(ddof=1):.3f}" if method != "random" and len(paired) > 1 else "-"
            lines.append(f"| {task} | {method} | {len(group)} | {t.mean():.3f} ± {t.std(ddof=1) if len(t) > 1 else 0:.3f} "
                         f"({t.min():.3f} - {t.max():.3f}) | {gain} |")
        print("\n".join(lines) + f"\n(random means: {random_mean.round(3).to_dict()})")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        results = Path(args.results or work / "select.csv")
        done = pd.read_csv(results).to_dict("records") if results.is_file() else []
        for task in args.tasks:
            parts = (make_cars if task == "cars" else make_digits)(work / "data" / task)
            start = pd.read_csv(parts["start"] / "labels.csv")
            pool = pd.read_csv(parts["pool"] / "labels.csv")
            for seed in args.seeds:
                first = write(work / f"{task}-{seed}-start", start, parts["start"] / "images")
                model, before = None, None
                for method in args.methods:
                    if any((r["task"], r["method"], r["seed"]) == (task, method, seed) for r in done):
                        continue
                    if model is None:
                        model, before = train(task, first, parts["test"], seed, work, f"{task}-{seed}-start")
                    out = work / f"{task}-{seed}-{method}"
                    subprocess.run([sys.executable, "-m", "perspective", "select", "-d", str(parts["pool"] / "images"),
                                    "-n", str(args.add), "-c", model, "-o", str(out), "--by", method, "--seed",
                                    str(seed), "--labelled", str(parts["start"] / "images"), "-q"],
                                   check=True, capture_output=True, cwd=ROOT)
                    chosen = set(pd.read_csv(out / "select.csv")["filename"])
                    added = pool[pool["filename"].isin(chosen)]
                    both = pd.concat([start.assign(filename=[str(parts["start"] / "images" / f) for f in start["filename"]]),
                                      added.assign(filename=[str(parts["pool"] / "images" / f) for f in added["filename"]])])
                    labels = work / f"{task}-{seed}-{method}-labels"
                    labels.mkdir(exist_ok=True)
                    both.to_csv(labels / "labels.csv", index=False)
                    _, after = train(task, labels / "labels.csv", parts["test"], seed, work, f"{task}-{seed}-{method}")
                    row = {"task": task, "method": method, "seed": seed, "start_test": before, "test": after}
                    print(row, flush=True)
                    done.append(row)
                    pd.DataFrame(done).to_csv(results, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
