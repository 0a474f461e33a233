"""``perspective synth``: render labelled synthetic car photos (``perspective.synth``)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..config import SynthConfig
from .common import run, setup_logging
from .parser import CommandParser, command_parser

DESCRIPTION = ("Render synthetic car photos labelled with perspective scores: DIR/images/*.jpg and "
               "DIR/labels.csv. The same seed always gives the same files.")


def get_args_parser(prog: str = "perspective synth") -> CommandParser:
    return command_parser(prog, SynthConfig, description=DESCRIPTION, epilog="Guide: docs/training.md")


def main(argv: Sequence[str] | None = None, prog: str = "perspective synth") -> int:
    cfg = get_args_parser(prog).parse_config(argv)
    setup_logging(cfg.quiet)
    from perspective.config import LABELS_CSV
    from perspective.synth import generate

    start = time.perf_counter()
    out = generate(cfg.output, cfg.count, cfg.seed, cfg.size, progress=not cfg.quiet, workers=cfg.workers)
    rate = cfg.count / max(time.perf_counter() - start, 1e-9)
    print(f"wrote {cfg.count} images and {LABELS_CSV} to {out} ({rate:.1f} images/s)")
    return 0


if __name__ == "__main__":
    run(main, "perspective synth")
