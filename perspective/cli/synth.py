"""``perspective synth``: render labelled synthetic car photos (``perspective.synth``)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from ..config import SynthConfig, parse_size
from .common import (
    ArgumentParser,
    add_config_flag,
    add_output_flag,
    add_quiet_flag,
    non_negative_int,
    positive_int,
    run,
    setup_logging,
)

D = SynthConfig  # every default is SynthConfig's


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
        epilog="Guide: docs/training.md",
    )
    add_config_flag(p)
    add_output_flag(p, D.output, "output folder (created if missing)", "--out")
    p.add_argument("-n", "--count", type=positive_int, required=True, help="number of images")
    p.add_argument("--seed", type=non_negative_int, required=True, help="data set seed (0 or more)")
    p.add_argument("--size", type=_size_argument, default=D.size, metavar="WIDTHxHEIGHT",
                   help=f"image size WIDTHxHEIGHT (default {D.size[0]}x{D.size[1]})")
    p.add_argument("-w", "--workers", type=non_negative_int, default=D.workers,
                   help="rendering processes, 0 = this one; same files (default: min(CPU count, 8))")
    add_quiet_flag(p, "no progress bar")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "perspective synth") -> int:
    args = get_args_parser(prog).parse_args(argv)
    setup_logging(args.quiet)
    from perspective.config import LABELS_CSV
    from perspective.synth import generate

    start = time.perf_counter()
    out = generate(args.output, args.count, args.seed, args.size, progress=not args.quiet, workers=args.workers)
    rate = args.count / max(time.perf_counter() - start, 1e-9)
    print(f"wrote {args.count} images and {LABELS_CSV} to {out} ({rate:.1f} images/s)")
    return 0


if __name__ == "__main__":
    run(main, "perspective synth")
