"""The shipped model on fresh data: R² and interval coverage per target, TTA, and its int8 export (a benchmark).

    python benchmarks/bench_shipped.py                 # held-out set, sample_set, TTA (about 2 minutes on 2 CPU cores)
    python benchmarks/bench_shipped.py --int8          # also OpenVINO fp32 and int8 (a few minutes more)

Everything goes through the commands a user runs (``perspective synth``, ``evaluate``, ``export``), on
data made here: the held-out set is 1,000 synthetic photos of seed 2002 (the model trained on seed 0),
the int8 calibration set 400 photos of seed 3003, and ``sample_set/`` the 24 photos in the repository.
No download is needed.

Rows (``benchmarks/results/shipped.jsonl``), one per target and one for the mean (``target: "mean"``):

- case ``data`` (``held-out`` or ``sample_set``), ``images``, ``model`` (``checkpoint`` at the machine's default
  precision, ``checkpoint fp32``, ``openvino fp32``, ``openvino int8``), ``tta`` (mirror averaging on or off),
  ``target``;
- figures ``r2`` and ``mae``, and for the checkpoint on the held-out set without TTA ``coverage`` and
  ``width`` of its 0.9 conformal intervals (the calibration the shipped checkpoint carries), overall,
  for parts out of sight (true score 0: ``coverage_hidden``, ``width_hidden``) and in sight
  (``coverage_visible``, ``width_visible``), and ``calibrated_on`` (the calibration's images);
- ``precision``: the checkpoint's at this machine's default (bf16 where the CPU computes it); the int8
  comparison evaluates the checkpoint in fp32 too (``--precision 32``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import store  # noqa: E402
from perspective.cli import ArgumentParser  # noqa: E402

HELD_OUT_SEED, HELD_OUT_IMAGES = 2002, 1000
CALIBRATION_SEED, CALIBRATION_IMAGES = 3003, 400
LEVEL = 0.9


def get_args_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], prog="bench_shipped.py")
    p.add_argument("--int8", action="store_true", help="also export to OpenVINO fp32 and int8 and evaluate both")
    p.add_argument("--images", type=int, default=HELD_OUT_IMAGES, help=f"held-out photos (default {HELD_OUT_IMAGES})")
    p.add_argument("--workdir", default=None, help="keep the data and reports here (default: a temporary folder)")
    p.add_argument("--results", default=None, help="results file (default: benchmarks/results/shipped.jsonl)")
    return p


def perspective(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "perspective", *args, "-q"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def synth(folder: Path, count: int, seed: int) -> Path:
    if not (folder / "labels.csv").is_file():
        perspective("synth", "-o", str(folder), "-n", str(count), "--seed", str(seed))
    return folder


def evaluate(model: str | None, data: Path, output: Path, *flags: str) -> dict:
    perspective("evaluate", *(["-c", model] if model else []), "-d", str(data), "-o", str(output), *flags)
    return json.loads((output / "metrics.json").read_text())


def record(metrics: dict, case: dict, precision: str, results: str | None) -> None:
    """One row per target and one for the mean, from ``evaluate``'s metrics.json."""
    intervals = (metrics.get("intervals") or {}).get("targets", {})
    names = [*metrics["targets"], "mean"]
    for name in names:
        values = metrics["mean"] if name == "mean" else metrics["targets"][name]
        figures = {"r2": values["r2"], "mae": values["mae"]}
        if name in intervals:
            band = intervals[name]
            figures.update(coverage=band["coverage"], width=band["width"],
                           coverage_hidden=band["truth_zero"]["coverage"], width_hidden=band["truth_zero"]["width"],
                           coverage_visible=band["truth_above_zero"]["coverage"],
                           width_visible=band["truth_above_zero"]["width"], calibrated_on=band["calibration_images"])
        target = name.removeprefix("perspective_score_")
        store.record("shipped", {**case, "target": target}, figures, precision=precision, path=results)
    shown = ", ".join(f"{n.removeprefix('perspective_score_')} {metrics['targets'][n]['r2']:.3f}"
                      for n in metrics["targets"])
    print(f"{case['data']} {case['model']} tta={case['tta']}: mean R² {metrics['mean']['r2']:.4f} ({shown})", flush=True)


def default_precision() -> str:
    from perspective.hardware import default_precision as lightning_default

    return lightning_default("cpu")


def main() -> int:
    args = get_args_parser().parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        held_out = synth(work / "held-out", args.images, HELD_OUT_SEED)
        auto = default_precision()
        base = {"images": args.images, "model": "checkpoint"}

        metrics = evaluate(None, held_out, work / "reports" / "held-out", "--interval", str(LEVEL))
        record(metrics, {"data": "held-out", **base, "tta": False}, auto, args.results)
        metrics = evaluate(None, held_out, work / "reports" / "held-out-tta", "--tta")
        record(metrics, {"data": "held-out", **base, "tta": True}, auto, args.results)
        sample = ROOT / "sample_set"
        metrics = evaluate(None, sample, work / "reports" / "sample_set")
        record(metrics, {"data": "sample_set", **base, "images": 24, "tta": False}, auto, args.results)

        if args.int8:
            calibration = synth(work / "calibration", CALIBRATION_IMAGES, CALIBRATION_SEED)
            metrics = evaluate(None, held_out, work / "reports" / "held-out-fp32", "--precision", "32")
            record(metrics, {"data": "held-out", **base, "model": "checkpoint fp32", "tta": False}, "32", args.results)
            fp32, int8 = work / "model_fp32.xml", work / "model_int8.xml"
            perspective("export", "--format", "openvino", "-o", str(fp32))
            perspective("export", "--format", "openvino", "--int8", "--calibration", str(calibration), "-o", str(int8))
            for model, name, precision in ((fp32, "openvino fp32", "32"), (int8, "openvino int8", "int8")):
                metrics = evaluate(str(model), held_out, work / "reports" / model.stem)
                record(metrics, {"data": "held-out", **base, "model": name, "tta": False}, precision, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
