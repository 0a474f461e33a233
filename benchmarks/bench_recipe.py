"""Training recipes on small data: train's recipes against a plain PyTorch loop (a benchmark).

    python benchmarks/bench_recipe.py                       # digits and synthetic, -e 15 and 30, 3 seeds, both recipes
    python benchmarks/bench_recipe.py --datasets digits --extra="--flip-pairs none"
    python benchmarks/bench_recipe.py --datasets fashion --seeds 0 1 2 --epochs 15 --recipes toolkit \
        --pretrain="-e 18 --image-size 32" --unlabelled --extra="--precision 32 --fixmatch-with-val"
    python benchmarks/bench_recipe.py --datasets fashion --seeds 0 1 2 --epochs 15 --recipes toolkit \
        --pretrain "-e 18 --image-size 32" "-e 14 --image-size 32"   # the second stage continues the first

Each dataset is made from its source in the work folder (``--workdir``, else a temporary one), each
with a fixed split (the seeds vary initialisation, augmentation and order):

- ``digits``: scikit-learn's ``load_digits``, 1,797 *real* scanned handwritten digits (8x8, shipped
  inside the package, so offline), scaled up to 64 px. 500 train, 150 validation, the other 1,147
  test: a small training set, a test set large enough to measure it. Metric: test accuracy.
- ``synthetic``: 300 images of the built-in car generator (250 train, 50 validation) and 500 other
  images (another seed) as the test set. Metric: mean test R² over the 8 perspective scores.
- ``fashion``: Fashion-MNIST (real product photos, 28x28 grey) from Debian's package
  (``apt-get install dataset-fashion-mnist``, which puts it in ``/usr/share/datasets/fashion-mnist``):
  50 labelled images per class (500: 425 train, 75 validation, a fixed pick), the official 10,000-image
  test set, and the other 59,500 training images without their labels as the pool. Metric: test accuracy.
- ``cars``: 300 labelled car images (250 train, 50 validation, seed 101), 3,000 unlabelled ones
  (seed 104) as the pool, 1,000 held-out (seed 103). Metric: mean test R².

Both recipes train resnet18 from random weights (``--weights none``) at 64 px, batch 32, on the same
files. ``toolkit`` is ``train.py`` with its defaults and ``--extra``: the reported number is its own
test report (``test_report/metrics.json``) of the checkpoint it picked. ``plain`` is the loop the
toolkit is compared with, as PyTorch's tutorials write it: Adam 1e-3, no augmentation, fp32,
validation after every epoch and the best epoch's weights tested (regression: best by validation R²).
Each run is a separate process, timed whole (start-up and test included); the two recipes take turns
seed by seed, so a slower or faster spell of the machine falls on both.

``--pretrain FLAGS [FLAGS ...]`` runs ``perspective pretrain`` on the dataset's pool (digits and
synthetic have none) and starts each toolkit run from it (``--weights``); each further FLAGS is a stage
that continues from the one before; a stage pretrains in the machine's default precision unless its
flags name ``--precision``. Every stage's backbone is kept in the work folder with its wall time and
the machine that ran it, and reused by every seed and by later runs in the same
``--workdir``. ``--unlabelled`` gives each toolkit run the pool as ``--unlabelled`` (a teacher, then
FixMatch, or with ``--extra="--semi self-training"`` its pseudo-labels and a student; the wall time
counts them all).

Every finished run is appended at once as one row of ``benchmarks/results/recipe.jsonl``
(``--results FILE`` elsewhere; ``store.py`` adds the date, commit, versions and machine);
``--resume`` skips the runs this machine already has there. A row's ``case``:

- ``dataset``, ``recipe`` (``toolkit`` or ``plain``), ``epochs``, ``image_size`` (the fine-tune's);
- ``extra``: the toolkit's ``--extra`` flags, each option with its values, sorted by name, without
  ``--precision`` (the row's ``precision`` holds it); ``""`` for none and for the plain loop;
- ``pretrain``: null, or the pretraining stages' flags (sorted the same way), in order;
- ``pretrain_on``: null, or the hardware that pretrained where it is not this machine's kind;
- ``unlabelled``: whether the toolkit runs learnt from the pool too.

Its ``figures``: ``test_accuracy`` (digits, fashion) or ``test_r2`` (synthetic, cars: the mean over the
8 scores); ``val_accuracy``, ``val_r2`` (the plain loop's scores) or ``val_loss`` (the toolkit's scores:
its best checkpoint's), left out where a run validated nothing; ``epochs_run``; ``seconds``;
``pretrain_seconds`` (every stage's, paid once, on the toolkit rows of a pretrained start).
``precision``: the fine-tune's (the plain loop's ``32-true``; the toolkit's ``--precision`` in
``--extra``, else the machine's default).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import store  # noqa: E402
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
POOLS = ("fashion", "cars")  # the datasets with an unlabelled pool
RECIPES = ("toolkit", "plain")
PLAIN_PRECISION = "32-true"
NUMBER = re.compile(r"-\.?\d")  # a negative value, not a flag


def get_args_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="bench_recipe.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=["digits", "synthetic"],
                   help="(default: digits synthetic)")
    p.add_argument("--epochs", nargs="+", type=positive_int, default=[15, 30], help="(default 15 30)")
    p.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2], help="(default 42 1 2)")
    p.add_argument("--recipes", nargs="+", choices=RECIPES, default=list(RECIPES), help="(default: both)")
    p.add_argument("--extra", default="", help="more train.py flags for the toolkit runs, as one string")
    p.add_argument("--pretrain", nargs="+", default=None, metavar="FLAGS",
                   help="pretrain on the dataset's unlabelled pool with these perspective pretrain flags first (each "
                        "further FLAGS continues the stage before), and start the toolkit runs from it")
    p.add_argument("--unlabelled", action="store_true",
                   help="give the toolkit runs the dataset's unlabelled pool as --unlabelled (FixMatch, or --semi in --extra)")
    p.add_argument("--image-size", type=positive_int, default=IMAGE_SIZE, help=f"(default {IMAGE_SIZE})")
    p.add_argument("--workdir", default=None, help="data, pretrained backbones and runs go here (default: a temporary folder)")
    p.add_argument("--results", default=None,
                   help="JSON Lines file the rows are appended to (default benchmarks/results/recipe.jsonl)")
    p.add_argument("--resume", action="store_true", help="skip the runs this machine already has in the results file")
    p.add_argument("--plain-run", nargs=4, metavar=("TRAIN", "VAL", "TEST", "EPOCHS_SEED"), help=argparse.SUPPRESS)
    return p


# --- cases ---------------------------------------------------------------------------------------


def flag_groups(tokens: list[str]) -> list[list[str]]:
    """Command-line tokens as options, each with its values: ``-e 18 --tta`` -> ``[[-e, 18], [--tta]]``."""
    groups: list[list[str]] = []
    for token in tokens:
        if not groups or (token.startswith("-") and not NUMBER.match(token)):
            groups.append([token])
        else:
            groups[-1].append(token)
    return groups


def option_name(group: list[str]) -> str:
    return group[0].split("=", 1)[0]


def canonical_flags(tokens: list[str]) -> str:
    """Flags in one spelling, sorted by option name: the same setting typed in another order is the same case."""
    groups = sorted(flag_groups(tokens), key=lambda g: option_name(g).lstrip("-"))
    return shlex.join(token for group in groups for token in group)


def flag_value(tokens: list[str], *names: str) -> str | None:
    """The last value given to any of ``names`` (``--name value`` or ``--name=value``), or None."""
    found = None
    for group in flag_groups(tokens):
        if option_name(group) in names:
            found = group[0].split("=", 1)[1] if "=" in group[0] else (group[1] if len(group) > 1 else None)
    return found


def without(tokens: list[str], *names: str) -> list[str]:
    """``tokens`` less the options ``names`` and their values."""
    return [token for group in flag_groups(tokens) if option_name(group) not in names for token in group]


def toolkit_precision(extra: list[str]) -> str:
    """The precision a toolkit run trains in, as Lightning names it: ``--precision`` in its flags, else this
    machine's default for its accelerator."""
    from perspective.config import lightning_precision
    from perspective.hardware import default_precision

    accelerator = "cpu" if flag_value(extra, "-g", "--gpus") == "0" else flag_value(extra, "--accelerator") or "auto"
    return lightning_precision(flag_value(extra, "--precision")) or default_precision(accelerator)


def case_of(dataset: str, recipe: str, epochs: int, image_size: int, extra: list[str] | None = None,
            pretrain: list[str] | None = None, pretrain_on: str | None = None, unlabelled: bool = False) -> dict:
    """The settings that tell one run of this benchmark from another (the row's ``case``)."""
    return {"dataset": dataset, "recipe": recipe,
            "extra": canonical_flags(without(extra or [], "--precision")),
            "pretrain": [canonical_flags(shlex.split(stage)) for stage in pretrain] if pretrain else None,
            "pretrain_on": pretrain_on, "unlabelled": unlabelled, "epochs": epochs, "image_size": image_size}


def describe(case: dict) -> str:
    """A case in one line, for the printed table: ``toolkit --flip-pairs none``, ``plain``, ..."""
    if case["recipe"] == "plain":
        return "plain"
    parts = ["toolkit"]
    if case["pretrain"]:
        parts.append("pretrained [" + " + ".join(case["pretrain"]) + "]"
                     + (f" on {case['pretrain_on']}" if case["pretrain_on"] else ""))
    if case["unlabelled"]:
        parts.append("--unlabelled pool")
    if case["extra"]:
        parts.append(case["extra"])
    return ", ".join(parts)


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


def stage_files(data: Path, stages: list[str], work: Path, image_size: int) -> list[Path]:
    """Where each pretraining stage's backbone is kept: its name follows the dataset, the size and every stage so far."""
    files = []
    for n in range(1, len(stages) + 1):
        spelled = [canonical_flags(shlex.split(stage)) for stage in stages[:n]]
        tag = hashlib.sha1(" | ".join([data.name, str(image_size), *spelled]).encode()).hexdigest()[:10]
        files.append(work / "pretrained" / f"{data.name}-{tag}.ckpt")
    return files


def pretrain(data: Path, stages: list[str], work: Path, image_size: int) -> Path:
    """``perspective pretrain`` on ``data/pool``, stage by stage, each later stage from the one before (``--weights``);
    a stage already in ``work`` is reused. Beside each file its record: wall seconds and the machine that ran it."""
    previous: list[str] = []
    for flags, output in zip(stages, stage_files(data, stages, work, image_size)):
        if not output.is_file():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "perspective", "pretrain", "-d", str(data / "pool"), "-o", str(output),
                            "--image-size", str(image_size), "-c", str(work / "ckpt"), "--logs-location",
                            str(work / "logs"), "-q", *previous, *shlex.split(flags)],
                           check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
            record = {"seconds": store.timed(start), "machine": store.machine()}
            output.with_suffix(".json").write_text(json.dumps(record) + "\n")
        previous = ["--weights", str(output)]
    return output


def pretraining_record(files: list[Path]) -> tuple[float, str | None]:
    """(every stage's wall seconds, the hardware that pretrained where it is not this machine's kind) of kept
    stages; a stage not kept yet will run here."""
    here, seconds, elsewhere = store.machine(), 0.0, []
    for file in files:
        record = json.loads(file.with_suffix(".json").read_text()) if file.with_suffix(".json").is_file() else {}
        seconds += record.get("seconds", 0.0)
        ran_on = record.get("machine", here)
        if not store.same_hardware(ran_on, here) and store.hardware(ran_on) not in elsewhere:
            elsewhere.append(store.hardware(ran_on))
    return round(seconds, 1), " and ".join(elsewhere) or None


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
    metric = "accuracy" if classification else "r2"
    return {f"test_{metric}": score(test), f"val_{metric}": best_val, "epochs_run": epochs}


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
    classification = metrics["task"] == "classification"
    figures = {"test_accuracy" if classification else "test_r2": headline_score(metrics)}
    monitor = "val_acc" if classification else "val_loss"
    values = [float(p.stem.split(f"{monitor}=")[1]) for p in run_dir.glob(f"epoch=*-{monitor}=*.ckpt")]
    if values:  # none where the run validated nothing (--fixmatch-with-val)
        figures["val_accuracy" if classification else "val_loss"] = (max if classification else min)(values)
    last = torch.load(run_dir / "last.ckpt", map_location="cpu", weights_only=True)
    return {**figures, "epochs_run": int(last["epoch"]) + 1}


def row_score(row: dict) -> float:
    figures = row["figures"]
    return figures["test_accuracy"] if "test_accuracy" in figures else figures["test_r2"]


def summarise(rows: list[dict]) -> str:
    """Mean, standard deviation (over seeds) and range of the test metric, and the mean wall time, per case."""
    import pandas as pd

    frame = pd.DataFrame([{"dataset": r["case"]["dataset"], "recipe": describe(r["case"]), "-e": r["case"]["epochs"],
                           "px": r["case"]["image_size"], "precision": r["precision"], "test": row_score(r),
                           "epochs run": r["figures"]["epochs_run"], "wall s": r["figures"]["seconds"],
                           "pretrain s": r["figures"].get("pretrain_seconds", 0.0)} for r in rows])
    lines = []
    for keys, group in frame.groupby(["dataset", "recipe", "-e", "px", "precision"], sort=False):
        test = group["test"]
        lines.append({**dict(zip(["dataset", "recipe", "-e", "px", "precision"], keys)), "seeds": len(group),
                      "test mean": test.mean(), "test std": test.std(ddof=1) if len(group) > 1 else 0.0,
                      "test min": test.min(), "test max": test.max(), "epochs run": group["epochs run"].mean(),
                      "wall s": group["wall s"].mean(), "pretrain s": group["pretrain s"].max()})
    return pd.DataFrame(lines).to_string(index=False, float_format=lambda v: f"{v:.3f}")


def resumable(results: Path) -> dict[tuple, dict]:
    """The rows this machine already has in ``results``, by (case, seed, precision)."""
    return {run_key(r["case"], r["seed"], r["precision"]): r for r in store.measured_here("recipe", results)}


def run_key(case: dict, seed: int, precision: str | None) -> tuple:
    return json.dumps(case, sort_keys=True), seed, precision


def toolkit_flags(data: Path, args: argparse.Namespace, work: Path) -> list[str]:
    """The flags that start a toolkit run: the pool as ``--unlabelled``, the pretrained backbone (pretrained first
    where the work folder does not keep it yet)."""
    flags = ["--unlabelled", str(data / "pool")] if args.unlabelled else []
    if args.pretrain:
        flags += ["--weights", str(pretrain(data, args.pretrain, work, args.image_size))]
    return flags


def planned(dataset: str, args: argparse.Namespace, pretrain_on: str | None) -> list[tuple[int, int, str, dict]]:
    """(epochs, seed, recipe, case) of every run asked for on ``dataset``, in the order they run: the recipes take
    turns seed by seed, so both see the machine in the same state."""
    extra = shlex.split(args.extra)
    return [(epochs, seed, recipe, case_of(dataset, recipe, epochs, args.image_size) if recipe == "plain" else case_of(
                dataset, recipe, epochs, args.image_size, extra, args.pretrain, pretrain_on, args.unlabelled))
            for epochs in args.epochs for seed in args.seeds for recipe in args.recipes]


def run_dataset(dataset: str, args: argparse.Namespace, work: Path, results: Path, done: dict) -> list[dict]:
    """Every planned run of one dataset not in ``done``, each recorded as it ends; the rows."""
    makers = {"digits": make_digits, "synthetic": make_synthetic, "fashion": make_fashion, "cars": make_cars}
    data = makers[dataset](work / "data" / dataset)
    extra = shlex.split(args.extra)
    precisions = {"toolkit": toolkit_precision(extra), "plain": PLAIN_PRECISION}
    stages = stage_files(data, args.pretrain, work, args.image_size) if args.pretrain else []
    rows = []
    for epochs, seed, recipe, case in planned(dataset, args, pretraining_record(stages)[1]):
        key = run_key(case, seed, precisions[recipe])
        if key in done:
            rows.append(done[key])
            continue
        if recipe == "plain":
            start = time.perf_counter()
            figures = run_plain(data, epochs, seed, args.image_size)
        else:
            flags = toolkit_flags(data, args, work)  # a pretraining is timed apart, once
            start = time.perf_counter()
            figures = run_toolkit(data, epochs, seed, work, [*flags, *extra], args.image_size)
        figures["seconds"] = store.timed(start)
        if recipe == "toolkit" and args.pretrain:
            figures["pretrain_seconds"] = pretraining_record(stages)[0]
        rows.append(store.record("recipe", case, figures, seed=seed, precision=precisions[recipe], path=results))
        print(json.dumps({"case": case, "seed": seed, "figures": figures}), flush=True)
    return rows


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, in one line before any run, what cannot run: a pool where there is none, Fashion-MNIST not installed."""
    if args.pretrain or args.unlabelled:
        for dataset in set(args.datasets) - set(POOLS):
            parser.error(f"--pretrain and --unlabelled need an unlabelled pool; {dataset} has none ({' and '.join(POOLS)} have)")
    ready = args.workdir and (Path(args.workdir) / "data" / "fashion" / "test" / "labels.csv").is_file()
    if "fashion" in args.datasets and not ready and not FASHION_SOURCE.is_dir():
        parser.error(f"no Fashion-MNIST in {FASHION_SOURCE}: apt-get install dataset-fashion-mnist")


def main() -> int:
    parser = get_args_parser()
    args = parser.parse_args()
    check(parser, args)
    if args.plain_run:
        train, val, test, epochs_seed = args.plain_run
        epochs, seed, image_size = (int(v) for v in epochs_seed.split(","))
        print(json.dumps(plain_loop(Path(train), Path(val), Path(test), epochs, seed, image_size)))
        return 0
    results = Path(args.results) if args.results else store.results_file("recipe")
    done = resumable(results) if args.resume else {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for dataset in args.datasets:
            rows += run_dataset(dataset, args, work, results, done)
    if rows:
        print(summarise(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
