"""Predict scores or labels for images with a trained checkpoint and write them to a CSV.

    perspective infer -d ./sample_set                  # every image in a folder, shipped model
    perspective infer -i car.jpg 'more/*.png' -c checkpoints/resnet18/<run>/last.ckpt -o results.csv
    perspective infer --list photos.txt -o scores.parquet --format parquet --devices 4 --resume

Rows stream into part files beside the result (``<result>.parts/``) and are merged into it in input
order at the end; ``--resume`` after a crash predicts only what the parts do not hold yet
(``perspective.jobs``). Exit codes: 0 when at least one image was predicted, 1 when none
could be, 2 for usage errors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..config import InferConfig
from ..config.flags import HARDWARE, MODEL
from .common import run, setup_logging
from .parser import CommandParser, command_parser

SOURCES = "(-i PATH ... | -d DIR | --list FILE)"  # one of them is needed
DESCRIPTION = ("Predict with a checkpoint for images, a folder or a list: a CSV (or JSON, parquet) row per "
               "image, unreadable ones with the error column filled. Long flags also accept underscores.")


def get_args_parser(prog: str = "perspective infer") -> CommandParser:
    return command_parser(prog, InferConfig, groups=(MODEL, HARDWARE), description=DESCRIPTION,
                          epilog="Guide: docs/prediction.md", usage="%(prog)s [-h] [options] " + SOURCES)


def format_rows(rows: list[dict], columns: list[str]) -> str:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=columns)
    frame["path"] = frame["path"].map(os.path.basename)
    if not frame["error"].any():
        frame = frame.drop(columns="error")
    return frame.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")


def main(argv: Sequence[str] | None = None, prog: str = "perspective infer") -> int:
    parser = get_args_parser(prog)
    cfg = parser.parse_config(argv)
    if not cfg.image and cfg.data is None and cfg.list is None:
        parser.error("give images with -i, a folder with -d or a list with --list")
    setup_logging(cfg.quiet)
    from perspective.errors import NothingDone
    from perspective.evaluation import format_table, interval_table, metrics_table, novelty_note
    from perspective.jobs import run_inference

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
    if "novel" in result.columns and unreadable < count:
        print(novelty_note(result.counts.novel, count - unreadable, cfg.novelty))
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
