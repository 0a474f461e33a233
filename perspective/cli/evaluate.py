"""Evaluate a checkpoint on labelled images: metrics beside baselines, plots and an HTML report.

    python evaluate.py -c best.ckpt -d ./my_data -o report/
    python evaluate.py -c best.ckpt -d ./my_data --split test -o report/    # the training run's test split

Writes metrics.json, metrics.csv, predictions.csv, PNG plots and a self-contained report.html into
the output folder and prints the metrics table. Exit codes: 0 done, 1 no image could be read,
2 usage or data error (for instance data whose targets or classes do not match the checkpoint).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..config import SPLITS
from .common import (
    ArgumentParser,
    add_checkpoint_flag,
    add_prediction_flags,
    add_runtime_flags,
    existing_path,
    non_negative_int,
    output_path,
    prediction_device,
    process_plan,
    run,
    setup_logging,
)


def get_args_parser(prog: str = "perspective evaluate") -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog,
        description="Evaluate a checkpoint on labelled data (any layout train.py reads): metrics with "
                    "trivial baselines, plots and a self-contained HTML report. Long flags also accept underscores.",
    )
    add_checkpoint_flag(p, exported=True)
    p.add_argument("-d", "--data", type=existing_path, required=True,
                   help="labelled data: a folder with labels.csv + images/, a CSV file, or class subfolders")
    p.add_argument("--images", type=existing_path, default=None,
                   help="images folder for a CSV given with -d (default: beside it)")
    p.add_argument("--label-column", default=None,
                   help="class column of a CSV (default: the one the checkpoint was trained with, else label)")
    p.add_argument("-o", "--output", "--out", dest="output", type=output_path, default="evaluation", help="output folder (default ./evaluation)")
    p.add_argument("--split", choices=SPLITS, default="all",
                   help="evaluate the whole data (all) or one part of the training run's split, rebuilt from "
                        "the fractions and seed stored in the checkpoint (default all)")
    p.add_argument("--seed", type=int, default=None, help="split seed (default: the training run's)")
    p.add_argument("--samples", type=non_negative_int, default=16, help="images in the sample grid (default 16)")
    p.add_argument("--explain-samples", type=non_negative_int, default=4, metavar="N",
                   help="a saliency section in the report: Grad-CAM of every score for N random images "
                        "(checkpoints with perspective[explain] installed; 0: none) (default 4)")
    p.add_argument("--calibrate", action="store_true",
                   help="store a conformal calibration from this labelled data in the checkpoint (-c), replacing the "
                        "one from its validation split, for --interval later; use images the model did not train on")
    add_runtime_flags(p, default_batch_size=32, processes=True)
    add_prediction_flags(p)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "perspective evaluate") -> int:
    parser = get_args_parser(prog)
    args = parser.parse_args(argv)
    if args.calibrate and args.interval is not None:
        parser.error("--calibrate and --interval: measure the intervals on other data than they were calibrated on "
                     "(calibrate first, then evaluate other images with --interval)")
    if args.calibrate and args.checkpoint is None:
        parser.error("--calibrate writes into the checkpoint: name it with -c (the shipped model is calibrated already)")
    if args.calibrate and str(args.checkpoint).lower().endswith((".onnx", ".xml")):
        parser.error("--calibrate needs the .ckpt checkpoint; calibrate it, then export it again")
    setup_logging(args.quiet)
    from perspective.evaluation import (
        calibrate_from_predictions,
        evaluate,
        load_truth,
        report_predictions,
        select_split,
        store_calibration,
    )
    from perspective.predict import Predictor, load_model, shipped_checkpoint
    from perspective.report import format_table, interval_table

    checkpoint = args.checkpoint or shipped_checkpoint()
    model = load_model(checkpoint)
    labelled = load_truth(model, args.data, args.images, args.label_column)
    frame = select_split(labelled, args.split, model, args.seed)
    summary = {"data": labelled.source, "split": args.split, "checkpoint": str(checkpoint)}
    title = f"Evaluation of {checkpoint}"
    plan = process_plan(args)
    if plan is None:
        predictor = Predictor(model, device=prediction_device(args), precision=args.precision,
                              compile=args.compile, tta=args.tta, interval=args.interval)
        result = evaluate(predictor, frame, args.output, title=title, summary=summary, batch_size=args.batch_size,
                          workers=args.workers, samples=args.samples, progress=not args.quiet,
                          explain_samples=args.explain_samples)
    else:
        predictions = predict_in_processes(model, frame, args, plan)
        if predictions is None:
            return 0  # the first process writes the report
        result = report_predictions(model, predictions, args.output, title=title, summary=summary,
                                    samples=args.samples, interval=args.interval,
                                    explain_samples=args.explain_samples)
    print(format_table(result.table))
    if "intervals" in result.metrics:
        print(format_table(interval_table(result.metrics["intervals"])))
    if args.calibrate:
        calibration = calibrate_from_predictions(model, result.predictions)
        store_calibration(checkpoint, calibration)
        print(f"conformal calibration from {calibration['n']} images stored in {checkpoint}")
    print(f"{len(frame)} images evaluated ({args.split}); report: {result.outdir / 'report.html'}")
    return 0


def predict_in_processes(model, frame, args, plan: dict):
    """The predictions (with truth) of several processes through Lightning, in the first process; None in the others.

    The processes stream their rows into part files in the output folder
    (``predictions.csv.parts/``), merged here in the order of the data.
    """
    import os

    import pandas as pd

    from perspective import bulk
    from perspective.evaluation import result_columns, truth_columns, truth_lookup, with_truth
    from perspective.predict import output_columns

    store = bulk.PartStore(os.path.join(args.output, "predictions.csv"), output_columns(model, args.interval))
    outcome = bulk.predict_distributed(
        model, frame["path"].tolist(), store, resume=False, result_format="csv", batch_size=args.batch_size,
        workers=args.workers, progress=not args.quiet, precision=args.precision, tta=args.tta, compile=args.compile,
        interval=args.interval,
        **plan)
    if not outcome.is_main:
        return None
    rows, _ = bulk.merge(store, outcome.generation)
    rows = with_truth(rows, truth_lookup(frame, model), truth_columns(model))
    predictions = pd.DataFrame(list(rows), columns=result_columns(model, True, args.interval))
    store.clear()
    return predictions


if __name__ == "__main__":
    run(main, "perspective evaluate")
