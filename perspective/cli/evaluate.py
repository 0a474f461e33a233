"""Evaluate a checkpoint on labelled images: metrics beside baselines, plots and an HTML report.

    perspective evaluate -c checkpoints/resnet18/<run>/last.ckpt -d ./my_data -o report/
    perspective evaluate -c checkpoints/resnet18/<run>/last.ckpt -d ./my_data --split test -o report/    # the training run's test split

Writes metrics.json, metrics.csv, predictions.csv, PNG plots and a self-contained report.html into
the output folder and prints the metrics table. Exit codes: 0 done, 1 no image could be read,
2 usage or data error (for instance data whose targets or classes do not match the checkpoint).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import EvaluateConfig
from ..config.flags import HARDWARE, MODEL
from .common import run, setup_logging
from .parser import CommandParser, command_parser

DESCRIPTION = ("Evaluate a checkpoint on labelled data (any layout train reads): metrics with "
               "trivial baselines, plots and a self-contained HTML report. Long flags also accept underscores.")


def get_args_parser(prog: str = "perspective evaluate") -> CommandParser:
    return command_parser(prog, EvaluateConfig, groups=(MODEL, HARDWARE), description=DESCRIPTION,
                          epilog="Guide: docs/prediction.md")


def main(argv: Sequence[str] | None = None, prog: str = "perspective evaluate") -> int:
    parser = get_args_parser(prog)
    cfg = parser.parse_config(argv)
    if cfg.calibrate and cfg.interval is not None:
        parser.error("--calibrate and --interval: measure the intervals on other data than they were calibrated on "
                     "(calibrate first, then evaluate other images with --interval)")
    if cfg.calibrate and str(cfg.checkpoint).lower().endswith((".onnx", ".xml")):
        parser.error("--calibrate needs the .ckpt checkpoint; calibrate it, then export it again")
    setup_logging(cfg.quiet)
    from perspective.evaluation import format_table, interval_table, novelty_note
    from perspective.jobs import run_evaluation

    done = run_evaluation(cfg)
    if done is None:
        return 0  # another process of a multi-process run: the first one writes the report
    result = done.evaluation
    print(format_table(result.table))
    if "intervals" in result.metrics:
        print(format_table(interval_table(result.metrics["intervals"])))
    if "novelty" in result.metrics:
        print(novelty_note(result.metrics["novelty"]["novel"], result.metrics["novelty"]["images"], cfg.novelty))
    if done.calibrated is not None:
        print(f"conformal calibration from {done.calibrated} images stored in {done.checkpoint}")
    if done.novelty is not None:
        print(f"novelty summary of {done.novelty['bank']} images, calibrated on {done.novelty['calibration']}, "
              f"stored in {done.checkpoint}")
    print(f"{done.images} images evaluated ({cfg.split}); report: {result.outdir / 'report.html'}")
    return 0


if __name__ == "__main__":
    run(main, "perspective evaluate")
