"""Conformal intervals on small data: a model's own validation split against the audit's out-of-fold calibration.

    python benchmarks/bench_intervals.py                  # 60 and 300 validation images, one seed
    python benchmarks/bench_intervals.py --val 60 --seeds 0 1 2

For each validation size: synthetic car photos (seed 301), ``--val`` of them the validation split and
``TRAIN`` more for training, a model trained from the shipped model's backbone with a new head (160 px,
``-e 5``; ``starts.py``), whose intervals rest on its validation split (``split``); then ``perspective audit --calibrate`` on
the same labelled photos stores a calibration from every photo's out-of-fold error (``out of fold``).
Each is measured on 1,000 fresh photos (seed 305): the coverage of the 0.9 intervals per target (on 300
photos a coverage of 0.9 is measured to about ±0.017, too coarse for a 0.85-0.95 band).
It needs nothing but this repository: the photos come from the built-in generator, the start from
``trained_models/``; they are made in ``--workdir`` (else a temporary folder).

Prints, per size and calibration, the calibration's size, the lowest and highest per-target
coverage and the mean width; and whether ``--interval`` warned. Each is appended at once as one row
of ``benchmarks/results/intervals.jsonl`` (``--results FILE`` elsewhere): its ``case``
``validation_images``, ``train_images``, ``calibration`` (``split`` or ``out of fold``),
``fresh_images`` (the photos the coverage is measured on); its ``seed`` the training seed; its
``figures`` ``calibration_images`` (the fewest a group's intervals rest on), ``coverage_min`` and
``coverage_max`` (the lowest and highest target's), ``mean_width`` (over the targets) and ``warned``
(1 where ``--interval`` warned that the calibration is small, else 0). ``precision``: the training
runs' (the machine's default).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import store  # noqa: E402
from benchmarks.starts import SHIPPED_SIZE, shipped_backbone  # noqa: E402
from perspective.cli import ArgumentParser  # noqa: E402

TRAIN = 300
FRESH, FRESH_SEED = 1000, 305


def get_args_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="bench_intervals.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--val", nargs="+", type=int, default=[60, 300], help="validation sizes (default 60 300)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds (default 0)")
    p.add_argument("--workdir", default=None, help="keep data and runs here (default: a temporary folder)")
    p.add_argument("--results", default=None,
                   help="JSON Lines file the rows are appended to (default benchmarks/results/intervals.jsonl)")
    return p


def case_of(val: int, calibration: str) -> dict:
    """The settings that tell one measurement of this benchmark from another (the row's ``case``)."""
    return {"validation_images": val, "train_images": TRAIN, "calibration": calibration, "fresh_images": FRESH}


def figures(targets: dict, warned: bool) -> dict:
    """One calibration's figures from ``evaluate``'s per-target intervals."""
    coverages = [t["coverage"] for t in targets.values()]
    return {"calibration_images": min(t["calibration_images"] for t in targets.values()),
            "coverage_min": min(coverages), "coverage_max": max(coverages),
            "mean_width": sum(t["width"] for t in targets.values()) / len(targets), "warned": int(warned)}


def coverage(model: str, fresh: Path, out: Path) -> tuple[dict, bool]:
    """Per-target coverage and width of ``model``'s 0.9 intervals on ``fresh``; whether it warned."""
    result = subprocess.run([sys.executable, "-m", "perspective", "evaluate", "-c", model, "-d", str(fresh),
                             "--interval", "0.9", "-o", str(out), "--samples", "0", "--explain-samples", "0"],
                            check=True, capture_output=True, text=True, cwd=ROOT)
    targets = json.loads((out / "metrics.json").read_text())["intervals"]["targets"]
    return targets, "--interval: the calibration rests on" in result.stderr


def main() -> int:
    args = get_args_parser().parse_args()
    from perspective.hardware import default_precision
    from perspective.synth import generate

    precision = default_precision("auto")  # train's and audit's, given no --precision
    results = Path(args.results) if args.results else store.results_file("intervals")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        pool = work / "pool"
        if not (pool / "labels.csv").is_file():
            generate(pool, TRAIN + max(args.val), 301, progress=False, workers=None)
        fresh = work / f"fresh-{FRESH_SEED}"
        if not (fresh / "labels.csv").is_file():
            generate(fresh, FRESH, FRESH_SEED, progress=False, workers=None)
        labels = pd.read_csv(pool / "labels.csv")
        start = ["--weights", str(shipped_backbone(work)), "--image-size", SHIPPED_SIZE, "-e", "5"]
        rows = []
        for val in args.val:
            for seed in args.seeds:
                data = work / f"data-{val}"
                data.mkdir(exist_ok=True)
                labels.iloc[:TRAIN + val].to_csv(data / "labels.csv", index=False)
                if not (data / "images").exists():
                    (data / "images").symlink_to(pool / "images")
                fraction = val / (TRAIN + val)
                result = subprocess.run(
                    [sys.executable, "-m", "perspective", "train", "-d", str(data), *start, "--val-fraction",
                     f"{fraction:.6f}", "--test-fraction", "0", "--seed", str(seed), "-c", str(work / "ckpt"),
                     "--logger", "none", "-q"], check=True, capture_output=True, text=True, cwd=ROOT)
                model = result.stdout.strip().splitlines()[-1].removeprefix("best checkpoint: ")
                split, warned = coverage(model, fresh, work / f"eval-{val}-{seed}-split")
                calibrated = work / f"model-{val}-{seed}.ckpt"
                shutil.copy(model, calibrated)
                subprocess.run([sys.executable, "-m", "perspective", "audit", "-d", str(data), *start, "--seed",
                                str(seed), "--logger", "none", "-q", "-c", str(work / "audit-ckpt"), "-o",
                                str(work / f"audit-{val}-{seed}"), "--calibrate", str(calibrated)],
                               check=True, capture_output=True, cwd=ROOT)
                folded, warned_folded = coverage(str(calibrated), fresh, work / f"eval-{val}-{seed}-fold")
                for name, targets, warn in (("split", split, warned), ("out of fold", folded, warned_folded)):
                    measured = figures(targets, warn)
                    store.record("intervals", case_of(val, name), measured, seed=seed, precision=precision, path=results)
                    rows.append({"validation": val, "seed": seed, "calibration": name, **measured})
                    print(rows[-1], flush=True)
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
