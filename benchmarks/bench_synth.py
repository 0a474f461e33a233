"""Rendering speed of ``perspective synth``: images/s with one rendering process, two, and every core.

    python benchmarks/bench_synth.py                       # 400 images of seed 5 at 320x240, -w 1, 2 and the CPU count
    python benchmarks/bench_synth.py --workers 1,2,16 --images 2000

Each run renders ``--images`` photos with labels into a fresh temporary folder through the library
call ``perspective synth`` makes (``perspective.synth.generate``) and times it as the command does:
the rendering and the files, not the interpreter's start-up. It needs no data. One row per worker
count is appended to ``benchmarks/results/synth.jsonl`` (``--results`` redirects it), with the data
seed as the row's ``seed``. Case keys: ``size`` (WIDTHxHEIGHT), ``workers``. Figures:
``images_per_s``, ``images``, ``seconds``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import store  # noqa: E402
from perspective.cli import ArgumentParser, non_negative_int, positive_int  # noqa: E402
from perspective.config import SynthConfig, parse_size  # noqa: E402

BENCHMARK = "synth"


def worker_counts(text: str) -> list[int]:
    """``"1,2,16"`` -> ``[1, 2, 16]``; each count 1 or more."""
    try:
        counts = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated counts of 1 or more, got {text!r}")
    return counts


def size_argument(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def default_workers() -> str:
    """One process, two, and the CPU count when it is more."""
    return ",".join(str(n) for n in dict.fromkeys((1, 2, max(2, os.cpu_count() or 1))))


def get_args_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="bench_synth.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=positive_int, default=400, help="images per run (default 400)")
    p.add_argument("--seed", type=non_negative_int, default=5, help="data set seed (default 5)")
    p.add_argument("--size", type=size_argument, default=SynthConfig.size, metavar="WIDTHxHEIGHT",
                   help=f"image size (default {SynthConfig.size[0]}x{SynthConfig.size[1]})")
    p.add_argument("-w", "--workers", type=worker_counts, default=default_workers(),
                   help=f"comma-separated rendering process counts, a run each (default {default_workers()})")
    p.add_argument("--results", default=None, metavar="FILE",
                   help=f"append the rows to FILE (default {store.results_file(BENCHMARK).relative_to(ROOT)})")
    return p


def render_seconds(images: int, seed: int, size: tuple[int, int], workers: int) -> float:
    """Seconds ``generate`` takes to write ``images`` photos and labels.csv into a fresh folder."""
    from perspective.synth import generate

    with tempfile.TemporaryDirectory(prefix="bench_synth_") as folder:
        start = time.perf_counter()
        generate(folder, images, seed, size, progress=False, workers=workers)
        return time.perf_counter() - start


def main() -> int:
    args = get_args_parser().parse_args()
    size = f"{args.size[0]}x{args.size[1]}"
    print(f"{args.images} images of seed {args.seed} at {size}, {store.hardware(store.machine())}")
    print(f"{'workers':>7} {'seconds':>8} {'images/s':>9}")
    for workers in args.workers:
        seconds = render_seconds(args.images, args.seed, args.size, workers)
        rate = args.images / seconds
        store.record(BENCHMARK, {"size": size, "workers": workers},
                     {"images_per_s": round(rate, 2), "images": args.images, "seconds": round(seconds, 3)},
                     seed=args.seed, path=args.results)
        print(f"{workers:>7} {seconds:8.2f} {rate:9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
