"""Training recipes on small data: train's recipes against a plain PyTorch loop (a benchmark).

    python benchmarks/bench_recipe.py                       # 3 seeds x digits, synthetic x -e 15/30, both recipes
    python benchmarks/bench_recipe.py --datasets digits --epochs 15 --seeds 42 --extra="--ema-decay 0"
    python benchmarks/bench_recipe.py --datasets fashion cars --seeds 0 1 2 --epochs 15 \
        --extra="--augment trivial" --label "toolkit --augment trivial"
    python benchmarks/bench_recipe.py --datasets fashion --seeds 0 1 2 --epochs 15 --recipes toolkit \
        --pretrain="--method simclr -e 20 --image-size 64" --label "pretrain simclr + toolkit"
    python benchmarks/bench_recipe.py --datasets fashion --seeds 0 1 2 --epochs 15 --recipes toolkit --unlabelled
    python benchmarks/bench_recipe.py --datasets cars --seeds 0 1 2 --epochs 15 --recipes toolkit \
        --pretrain="-e 40 --hflip-prob 0" --label "toolkit, pretrained simclr -e 40 no flips"

Small datasets, each with a fixed split (the seeds vary initialisation, augmentation and order):

- ``digits``: scikit-learn's ``load_digits``, 1,797 *real* scanned handwritten digits (8x8, shipped
  inside the package, so offline), scaled up to 64 px. 500 train, 150 validation, the other 1,147
  test: a small training set, a test set large enough to measure it. Metric: test accuracy.
- ``synthetic``: 300 images of the built-in car generator (250 train, 50 validation) and 500 other
  images (another seed) as the test set. Metric: mean test R² over the 8 perspective scores.
- ``fashion``: Fashion-MNIST (real product photos, 28x28 grey, from Debian's ``dataset-fashion-mnist``:
  ``apt-get install dataset-fashion-mnist``): 50 labelled images per class (500: 425 train, 75
  validation, a fixed pick), the official 10,000-image test set, and the other 59,500 training images
  without their labels as the pool that ``--pretrain`` learns from. Metric: test accuracy.
- ``cars``: 300 labelled car images (250 train, 50 validation, seed 101), 3,000 unlabelled ones
  (seed 104) as the pool, 1,000 held-out (seed 103). Metric: mean test R².

``--unlabelled`` gives each toolkit run the pool as ``--unlabelled`` (a teacher, then FixMatch, or with
``--extra="--semi self-training"`` its pseudo-labels and a student; the wall time counts them all). ``--pretrain FLAGS`` runs ``perspective pretrain`` on the dataset's pool once (its file is kept in the
work folder and reused by every seed; its wall time is the ``pretrain_s`` column) and starts each
toolkit run from it (``--weights``). The pool has no labels; digits and synthetic have none.

Both recipes train resnet18 from random weights (``--weights none``) at 64 px, batch 32, on the same
files. ``toolkit`` is ``train.py`` with its defaults: the reported number is its own test report
(``test_report/metrics.json``) of the checkpoint it picked. ``plain`` is the loop the toolkit must
beat, as PyTorch's tutorials write it: Adam 1e-3, no augmentation, fp32, validation after every
epoch and the best epoch's weights tested (regression: best by validation R²). Each run is a separate
process, timed whole (start-up and test included); the two recipes take turns seed by seed, so a
slower or faster spell of the machine falls on both. Every finished run is appended to
``--results`` (a CSV), so an interrupted benchmark goes on where it stopped when started again with
the same file.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perspective.cli import ArgumentParser, positive_int  # noqa: E402

IMAGE_SIZE = 64
BATCH_SIZE = 32
DIGITS_SPLIT = (500, 150)  # train, validation; the rest is the test set
SYNTHETIC_SPLIT = (250, 50, 500)  # train, validation, test (the test set from another seed)
CARS_SPLIT = (250, 50, 1000, 3000)  # train, validation, test, unlabelled pool
FASHION_PER_CLASS, FASHION_VAL = 50, 75
FASHION_SOURCE = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
FASHION_CLASSES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
DATASETS = ("digits", "synthetic", "fashion", "cars")
RECIPES = ("toolkit", "plain")


def get_args_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="bench_recipe.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS), help="(default: both)")
    p.add_argument("--epochs", nargs="+", type=positive_int, default=[15, 30], help="(default 15 30)")
    p.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2], help="(default 42 1 2)")
    p.add_argument("--recipes", nargs="+", choices=RECIPES, default=list(RECIPES), help="(default: both)")
    p.add_argument("--extra", default="", help="more train.py flags for the toolkit runs, as one string")
    p.add_argument("--pretrain", default=None, metavar="FLAGS",
                   help="pretrain on the dataset's unlabelled pool with these perspective pretrain flags first, and "
                        "start the toolkit runs from it")
    p.add_argument("--unlabelled", action="store_true",
                   help="give the toolkit runs the dataset's unlabelled pool as --unlabelled (FixMatch, or --semi in --extra)")
    p.add_argument("--image-size", type=positive_int, default=IMAGE_SIZE, help=f"(default {IMAGE_SIZE})")
    p.add_argument("--label", default=None, help="name of the toolkit recipe in the table (default: toolkit, "
                                                   "or toolkit + --extra)")
    p.add_argument("--workdir", default=None, help="data and runs go here (default: a temporary folder)")
    p.add_argument("--results", default=None, help="CSV of finished runs, appended to and resumed from "
                                                    "(default: <workdir>/results.csv)")
    p.add_argument("--table", action="store_true",
                   help="run nothing: print the --results file as the README's markdown table")
    p.add_argument("--plain-run", nargs=4, metavar=("TRAIN", "VAL", "TEST", "EPOCHS_SEED"), help=argparse.SUPPRESS)
    return p


# --- data ----------------------------------------------------------------------------------------


def _write_split(folder: Path, rows: list[dict], images: dict[str, object]) -> None:
    """``folder/labels.csv`` and ``folder/images/`` for ``rows``; ``images`` maps filename -> PIL image."""
    import pandas as pd

    (folder / "images").mkdir(parents=True, exist_ok=True)
    for row in rows:
        images[row["filename"]].save(folder / "images" / row["filename"])
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)


def make_digits(root: Path) -> Path:
    """scikit-learn's 1,797 real digits at 64 px, split 500 / 150 / rest with a fixed seed."""
    if (root / "test" / "labels.csv").is_file():
        return root
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    images, rows = {}, []
    for i in order:
        pixels = (digits.images[i] * (255 / 16)).astype(np.uint8)
        name = f"digit{i:04d}.png"
        images[name] = Image.fromarray(pixels, mode="L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
        rows.append({"filename": name, "label": str(digits.target[i])})
    n_train, n_val = DIGITS_SPLIT
    _write_split(root / "train", rows[:n_train], images)
    _write_split(root / "val", rows[n_train:n_train + n_val], images)
    _write_split(root / "test", rows[n_train + n_val:], images)
    return root


def make_synthetic(root: Path) -> Path:
    """300 car images (250 train, 50 validation) and 500 more from another seed as the test set."""
    if (root / "test" / "labels.csv").is_file():
        return root
    import pandas as pd
    from PIL import Image

    from perspective.synth import generate

    n_train, n_val, n_test = SYNTHETIC_SPLIT
    for name, count, seed, parts in (("pool", n_train + n_val, 101, (("train", 0, n_train), ("val", n_train, None))),
                                     ("heldout", n_test, 102, (("test", 0, None),))):
        source = generate(root / name, count, seed, progress=False, workers=os.cpu_count() or 1)
        frame = pd.read_csv(source / "labels.csv")
        for split, start, stop in parts:
            rows = frame.iloc[start:stop].to_dict("records")
            images = {r["filename"]: Image.open(source / "images" / r["filename"]) for r in rows}
            _write_split(root / split, rows, images)
    return root


def _idx(name: str):
    """An IDX file of Fashion-MNIST (gzip): images (N, 28, 28) or labels (N,), uint8."""
    import gzip

    import numpy as np

    with gzip.open(FASHION_SOURCE / name) as file:
        data = file.read()
    if data[3] == 3:
        n, h, w = np.frombuffer(data[4:16], ">i4")
        return np.frombuffer(data[16:], np.uint8).reshape(n, h, w)
    return np.frombuffer(data[8:], np.uint8)


def make_fashion(root: Path) -> Path:
    """500 labelled Fashion-MNIST images (50 a class; 425 train, 75 validation), the 10,000 test images, the pool."""
    if (root / "test" / "labels.csv").is_file():
        return root
    if not FASHION_SOURCE.is_dir():
        raise SystemExit(f"bench_recipe.py: no Fashion-MNIST in {FASHION_SOURCE}: apt-get install dataset-fashion-mnist")
    import numpy as np
    from PIL import Image

    images, labels = _idx("train-images-idx3-ubyte.gz"), _idx("train-labels-idx1-ubyte.gz")
    test_images, test_labels = _idx("t10k-images-idx3-ubyte.gz"), _idx("t10k-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(0)
    picked = np.concatenate([rng.choice(np.flatnonzero(labels == c), FASHION_PER_CLASS, replace=False)
                             for c in range(len(FASHION_CLASSES))])
    rng.shuffle(picked)

    def split(indices, pixels, classes, prefix):
        found = {f"{prefix}{i:05d}.png": Image.fromarray(pixels[i], mode="L") for i in indices}
        return [{"filename": f"{prefix}{i:05d}.png", "label": FASHION_CLASSES[classes[i]]} for i in indices], found

    for name, indices, pixels, classes, prefix in (
            ("train", picked[FASHION_VAL:], images, labels, "train"), ("val", picked[:FASHION_VAL], images, labels, "train"),
            ("test", range(len(test_labels)), test_images, test_labels, "test")):
        rows, found = split(indices, pixels, classes, prefix)
        _write_split(root / name, rows, found)
    (root / "pool").mkdir(exist_ok=True)
    for i in np.setdiff1d(np.arange(len(labels)), picked):
        Image.fromarray(images[i], mode="L").save(root / "pool" / f"pool{i:05d}.png")
    return root


def make_cars(root: Path) -> Path:
    """300 labelled car images (250 train, 50 validation), 1,000 held-out, 3,000 unlabelled (the pool)."""
    if (root / "test" / "labels.csv").is_file():
        return root
    import pandas as pd
    from PIL import Image

    from perspective.synth import generate

    n_train, n_val, n_test, n_pool = CARS_SPLIT
    workers = os.cpu_count() or 1
    labelled = pd.read_csv(generate(root / "labelled", n_train + n_val, 101, progress=False, workers=workers) / "labels.csv")
    for name, rows in (("train", labelled.iloc[:n_train]), ("val", labelled.iloc[n_train:])):
        rows = rows.to_dict("records")
        _write_split(root / name, rows, {r["filename"]: Image.open(root / "labelled" / "images" / r["filename"])
                                         for r in rows})
    heldout = generate(root / "heldout", n_test, 103, progress=False, workers=workers)
    rows = pd.read_csv(heldout / "labels.csv").to_dict("records")
    _write_split(root / "test", rows, {r["filename"]: Image.open(heldout / "images" / r["filename"]) for r in rows})
    pool = generate(root / "unlabelled", n_pool, 104, progress=False, workers=workers)
    (pool / "labels.csv").unlink()  # the pool has no labels
    (root / "unlabelled" / "images").rename(root / "pool")
    return root


def pretrained_backbone(data: Path, flags: str, work: Path, image_size: int) -> tuple[Path, float]:
    """``perspective pretrain`` on ``data/pool`` with ``flags`` (once: the file is kept); (its file, its wall seconds)."""
    import hashlib

    if not (data / "pool").is_dir():
        raise SystemExit(f"bench_recipe.py: {data.name} has no unlabelled pool to pretrain on")
    tag = hashlib.sha1(f"{data.name} {flags} {image_size}".encode()).hexdigest()[:10]
    output, timing = work / "pretrained" / f"{data.name}-{tag}.ckpt", work / "pretrained" / f"{data.name}-{tag}.seconds"
    if not output.is_file():
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "perspective", "pretrain", "-d", str(data / "pool"), "-o", str(output),
                        "--image-size", str(image_size), "-c", str(work / "ckpt"), "--logs-location",
                        str(work / "logs"), "-q", *shlex.split(flags)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        timing.write_text(f"{time.perf_counter() - start:.1f}\n")
    return output, float(timing.read_text())


# --- the plain loop --------------------------------------------------------------------------------


def plain_loop(train: Path, val: Path, test: Path, epochs: int, seed: int, image_size: int = IMAGE_SIZE) -> dict:
    """What a user writes by hand: resnet18, Adam 1e-3, no augmentation, fp32, the best epoch's weights.

    As PyTorch's fine-tuning tutorial does: validate after every epoch, keep a copy of the weights
    of the best epoch so far, test those at the end.
    """
    import copy

    import numpy as np
    import pandas as pd
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import models
    from torchvision.transforms import v2

    torch.manual_seed(seed)
    np.random.seed(seed)
    frame = pd.read_csv(train / "labels.csv")
    classification = "label" in frame.columns
    names = sorted(frame["label"].astype(str).unique()) if classification else \
        [c for c in frame.columns if c.startswith("perspective_score_")]
    transform = v2.Compose([v2.ToImage(), v2.Resize((image_size, image_size), antialias=True),
                            v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    class Folder(Dataset):
        def __init__(self, folder: Path):
            self.frame = pd.read_csv(folder / "labels.csv")
            self.folder = folder

        def __len__(self):
            return len(self.frame)

        def __getitem__(self, i):
            row = self.frame.iloc[i]
            image = transform(Image.open(self.folder / "images" / row["filename"]).convert("RGB"))
            if classification:
                return image, names.index(str(row["label"]))
            return image, torch.tensor(row[names].to_numpy(dtype=np.float32))

    model = models.resnet18(weights=None, num_classes=len(names))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss() if classification else torch.nn.MSELoss()
    workers = min(os.cpu_count() or 1, 8)
    loader = DataLoader(Folder(train), batch_size=BATCH_SIZE, shuffle=True, num_workers=workers,
                        persistent_workers=True)

    def predict(folder: Path):
        model.eval()
        outs, ys = [], []
        with torch.no_grad():
            for x, y in DataLoader(Folder(folder), batch_size=64, num_workers=workers):
                outs.append(model(x))
                ys.append(y)
        model.train()
        return torch.cat(outs), torch.cat(ys)

    def score(folder: Path) -> float:
        out, y = predict(folder)
        if classification:
            return float((out.argmax(1) == y).float().mean())
        residual = ((out - y) ** 2).sum(0)
        total = ((y - y.mean(0)) ** 2).sum(0)
        return float((1 - residual / total).mean())

    model.train()
    best_val, best_state = -float("inf"), None
    for _ in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        current = score(val)
        if current > best_val:
            best_val, best_state = current, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return {"val": best_val, "test": score(test), "epochs_run": epochs}


# --- runs ----------------------------------------------------------------------------------------


def run_plain(data: Path, epochs: int, seed: int, image_size: int) -> dict:
    command = [sys.executable, __file__, "--plain-run", str(data / "train"), str(data / "val"), str(data / "test"),
               f"{epochs},{seed},{image_size}"]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def headline_score(metrics: dict) -> float:
    """The test score of ``evaluate``'s or ``train``'s ``metrics.json``: accuracy for classes, mean R² for scores."""
    return metrics["accuracy"] if metrics["task"] == "classification" else metrics["mean"]["r2"]


def run_toolkit(data: Path, epochs: int, seed: int, work: Path, extra: list[str], image_size: int) -> dict:
    import torch

    # the process id keeps runs started in the same second by parallel benchmarks (lanes) apart
    name = f"{data.name}-e{epochs}-s{seed}-{time.strftime('%H%M%S')}-{os.getpid()}"
    command = [sys.executable, str(ROOT / "train.py"), "-d", str(data / "train"), "--val-data", str(data / "val"),
               "--test-data", str(data / "test"), "--weights", "none", "--image-size", str(image_size),
               "-s", str(BATCH_SIZE), "-e", str(epochs), "--seed", str(seed), "-c", str(work / "ckpt"),
               "--logs-location", str(work / "logs"), "--run-name", name, "-q", *extra]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    run_dir = work / "ckpt" / "resnet18" / name
    metrics = json.loads((run_dir / "test_report" / "metrics.json").read_text())
    test = headline_score(metrics)
    last = torch.load(run_dir / "last.ckpt", map_location="cpu", weights_only=True)
    monitor = "val_acc" if metrics["task"] == "classification" else "val_loss"
    best = [p for p in run_dir.glob(f"epoch=*-{monitor}=*.ckpt")]  # none where the run validated nothing
    values = [float(p.stem.split(f"{monitor}=")[1]) for p in best]
    val = (max if monitor == "val_acc" else min)(values) if values else float("nan")
    return {"val": val, "test": test, "epochs_run": int(last["epoch"]) + 1}


def summarise(results) -> str:
    """Mean, standard deviation (over seeds) and range of the test metric and wall time, per configuration."""
    import pandas as pd

    frame = pd.DataFrame(results)
    rows = []
    for (dataset, recipe, epochs), group in frame.groupby(["dataset", "recipe", "epochs"], sort=False):
        rows.append({
            "dataset": dataset, "recipe": recipe, "-e": epochs, "seeds": len(group),
            "test mean": group["test"].mean(), "test std": group["test"].std(ddof=1) if len(group) > 1 else 0.0,
            "test min": group["test"].min(), "test max": group["test"].max(),
            "epochs run": group["epochs_run"].mean(), "wall s": group["seconds"].mean(),
        })
    return pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}")


def markdown(results) -> str:
    """The README's table: mean ± standard deviation (min - max) of the test metric and mean wall time."""
    import pandas as pd

    frame = pd.DataFrame(results)
    lines = ["| dataset | recipe | -e | seeds | test mean ± std (min - max) | wall s, mean (range) |",
             "|---|---|---|---|---|---|"]
    order = {r: i for i, r in enumerate(["toolkit", "toolkit --flip-pairs none", "plain"])}
    groups = frame.groupby(["dataset", "epochs", "recipe"], sort=False)
    keys = sorted(groups.groups, key=lambda k: (k[0], k[1], order.get(k[2], 9)))
    for dataset, epochs, recipe in keys:
        group = groups.get_group((dataset, epochs, recipe))
        test, wall = group["test"], group["seconds"]
        std = f" ± {test.std(ddof=1):.3f}" if len(group) > 1 else ""
        name = {"toolkit": "toolkit, defaults", "plain": "plain loop"}.get(recipe, recipe)
        if name.startswith("toolkit -"):  # flags: "toolkit --augment trivial" reads as "toolkit, `--augment trivial`"
            name = name.replace("toolkit ", "toolkit, `", 1) + "`"
        lines.append(f"| {dataset} | {name} | {epochs} | {len(group)} | {test.mean():.3f}{std} ({test.min():.3f} - "
                     f"{test.max():.3f}) | {wall.mean():.0f} ({wall.min():.0f} - {wall.max():.0f}) |")
    return "\n".join(lines)


def main() -> int:
    args = get_args_parser().parse_args()
    if args.table:
        import pandas as pd

        if not args.results or not Path(args.results).is_file():
            raise SystemExit("bench_recipe.py: --table needs --results FILE")
        print(markdown(pd.read_csv(args.results).to_dict("records")))
        return 0
    if args.plain_run:
        train, val, test, epochs_seed = args.plain_run
        epochs, seed, image_size = (int(v) for v in epochs_seed.split(","))
        print(json.dumps(plain_loop(Path(train), Path(val), Path(test), epochs, seed, image_size)))
        return 0
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        results_path = Path(args.results or work / "results.csv")
        done = pd.read_csv(results_path).to_dict("records") if results_path.is_file() else []
        extra = shlex.split(args.extra)
        label = args.label or ("toolkit" + (f" pretrain[{args.pretrain}]" if args.pretrain else "")
                               + (" --unlabelled pool" if args.unlabelled else "")
                               + (f" {args.extra}" if args.extra else ""))
        makers = {"digits": make_digits, "synthetic": make_synthetic, "fashion": make_fashion, "cars": make_cars}
        for dataset in args.datasets:
            data = makers[dataset](work / "data" / dataset)
            start_flags, pretrain_s = [], 0.0
            if args.pretrain:
                backbone, pretrain_s = pretrained_backbone(data, args.pretrain, work, args.image_size)
                start_flags = ["--weights", str(backbone)]
            if args.unlabelled:
                if not (data / "pool").is_dir():
                    raise SystemExit(f"bench_recipe.py: {data.name} has no unlabelled pool to learn from")
                start_flags += ["--unlabelled", str(data / "pool")]
            for epochs in args.epochs:
                for seed in args.seeds:  # the recipes take turns, so both see the machine in the same state
                    for recipe in args.recipes:
                        name = label if recipe == "toolkit" else "plain"
                        key = (dataset, name, epochs, seed)
                        if any((r["dataset"], r["recipe"], r["epochs"], r["seed"]) == key for r in done):
                            continue
                        start = time.perf_counter()
                        if recipe == "plain":
                            outcome = run_plain(data, epochs, seed, args.image_size)
                        else:
                            outcome = run_toolkit(data, epochs, seed, work, [*start_flags, *extra], args.image_size)
                        row = {"dataset": dataset, "recipe": name, "epochs": epochs, "seed": seed, **outcome,
                               "seconds": round(time.perf_counter() - start, 1),
                               "pretrain_s": pretrain_s if recipe == "toolkit" else 0.0}
                        print(json.dumps(row), flush=True)
                        done.append(row)
                        pd.DataFrame(done).to_csv(results_path, index=False)
        selected = [r for r in done if r["dataset"] in args.datasets and r["epochs"] in args.epochs
                    and r["seed"] in args.seeds]
        print(summarise(selected))
    return 0


if __name__ == "__main__":
    sys.exit(main())
