"""What `perspective select` is worth: the score after labelling the photos it picks, against picking at random.

    python benchmarks/bench_select.py                         # cars and digits, 3 seeds, balanced/uncertainty/random
    python benchmarks/bench_select.py --tasks cars --seeds 0 --methods balanced random

For each task and seed: a model is trained on the first labelled photos (``START``), ``select``
chooses ``ADD`` more from an unlabelled pool (``--by balanced``, ``uncertainty``, or ``random``),
their labels are revealed, a model is trained again on all of them, and its test score is the figure.
The data is made in the work folder (``--workdir``, else a temporary one) from this repository alone:

- ``cars``: synthetic car photos, 100 labelled (seed 201), a pool of 1,000 (seed 202), 500 held-out
  (seed 203); mean test R² of the 8 scores; from the shipped model's backbone with a new head (``starts.py``)
  at 160 px, ``-e 5``
  (from random weights 100-200 photos reach R² near 0 and no choice of photos shows).
- ``digits``: scikit-learn's 1,797 real digits at 64 px, 100 labelled, a pool of 1,000, the other 697
  as the test set; test accuracy; ``--flip-pairs none``, ``-e 20``.

Each finished run is appended at once as one row of ``benchmarks/results/select.jsonl``
(``--results FILE`` elsewhere); ``--resume`` skips the runs this machine already has there. A row's
``case``: ``task``, ``method``, ``start_images`` (labelled first), ``added_images`` (``--add``); its
``seed`` is the training and selection seed. Its ``figures``: ``test_r2`` (cars) or ``test_accuracy``
(digits) after labelling, and ``start_test_r2`` or ``start_test_accuracy``, the first model's.
``precision``: the training runs' (the machine's default).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import store  # noqa: E402
from benchmarks.bench_recipe import headline_score  # noqa: E402
from benchmarks.starts import SHIPPED_SIZE, shipped_backbone  # noqa: E402
from perspective.cli import ArgumentParser, positive_int  # noqa: E402

START, ADD = 100, 100
METHODS = ("balanced", "uncertainty", "random")
METRIC = {"cars": "r2", "digits": "accuracy"}  # what each task's test score is
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
    p.add_argument("--results", default=None,
                   help="JSON Lines file the rows are appended to (default benchmarks/results/select.jsonl)")
    p.add_argument("--resume", action="store_true", help="skip the runs this machine already has in the results file")
    return p


def case_of(task: str, method: str, added: int) -> dict:
    """The settings that tell one run of this benchmark from another (the row's ``case``)."""
    return {"task": task, "method": method, "start_images": START, "added_images": added}


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


def after_labelling(task: str, method: str, seed: int, parts: dict[str, Path], model: str, work: Path,
                    add: int) -> float:
    """``select`` ``add`` photos from the pool by ``method``, reveal their labels, train on them and the first
    ones: the test score."""
    out = work / f"{task}-{seed}-{method}"
    subprocess.run([sys.executable, "-m", "perspective", "select", "-d", str(parts["pool"] / "images"),
                    "-n", str(add), "-c", model, "-o", str(out), "--by", method, "--seed",
                    str(seed), "--labelled", str(parts["start"] / "images"), "-q"],
                   check=True, capture_output=True, cwd=ROOT)
    chosen = set(pd.read_csv(out / "select.csv")["filename"])
    start, pool = pd.read_csv(parts["start"] / "labels.csv"), pd.read_csv(parts["pool"] / "labels.csv")
    added = pool[pool["filename"].isin(chosen)]
    both = pd.concat([start.assign(filename=[str(parts["start"] / "images" / f) for f in start["filename"]]),
                      added.assign(filename=[str(parts["pool"] / "images" / f) for f in added["filename"]])])
    labels = work / f"{task}-{seed}-{method}-labels"
    labels.mkdir(exist_ok=True)
    both.to_csv(labels / "labels.csv", index=False)
    return train(task, labels / "labels.csv", parts["test"], seed, work, f"{task}-{seed}-{method}")[1]


def table(rows: list[dict]) -> str:
    """Per task and method: the test score after labelling over seeds, and its gain over random, paired by seed."""
    def score(row: dict, prefix: str = "test_") -> float:
        return row["figures"][prefix + METRIC[row["case"]["task"]]]

    lines = ["| task | picked by | seeds | test after labelling, mean ± std (min - max) | gain over random |",
             "|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["case"]["task"], row["case"]["method"]), []).append(row)
    for (task, method), group in groups.items():
        t = [score(r) for r in group]
        random = {r["seed"]: score(r) for r in groups.get((task, "random"), [])}
        paired = [score(r) - random[r["seed"]] for r in group if r["seed"] in random]
        gain = f"{statistics.mean(paired):+.3f} ± {statistics.stdev(paired):.3f}" \
            if method != "random" and len(paired) > 1 else "-"
        std = statistics.stdev(t) if len(t) > 1 else 0.0
        lines.append(f"| {task} | {method} | {len(group)} | {statistics.mean(t):.3f} ± {std:.3f} "
                     f"({min(t):.3f} - {max(t):.3f}) | {gain} |")
    return "\n".join(lines)


def main() -> int:
    args = get_args_parser().parse_args()
    from perspective.hardware import default_precision

    precision = default_precision("auto")  # train's, given no --precision
    results = Path(args.results) if args.results else store.results_file("select")
    done = {(json.dumps(r["case"], sort_keys=True), r["seed"], r["precision"]): r
            for r in store.measured_here("select", results)} if args.resume else {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        for task in args.tasks:
            parts = (make_cars if task == "cars" else make_digits)(work / "data" / task)
            start = pd.read_csv(parts["start"] / "labels.csv")
            metric = METRIC[task]
            for seed in args.seeds:
                first = write(work / f"{task}-{seed}-start", start, parts["start"] / "images")
                model, before = None, None
                for method in args.methods:
                    case = case_of(task, method, args.add)
                    key = (json.dumps(case, sort_keys=True), seed, precision)
                    if key in done:
                        rows.append(done[key])
                        continue
                    if model is None:
                        model, before = train(task, first, parts["test"], seed, work, f"{task}-{seed}-start")
                    after = after_labelling(task, method, seed, parts, model, work, args.add)
                    figures = {f"test_{metric}": after, f"start_test_{metric}": before}
                    rows.append(store.record("select", case, figures, seed=seed, precision=precision, path=results))
                    print(json.dumps({"case": case, "seed": seed, "figures": figures}), flush=True)
    if rows:
        print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
