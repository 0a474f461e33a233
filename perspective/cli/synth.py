"""``perspective synth``: render labelled synthetic car photos (``perspective.synth``)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from ..synth import DEFAULT_SIZE, LABELS_CSV, default_synth_workers, generate, parse_size
from .common import ArgumentParser, non_negative_int, positive_int, run, setup_logging


def _size_argument(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def get_args_parser(prog: str = "perspective synth") -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog,
        description="Render synthetic car photos labelled with perspective scores: DIR/images/*.jpg and "
                    "DIR/labels.csv. The same seed always gives the same files.",
    )
    p.add_argument("-o", "--output", "--out", dest="out", required=True, help="output folder (created if missing)")
    p.add_argument("-n", "--count", type=positive_int, required=True, help="number of images")
    p.add_argument("--seed", type=non_negative_int, required=True, help="data set seed (0 or more)")
    p.add_argument("--size", type=_size_argument, default=DEFAULT_SIZE, metavar="WIDTHxHEIGHT",
                   help=f"image size WIDTHxHEIGHT (default {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]})")
    p.add_argument("-w", "--workers", type=positive_int, default=default_synth_workers(),
                   help="rendering processes; the files do not depend on it (default: CPU count, at most 16)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "perspective synth") -> int:
    args = get_args_parser(prog).parse_args(argv)
    setup_logging(args.quiet)
    start = time.perf_counter()
    out = generate(args.out, args.count, args.seed, args.size, progress=not args.quiet, workers=args.workers)
    rate = args.count / max(time.perf_counter() - start, 1e-9)
    print(f"wrote {args.count} images and {LABELS_CSV} to {out} ({rate:.1f} images/s)")
    return 0


if __name__ == "__main__":
    run(main, "perspective synth")
