"""Predict scores or labels for images with a trained checkpoint and write them to a CSV.

    python infer.py -d ./sample_set                  # every image in a folder, shipped model
    python infer.py -i car.jpg 'more/*.png' -c best.ckpt -r results.csv

Exit codes: 0 when at least one image was predicted, 1 when none could be, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections.abc import Sequence

from ..config import RESULT_FORMATS
from .common import (
    ArgumentParser,
    add_checkpoint_flag,
    add_config_flag,
    add_prediction_flags,
    add_runtime_flags,
    output_path,
    prediction_device,
    run,
    setup_logging,
)


def get_args_parser(prog: str = "perspective infer") -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog,
        description="Predict with a checkpoint for one image, several, or every image in a folder; "
                    "results go to a CSV (or JSON) with a row per image. Unreadable images get a row "
                    "with the error column filled. Long flags also accept underscores.",
    )
    p.add_argument("-i", "--image", nargs="+", default=[], metavar="PATH",
                   help="image paths or glob patterns (quote patterns to let infer.py expand them)")
    p.add_argument("-d", "--directory", default=None, help="predict every image in this folder")
    p.add_argument("-R", "--recursive", action="store_true", help="with -d, include subfolders")
    add_checkpoint_flag(p, onnx=True)
    add_config_flag(p, "infer")
    p.add_argument("-o", "--output", "-r", "--result-csv", dest="result_csv", type=output_path, default="last_results.csv",
                   help="where the results go; -r/--result-csv is the original scripts' spelling (default "
                        "./last_results.csv)")
    p.add_argument("--format", choices=RESULT_FORMATS, default="csv", help="result format (default csv)")
    p.add_argument("--labels", default=None,
                   help="labels CSV (filename plus the model's targets or label column): adds true_* columns "
                        "and prints the metrics (default: a labels.csv found beside the images of -d)")
    p.add_argument("--label-column", default=None,
                   help="class column of the labels CSV (default: the one the checkpoint was trained with)")
    p.add_argument("--show", type=int, default=20, help="rows to print on stdout (default 20)")
    add_runtime_flags(p, default_batch_size=32)
    add_prediction_flags(p)
    return p


def collect_paths(images: list[str], directory: str | None, recursive: bool, prog: str = "perspective infer") -> list[str]:
    """Expand ``-i`` patterns and ``-d`` into a list of files, in the order given."""
    from perspective.data import list_images
    from perspective.errors import UserError

    paths: list[str] = []
    for item in images:
        if glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                print(f"{prog}: warning: {item!r} matches no file", file=sys.stderr)
            paths.extend(m for m in matches if os.path.isfile(m))
        else:
            paths.append(item)  # a missing file still gets its row, with the error
    if directory is not None:
        if not os.path.isdir(directory):
            raise UserError(f"-d {directory}: not a folder")
        paths.extend(str(p) for p in list_images(directory, recursive))
    return paths


def find_labels(labels: str | None, directory: str | None) -> tuple[str | None, bool]:
    """The labels CSV to join, and whether the user named it (a found one that does not fit is only a warning)."""
    if labels is not None:
        return labels, True
    if directory is None:
        return None, False
    from perspective.data import LABELS_CSV

    folder = os.path.abspath(directory)
    candidates = [os.path.join(folder, LABELS_CSV)]
    if os.path.basename(folder) in ("images", "imgs"):
        candidates.append(os.path.join(os.path.dirname(folder), LABELS_CSV))
    return next((c for c in candidates if os.path.isfile(c)), None), False


def load_lookup(model, labels: str | None, explicit: bool, directory: str | None, label_column: str | None,
                prog: str = "perspective infer"):
    """Truth by resolved image path, or None when there are no labels (or found ones do not fit)."""
    from perspective.errors import UserError
    from perspective.evaluation import load_truth, truth_lookup

    if labels is None:
        return None
    try:
        labelled = load_truth(model, labels, directory if explicit else None, label_column)
    except UserError as exc:
        if explicit:
            raise
        print(f"{prog}: warning: {labels} ignored: {exc}", file=sys.stderr)
        return None
    return truth_lookup(labelled.frame, model)


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
    if not args.image and args.directory is None:
        parser.error("give images with -i or a folder with -d")
    setup_logging(args.quiet)
    from perspective.errors import NothingDone

    paths = collect_paths(args.image, args.directory, args.recursive, prog)  # before torch loads: a typo answers at once
    if not paths:
        raise NothingDone("no images to predict")
    from perspective.evaluation import compute_metrics, predict_with_truth
    from perspective.predict import Predictor, load_model, shipped_checkpoint
    from perspective.report import format_table, metrics_table
    from perspective.results import ResultWriter

    checkpoint = args.checkpoint or shipped_checkpoint()
    device = prediction_device(args)
    predictor = Predictor(load_model(checkpoint), device=device, precision=args.precision,
                          compile=args.compile, tta=args.tta)
    labels, explicit = find_labels(args.labels, args.directory)
    lookup = load_lookup(predictor.model, labels, explicit, args.directory, args.label_column, prog)
    columns, rows = predict_with_truth(predictor, paths, lookup, args.batch_size, args.workers, not args.quiet)

    shown, scored, failed = [], [], 0
    with ResultWriter(args.result_csv, columns, args.format) as out:
        for row in rows:
            out.write(row)
            failed += bool(row["error"])
            if len(shown) < args.show:
                shown.append(row)
            if lookup is not None:
                scored.append(row)
    if shown:
        print(format_rows(shown, predictor.columns))
        if out.count > len(shown):
            print(f"... {out.count - len(shown)} more rows in {args.result_csv}")
    print(f"{out.count - failed} of {out.count} images predicted with {checkpoint} "
          f"({failed} unreadable); results: {args.result_csv}")
    if failed == out.count:
        raise NothingDone("no image could be read")
    if lookup is not None:
        import pandas as pd

        metrics = compute_metrics(predictor.model, pd.DataFrame(scored, columns=columns))
        print(f"\nmetrics against {labels}:")
        print(format_table(metrics_table(metrics)))
    return 0


if __name__ == "__main__":
    run(main, "perspective infer")
