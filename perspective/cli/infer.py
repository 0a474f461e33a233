"""Predict scores or labels for images with a trained checkpoint and write them to a CSV.

    perspective infer -d ./sample_set                  # every image in a folder, shipped model
    perspective infer -i car.jpg 'more/*.png' -c checkpoints/resnet18/<run>/last.ckpt -o results.csv
    perspective infer --list photos.txt -o scores.parquet --format parquet --devices 4 --resume

Rows stream into part files beside the result (``<result>.parts/``) and are merged into it in input
order at the end; ``--resume`` after a crash predicts only what the parts do not hold yet
(``perspective.prediction.jobs``). Exit codes: 0 when at least one image was predicted, 1 when none
could be, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from ..config import RESULT_FORMATS, InferConfig
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
    existing_file,
    existing_folder,
    output_path,
    positive_int,
    run,
    setup_logging,
)

D = InferConfig  # every default is InferConfig's


def get_args_parser(prog: str = "perspective infer") -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog,
        usage="%(prog)s [-h] [options] (-i PATH ... | -d DIR | --list FILE)",
        description="Predict with a checkpoint for images, a folder or a list: a CSV (or JSON, parquet) row per "
                    "image, unreadable ones with the error column filled. Long flags also accept underscores.",
        epilog="Guide: docs/prediction.md",
    )
    add_config_flag(p)
    p.add_argument("-i", "--image", nargs="+", default=[], metavar="PATH",
                   help="image paths or quoted glob patterns")
    p.add_argument("-d", "--data", "--directory", dest="data", type=existing_folder, default=None, metavar="DIR",
                   help="predict every image in this folder")
    p.add_argument("-R", "--recursive", action="store_true", help="with -d, include subfolders")
    p.add_argument("--list", type=existing_file, default=None, metavar="FILE",
                   help="a path a line, or a CSV with a filename or path column")
    add_checkpoint_flag(p, exported=True)
    add_output_flag(p, D.output, "the result file", "-r", "--result-csv")
    p.add_argument("--format", choices=RESULT_FORMATS, default=D.format,
                   help=f"result format; parquet needs pyarrow (default {D.format})")
    p.add_argument("--resume", action="store_true",
                   help="predict only the images an interrupted run left (default: start over)")
    p.add_argument("--log-every", type=positive_int, default=D.log_every, metavar="N",
                   help=f"a log line every N images per process (default {D.log_every})")
    p.add_argument("--labels", default=None,
                   help="labels CSV: true_* columns and metrics (default: a labels.csv beside -d)")
    p.add_argument("--label-column", default=None,
                   help="class column of --labels (default: the checkpoint's)")
    p.add_argument("--show", type=int, default=D.show, help=f"rows to print on stdout (default {D.show})")
    p.add_argument("--explain", type=output_path, default=None, metavar="DIR",
                   help="a Grad-CAM PNG per image into DIR (needs perspective[explain]) (default off)")
    add_batch_flags(p, D)
    add_device_flags(p, D)
    add_prediction_flags(p)
    add_quiet_flag(p)
    return p


def format_rows(rows: list[dict], columns: list[str]) -> str:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=columns)
    frame["path"] = frame["path"].map(os.path.basename)
    if not frame["error"].any():
        frame = frame.drop(columns="error")
    return frame.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")


def main(argv: Sequence[str] | None = None, prog: str = "perspective infer") -> int:
    parser = get_args_parser(prog)
    args = parser.parse_args(argv)
    if not args.image and args.data is None and args.list is None:
        parser.error("give images with -i, a folder with -d or a list with --list")
    setup_logging(args.quiet)
    from perspective.errors import NothingDone
    from perspective.evaluation import format_table, interval_table, metrics_table
    from perspective.prediction import run_inference

    cfg = config_of(InferConfig, args)
    result = run_inference(cfg)
    if not result.is_main:
        return 0
    count, unreadable = result.counts.rows, result.counts.unreadable
    if result.shown:
        print(format_rows(result.shown, result.columns))
        if count > len(result.shown):
            print(f"... {count - len(result.shown)} more rows in {cfg.output}")
    resumed = (f"; {result.skipped} skipped, already predicted by the interrupted run; "
               f"{result.counts.predicted_now} predicted now") if cfg.resume else ""
    print(f"{count - unreadable} of {count} images predicted with {result.checkpoint} "
          f"({unreadable} unreadable{resumed}); results: {cfg.output}")
    if unreadable == count:
        raise NothingDone("no image could be read")
    if result.explained is not None:
        what = "target" if result.task == "regression" else "predicted class"
        print(f"{result.explained} explanations (Grad-CAM per {what}) in {cfg.explain}")
    if result.metrics is not None:
        print(f"\nmetrics against {result.labels}:")
        print(format_table(metrics_table(result.metrics)))
        if "intervals" in result.metrics:
            print(format_table(interval_table(result.metrics["intervals"])))
    return 0


if __name__ == "__main__":
    run(main, "perspective infer")
