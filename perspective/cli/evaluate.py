"""Evaluate a checkpoint on labelled images: metrics beside baselines, plots and an HTML report.

    perspective evaluate -c checkpoints/resnet18/<run>/last.ckpt -d ./my_data -o report/
    perspective evaluate -c checkpoints/resnet18/<run>/last.ckpt -d ./my_data --split test -o report/    # the training run's test split

Writes metrics.json, metrics.csv, predictions.csv, PNG plots and a self-contained report.html into
the output folder and prints the metrics table. Exit codes: 0 done, 1 no image could be read,
2 usage or data error (for instance data whose targets or classes do not match the checkpoint).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..config import SPLITS, EvaluateConfig
from .common import (
    ArgumentParser,
    add_batch_flags,
    add_checkpoint_flag,
    add_config_flag,
    add_device_flags,
    add_output_flag,
    add_prediction_flags,
    add_quiet_flag,
    config_of,
    existing_path,
    non_negative_int,
    run,
    setup_logging,
)

D = EvaluateConfig  # every default is EvaluateConfig's


def get_args_parser(prog: str = "perspective evaluate") -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog,
        description="Evaluate a checkpoint on labelled data (any layout train reads): metrics with "
                    "trivial baselines, plots and a self-contained HTML report. Long flags also accept underscores.",
        epilog="Guide: docs/prediction.md",
    )
    add_config_flag(p)
    add_checkpoint_flag(p, exported=True)
    p.add_argument("-d", "--data", type=existing_path, required=True,
                   help="labels.csv + images/, a CSV, or class subfolders")
    p.add_argument("--images", type=existing_path, default=None,
                   help="images of a CSV -d (default: images/ beside it)")
    p.add_argument("--label-column", default=None,
                   help="a CSV's class column (default: the checkpoint's, else label)")
    add_output_flag(p, D.output, "output folder", "--out")
    p.add_argument("--split", choices=SPLITS, default=D.split,
                   help=f"all the data, or a part of the training run's split (default {D.split})")
    p.add_argument("--seed", type=non_negative_int, default=D.seed, help="split seed (default: the training run's)")
    p.add_argument("--samples", type=non_negative_int, default=D.samples,
                   help=f"images in the sample grid (default {D.samples})")
    p.add_argument("--explain-samples", type=non_negative_int, default=D.explain_samples, metavar="N",
                   help=f"random images with Grad-CAM in the report (default {D.explain_samples})")
    p.add_argument("--calibrate", action="store_true",
                   help="store a conformal calibration from this data (unseen in training) in -c")
    add_batch_flags(p, D)
    add_device_flags(p, D)
    add_prediction_flags(p)
    add_quiet_flag(p)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "perspective evaluate") -> int:
    parser = get_args_parser(prog)
    args = parser.parse_args(argv)
    if args.calibrate and args.interval is not None:
        parser.error("--calibrate and --interval: measure the intervals on other data than they were calibrated on "
                     "(calibrate first, then evaluate other images with --interval)")
    if args.calibrate and str(args.checkpoint).lower().endswith((".onnx", ".xml")):
        parser.error("--calibrate needs the .ckpt checkpoint; calibrate it, then export it again")
    setup_logging(args.quiet)
    from perspective.evaluation import format_table, interval_table
    from perspective.prediction import run_evaluation

    cfg = config_of(EvaluateConfig, args)
    done = run_evaluation(cfg)
    if done is None:
        return 0  # another process of a multi-process run: the first one writes the report
    result = done.evaluation
    print(format_table(result.table))
    if "intervals" in result.metrics:
        print(format_table(interval_table(result.metrics["intervals"])))
    if done.calibrated is not None:
        print(f"conformal calibration from {done.calibrated} images stored in {done.checkpoint}")
    print(f"{done.images} images evaluated ({cfg.split}); report: {result.outdir / 'report.html'}")
    return 0


if __name__ == "__main__":
    run(main, "perspective evaluate")
