"""The novelty flag, measured: how well it tells photos unlike the training ones apart, how often it flags
ordinary ones, and what it costs (a benchmark).

    python benchmarks/bench_novelty.py                     # all three parts (about 10 minutes on 2 CPU cores)
    python benchmarks/bench_novelty.py --parts cars        # or any of: cars digits cost

**cars**: the shipped model, whose summary ``evaluate --calibrate`` made from 4,000 synthetic photos of
seed 3003 (half its bank, half its calibration; remade here the same way). In distribution: fresh
synthetic photos of seeds 4001, 4002 and 4003 (``--images`` each). Far shifts: Fashion-MNIST photos
(Debian's ``dataset-fashion-mnist``), scikit-learn's digits, uniform noise. Near shifts, made from the
first photos of seed 4001: darker light (brightness x0.35), colours swapped (RGB -> BGR), blur (Gaussian,
radius 3), greyscale, and the renderer's own knobs: a camera 60-85 degrees high (the data's 0-45) and a
plain grey wall behind the car. Per detector and shift: AUROC against each seed's photos; per seed,
the share flagged at ``novelty p <= 0.01``, with each detector calibrated on the same calibration half.

**digits**: a classifier trained here on scikit-learn's digits (``perspective train``, 500 photos, its
summary made by the training run itself), against Fashion-MNIST; in distribution, its test digits.

Detectors: the toolkit's (k-nearest-neighbour distance on unit-length penultimate features, k = 1, from
the checkpoint's summary) and, from pytorch-ood, KNN at k = 1 (the same score through scikit-learn's
search: its AUROC must equal ours) and k = 10, Mahalanobis distance (per class for the classifier; and
with scikit-learn's Ledoit-Wolf shrunk covariance, which holds with fewer photos than features), and for
the classifier maximum softmax probability and energy.

**cost**: ``perspective infer`` on the same 640x480 JPEGs with the shipped checkpoint and with a copy
without the summary, marginal images/s between two folder sizes, best of ``--repeats``; and the bytes
the summary adds to the checkpoint.

Rows (``benchmarks/results/novelty.jsonl``): case ``model`` (``shipped resnet18`` or ``digits classifier``),
``detector``, ``shift`` and ``kind`` (``far``, ``near``, ``in-distribution``), seed = the in-distribution seed;
figures ``auroc`` (or ``flagged`` and ``level`` for in-distribution rows). Cost rows: case ``part: cost``,
``summary`` (with / without), figures ``images_per_second``.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import store  # noqa: E402
from perspective.cli import ArgumentParser  # noqa: E402

FIT_SEED, FIT_IMAGES = 3003, 4000  # the shipped summary's photos: evaluate --calibrate on them
ID_SEEDS = (4001, 4002, 4003)
LEVEL = 0.01
FASHION_SOURCE = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
PARTS = ("cars", "digits", "cost")
COST_SIZES = (200, 2000)


def get_args_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], prog="bench_novelty.py")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="(default: all)")
    p.add_argument("--images", type=int, default=2000, help="fresh in-distribution photos a seed (default 2000)")
    p.add_argument("--shifted", type=int, default=1000, help="photos of each shift (default 1000)")
    p.add_argument("--repeats", type=int, default=3, help="cost: runs of each size, the best kept (default 3)")
    p.add_argument("--workdir", default=None, help="keep the data here (default: a temporary folder)")
    p.add_argument("--results", default=None, help="results file (default: benchmarks/results/novelty.jsonl)")
    return p


def perspective(*args: str, quiet: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "perspective", *args, *(["-q"] if quiet else [])], check=True,
                          cwd=ROOT, capture_output=True, text=True)


def synth(folder: Path, count: int, seed: int) -> list[Path]:
    """``count`` synthetic photos of ``seed`` (made once), in labels.csv's order."""
    import pandas as pd

    if not (folder / "labels.csv").is_file():
        perspective("synth", "-o", str(folder), "-n", str(count), "--seed", str(seed))
    return [folder / "images" / name for name in pd.read_csv(folder / "labels.csv")["filename"]]


def save_all(folder: Path, images, suffix: str = ".jpg") -> list[Path]:
    """PIL images as numbered files (JPEG at quality 90, or PNG for small grey ones)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i:05d}{suffix}"
        if not path.is_file():
            image.save(path, quality=90) if suffix == ".jpg" else image.save(path)
        paths.append(path)
    return paths


def fashion_images(count: int):
    import numpy as np
    from PIL import Image

    if not FASHION_SOURCE.is_dir():
        raise SystemExit(f"bench_novelty.py: no Fashion-MNIST in {FASHION_SOURCE}: apt-get install dataset-fashion-mnist")
    with gzip.open(FASHION_SOURCE / "t10k-images-idx3-ubyte.gz") as file:
        pixels = np.frombuffer(file.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    return [Image.fromarray(a, mode="L") for a in pixels[:count]]


def digit_images(count: int):
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    return [Image.fromarray((d * (255 / 16)).astype(np.uint8), mode="L") for d in load_digits().images[:count]]


def noise_images(count: int, size=(320, 240)):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return (Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(count))


def near_transforms() -> dict:
    """The near shifts made from fresh photos by plain image transforms: name -> function of a PIL image."""
    from PIL import Image, ImageEnhance, ImageFilter

    return {
        "darker light": lambda im: ImageEnhance.Brightness(im).enhance(0.35),
        "colours swapped": lambda im: Image.merge("RGB", im.split()[::-1]),
        "blur": lambda im: im.filter(ImageFilter.GaussianBlur(3)),
        "greyscale": lambda im: im.convert("L").convert("RGB"),
    }


def rendered_shift(folder: Path, count: int, **knobs) -> list[Path]:
    """Photos of seed 4001's cars rendered with another camera height or backdrop (``synth.make_sample``)."""
    from perspective.synth import make_sample

    return save_all(folder, (make_sample(ID_SEEDS[0], i, **knobs).image for i in range(count)))


# --- detectors ----------------------------------------------------------------------------------


def auroc(inside, outside) -> float:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.zeros(len(inside)), np.ones(len(outside))], np.r_[inside, outside]))


def shrunk_mahalanobis(bank, labels):
    """Mahalanobis distance to the nearest class mean, with one covariance shared by the classes and shrunk
    (scikit-learn's Ledoit-Wolf estimate): usable when there are fewer photos than features."""
    import numpy as np
    from sklearn.covariance import LedoitWolf

    features, labels = bank.double().numpy(), labels.numpy()
    classes = np.unique(labels)
    means = np.stack([features[labels == c].mean(axis=0) for c in classes])
    centred = features - means[np.searchsorted(classes, labels)]
    precision = LedoitWolf(assume_centered=True).fit(centred).precision_

    def score(f):
        rows = f.double().numpy()
        return np.stack([np.einsum("nd,nd->n", (rows - m) @ precision, rows - m) for m in means], axis=1).min(axis=1)
    return score


def detectors(bank, bank_labels, summary, head=None):
    """name -> score function of features (larger: more unusual). ``summary``: the checkpoint's own."""
    import torch
    from pytorch_ood.detector import KNN, EnergyBased, Mahalanobis, MaxSoftmax

    from perspective.models.novelty import novelty_scores

    found = {"toolkit: kNN k=1 (default)": lambda f: novelty_scores(f, summary["bank"]).numpy()}
    for k in (1, 10):
        knn = KNN(None, k=k)
        knn.fit_features(bank, torch.zeros(len(bank), dtype=torch.long))
        found[f"pytorch-ood KNN k={k}"] = lambda f, knn=knn: knn.predict_features(f).numpy()
    maha = Mahalanobis(None)
    maha.fit_features(bank, bank_labels)
    found["pytorch-ood Mahalanobis"] = lambda f: maha.predict_features(f).numpy()
    found["Mahalanobis, Ledoit-Wolf (scikit-learn)"] = shrunk_mahalanobis(bank, bank_labels)
    if head is not None:  # a classifier: scores from its logits
        msp, energy = MaxSoftmax(None), EnergyBased(None)
        found["pytorch-ood max softmax"] = lambda f: msp.predict_logits(head(f)).numpy()
        found["pytorch-ood energy"] = lambda f: energy.predict_logits(head(f)).numpy()
    return found


def measure(model_name: str, found: dict, calibration, inside: dict, shifts: dict, results: str | None,
            precision: str) -> None:
    """AUROC of every shift against each in-distribution seed, and each seed's share flagged at LEVEL."""
    import numpy as np

    from perspective.models.novelty import p_values

    for name, score in found.items():
        cal = np.sort(score(calibration))
        inside_scores = {seed: score(f) for seed, f in inside.items()}
        for seed, scores in inside_scores.items():
            flagged = float((p_values(scores, cal) <= LEVEL).mean())
            store.record("novelty", {"model": model_name, "detector": name, "shift": "in-distribution",
                                     "kind": "in-distribution"},
                         {"flagged": round(flagged, 4), "level": LEVEL, "images": len(scores),
                          "calibration_images": len(cal)}, seed=seed, precision=precision, path=results)
        line = []
        for (kind, shift), features in shifts.items():
            outside = score(features)
            values = []
            for seed, scores in inside_scores.items():
                values.append(auroc(scores, outside))
                store.record("novelty", {"model": model_name, "detector": name, "shift": shift, "kind": kind},
                             {"auroc": round(values[-1], 4), "images": len(outside), "id_images": len(scores)},
                             seed=seed, precision=precision, path=results)
            line.append(f"{shift} {np.mean(values):.3f}")
        flagged = [float((p_values(s, cal) <= LEVEL).mean()) for s in inside_scores.values()]
        print(f"{model_name} | {name}: flagged {', '.join(f'{v:.3f}' for v in flagged)} | " + ", ".join(line),
              flush=True)


# --- the parts ----------------------------------------------------------------------------------


def cars(args, work: Path, precision: str) -> None:
    import torch

    from perspective.models import load_checkpoint, shipped_checkpoint
    from perspective.models.novelty import make_bank
    from perspective.prediction import Predictor
    from perspective.prediction.novelty import halves

    model = load_checkpoint(shipped_checkpoint())
    summary = model.novelty
    if summary is None:
        raise SystemExit("bench_novelty.py: the shipped model carries no novelty summary")
    predictor = Predictor(model)

    def features(paths):
        return predictor.features_of([str(p) for p in paths], batch_size=64, workers=2)

    fit = synth(work / "fit", FIT_IMAGES, FIT_SEED)
    bank_paths, calibration_paths = halves([str(p) for p in fit], 0)  # as evaluate --calibrate splits them
    bank, calibration = features(bank_paths), features(calibration_paths)
    drift = float((make_bank(bank).float() - summary["bank"].float()).abs().max())
    print(f"the shipped bank remade from its photos: largest difference {drift:.4f} (fp16 features)", flush=True)

    inside = {seed: features(synth(work / f"id{seed}", args.images, seed)) for seed in ID_SEEDS}
    base = synth(work / f"id{ID_SEEDS[0]}", args.images, ID_SEEDS[0])[:args.shifted]
    from PIL import Image

    shifts = {
        ("far", "Fashion-MNIST"): features(save_all(work / "fashion", fashion_images(args.shifted), ".png")),
        ("far", "digits"): features(save_all(work / "digits", digit_images(args.shifted), ".png")),
        ("far", "noise"): features(save_all(work / "noise", noise_images(args.shifted))),
    }
    for shift, transform in near_transforms().items():
        folder = work / shift.replace(" ", "_")
        shifts[("near", shift)] = features(save_all(folder, (transform(Image.open(p).convert("RGB")) for p in base)))
    shifts[("near", "camera 60-85 degrees high")] = features(
        rendered_shift(work / "high", args.shifted, elevation_range=(60.0, 85.0)))
    shifts[("near", "plain grey wall")] = features(rendered_shift(work / "wall", args.shifted, backdrop=(128, 128, 128)))

    found = detectors(bank, torch.zeros(len(bank), dtype=torch.long), summary)
    measure("shipped resnet18", found, calibration, inside, shifts, args.results, precision)


def digits(args, work: Path, precision: str) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import pandas as pd
    import torch
    from bench_recipe import make_digits

    from perspective.models import load_checkpoint
    from perspective.prediction import Predictor

    data = make_digits(work / "digits_data")
    done = perspective("train", "-d", str(data / "train"), "--val-data", str(data / "val"), "--test-data",
                       str(data / "test"), "--weights", "none", "--image-size", "64", "-e", "15", "--flip-pairs", "none",
                       "-c", str(work / "digits_ckpt"), "--logs-location", str(work / "digits_logs"), "--seed", "0",
                       quiet=False)
    best = done.stdout.strip().splitlines()[-1].removeprefix("best checkpoint: ")
    model = load_checkpoint(best)
    predictor = Predictor(model)

    def features(folder: Path):
        frame = pd.read_csv(folder / "labels.csv")
        return predictor.features_of([str(folder / "images" / f) for f in frame["filename"]], 64, 2), frame

    bank, train = features(data / "train")
    calibration, _ = features(data / "val")
    inside, _ = features(data / "test")
    labels = torch.tensor([model.names.index(str(c)) for c in train["label"]])
    fashion = predictor.features_of([str(p) for p in save_all(work / "fashion64", (
        im.resize((64, 64)) for im in fashion_images(args.shifted)), ".png")], 64, 2)

    def head(f):
        with torch.inference_mode():
            return model.head(f.float())

    found = detectors(bank, labels, model.novelty, head)
    measure("digits classifier", found, calibration, {0: inside}, {("far", "Fashion-MNIST"): fashion}, args.results,
            precision)


def cost(args, work: Path, precision: str) -> None:
    from PIL import Image

    from perspective.models import read_checkpoint, shipped_checkpoint
    from perspective.models.checkpoint import save_atomically
    from perspective.models.novelty import CHECKPOINT_KEY, summary_bytes

    shipped = shipped_checkpoint()
    content = read_checkpoint(shipped)
    added = summary_bytes(content[CHECKPOINT_KEY])
    content.pop(CHECKPOINT_KEY)
    without = work / "without_summary.ckpt"
    save_atomically(content, without)
    source = synth(work / "cost_source", max(COST_SIZES), 5005)
    folders = {}
    for size in COST_SIZES:
        folder = work / f"cost{size}"
        if not folder.is_dir():
            folder.mkdir()
            for i, path in enumerate(source[:size]):  # 640x480, as bench_infer's photos
                Image.open(path).resize((640, 480)).save(folder / f"{i:05d}.jpg", quality=90)
        folders[size] = folder
    best = {}
    for _ in range(args.repeats):
        for name, model in (("with", shipped), ("without", without)):
            for size, folder in folders.items():
                start = time.perf_counter()
                perspective("infer", "-c", str(model), "-d", str(folder), "-o", str(work / "cost.csv"), "--show", "0")
                seconds = time.perf_counter() - start
                best[(name, size)] = min(best.get((name, size), seconds), seconds)
    rates = {}
    for name in ("with", "without"):
        small, large = COST_SIZES
        rates[name] = (large - small) / (best[(name, large)] - best[(name, small)])
        store.record("novelty", {"part": "cost", "summary": name, "model": "shipped resnet18", "images": list(COST_SIZES)},
                     {"images_per_second": round(rates[name], 1),
                      "summary_mb": round(added / 2**20, 2) if name == "with" else 0.0},
                     precision=precision, path=args.results)
    print(f"perspective infer: {rates['with']:.1f} images/s with the summary, {rates['without']:.1f} without "
          f"({rates['with'] / rates['without']:.3f}x); the summary adds {added / 2**20:.2f} MB", flush=True)


def main() -> int:
    args = get_args_parser().parse_args()
    from perspective.hardware import default_precision

    precision = default_precision("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for part in PARTS:
            if part in args.parts:
                start = time.perf_counter()
                {"cars": cars, "digits": digits, "cost": cost}[part](args, work, precision)
                print(f"{part}: {time.perf_counter() - start:.0f} s", flush=True)
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
