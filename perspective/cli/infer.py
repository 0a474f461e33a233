"""Predict scores or labels for images with a trained checkpoint and write them to a CSV.

    python infer.py -d ./sample_set                  # every image in a folder, shipped model
    python infer.py -i car.jpg 'more/*.png' -c best.ckpt -r results.csv
    perspective infer --list photos.txt -o scores.parquet --format parquet --devices 4 --resume

Rows stream into part files beside the result (``<result>.parts/``) and are merged into it in input
order at the end; ``--resume`` after a crash predicts only what the parts do not hold yet
(``perspective.bulk``). Exit codes: 0 when at least one image was predicted, 1 when none could be,
2 for usage errors.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections.abc import Sequence

from ..config import LOG_EVERY, RESULT_FORMATS
from .common import (
    ArgumentParser,
    add_checkpoint_flag,
    add_config_flag,
    add_prediction_flags,
    add_runtime_flags,
    existing_file,
    output_path,
    positive_int,
    prediction_device,
    process_plan,
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
    p.add_argument("--list", type=existing_file, default=None, metavar="FILE",
                   help="a file naming the images: one path a line, or a CSV with a filename or path column; "
                        "relative paths are read from the list's folder")
    add_checkpoint_flag(p, exported=True)
    add_config_flag(p, "infer")
    p.add_argument("-o", "--output", "-r", "--result-csv", dest="result_csv", type=output_path, default="last_results.csv",
                   help="where the results go; -r/--result-csv is the original scripts' spelling (default "
                        "./last_results.csv)")
    p.add_argument("--format", choices=RESULT_FORMATS, default="csv",
                   help="result format; parquet needs pyarrow (default csv)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run: predict only the images not yet in the result file or its "
                        "parts (<result>.parts/), then write the whole result (default: start over)")
    p.add_argument("--log-every", type=positive_int, default=LOG_EVERY, metavar="N",
                   help=f"a progress line in the log every N images, per process (default {LOG_EVERY})")
    p.add_argument("--labels", default=None,
                   help="labels CSV (filename plus the model's targets or label column): adds true_* columns "
                        "and prints the metrics (default: a labels.csv found beside the images of -d)")
    p.add_argument("--label-column", default=None,
                   help="class column of the labels CSV (default: the one the checkpoint was trained with)")
    p.add_argument("--show", type=int, default=20, help="rows to print on stdout (default 20)")
    p.add_argument("--explain", type=output_path, default=None, metavar="DIR",
                   help="also write DIR/<image>.png for each image: a Grad-CAM heatmap per target (or for the "
                        "predicted class) over the photo, the score in each panel's title; checkpoints only, "
                        "needs perspective[explain] (default off)")
    add_runtime_flags(p, default_batch_size=32, processes=True)
    add_prediction_flags(p)
    return p


def collect_paths(images: list[str], directory: str | None, recursive: bool, prog: str = "perspective infer",
                  listed: str | None = None) -> list[str]:
    """Expand ``-i`` patterns, ``-d`` and ``--list`` into a list of files, in that order."""
    from perspective.data import list_images, read_path_list
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
        paths.extend(list_images(directory, recursive))
    if listed is not None:
        try:
            paths.extend(read_path_list(listed))
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise UserError(str(exc) if isinstance(exc, ValueError) else f"--list {listed}: {exc}") from None
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
    if not args.image and args.directory is None and args.list is None:
        parser.error("give images with -i, a folder with -d or a list with --list")
    setup_logging(args.quiet)
    from perspective.errors import NothingDone

    paths = collect_paths(args.image, args.directory, args.recursive, prog, args.list)  # before torch loads
    if not paths:
        raise NothingDone("no images to predict")
    if args.format == "parquet":
        from perspective.results import require_pyarrow

        require_pyarrow()
    from perspective import bulk
    from perspective.evaluation import compute_metrics, result_columns, with_truth
    from perspective.predict import Predictor, load_model, shipped_checkpoint
    from perspective.report import format_table, interval_table, metrics_table
    from perspective.results import ResultWriter

    checkpoint = args.checkpoint or shipped_checkpoint()
    model = load_model(checkpoint)
    labels, explicit = find_labels(args.labels, args.directory)
    lookup = load_lookup(model, labels, explicit, args.directory, args.label_column, prog)  # a mismatch stops us now
    if args.explain:  # before predicting: a missing extra or an exported model stops us now
        from perspective.explain import check_explainable

        check_explainable(model)
    plan = process_plan(args)
    settings = {"precision": args.precision, "tta": args.tta, "compile": args.compile, "interval": args.interval}
    common = {"resume": args.resume, "result_format": args.format, "batch_size": args.batch_size,
              "workers": args.workers, "progress": not args.quiet, "log_every": args.log_every}
    if plan is None:
        predictor = Predictor(model, device=prediction_device(args), **settings)
        store = bulk.PartStore(args.result_csv, predictor.columns)
        try:
            outcome = bulk.predict_local(predictor, paths, store, **common)
        except KeyboardInterrupt:  # the rows so far go into the result, as a finished run's would
            generation = max((store.generation(p) for p in store.files()), default=0)
            write_result(store, generation, args.result_csv, predictor.columns, args.format)
            raise
    else:
        from perspective.predict import output_columns

        store = bulk.PartStore(args.result_csv, output_columns(model, args.interval))
        outcome = bulk.predict_distributed(model, paths, store, **settings, **common, **plan)
        if not outcome.is_main:
            return 0  # the first process merges and reports
    columns = result_columns(model, lookup is not None, args.interval)
    rows, counts = bulk.merge(store, outcome.generation)
    if lookup is not None:
        rows = with_truth(rows, lookup, columns[len(store.columns) - 1:-1])

    shown, scored = [], []
    with ResultWriter(args.result_csv, columns, args.format) as out:
        for row in rows:
            out.write(row)
            if len(shown) < args.show:
                shown.append(row)
            if lookup is not None:
                scored.append(row)
    store.clear()
    if shown:
        print(format_rows(shown, store.columns))
        if out.count > len(shown):
            print(f"... {out.count - len(shown)} more rows in {args.result_csv}")
    resumed = (f"; {outcome.skipped} skipped, already predicted by the interrupted run; {counts.predicted_now} "
               "predicted now") if args.resume else ""
    print(f"{out.count - counts.unreadable} of {out.count} images predicted with {checkpoint} "
          f"({counts.unreadable} unreadable{resumed}); results: {args.result_csv}")
    if counts.unreadable == out.count:
        raise NothingDone("no image could be read")
    if args.explain:
        from perspective.explain import Explainer

        write_explanations(Explainer(model), paths, args.explain, progress=not args.quiet)
    if lookup is not None:
        import pandas as pd

        metrics = compute_metrics(model, pd.DataFrame(scored, columns=columns), args.interval)
        print(f"\nmetrics against {labels}:")
        print(format_table(metrics_table(metrics)))
        if "intervals" in metrics:
            print(format_table(interval_table(metrics["intervals"])))
    return 0


def write_explanations(explainer, paths: list[str], folder: str, progress: bool) -> None:
    """``folder/<image>.png`` for each readable image (``perspective.explain``); an unreadable one is skipped."""
    from tqdm import tqdm

    from perspective.explain import explain_image, explanation_path
    from perspective.results import atomic_write

    os.makedirs(folder, exist_ok=True)
    taken: set[str] = set()
    written = 0
    for path in tqdm(paths, unit="img", desc="explain", disable=not progress or len(paths) < 2):
        try:
            png = explain_image(explainer, path)
        except (OSError, ValueError):
            continue  # its row already says why it could not be read
        atomic_write(explanation_path(folder, path, taken), png)
        written += 1
    print(f"{written} explanations (Grad-CAM per {'target' if explainer.task == 'regression' else 'predicted class'}) "
          f"in {folder}")


def write_result(store, generation: int, path: str, columns: list[str], result_format: str) -> None:
    """The rows the parts hold so far, as the result file (an interrupted run keeps what it predicted)."""
    from perspective import bulk
    from perspective.results import ResultWriter

    rows, _ = bulk.merge(store, generation)
    with ResultWriter(path, columns, result_format) as out:
        for row in rows:
            out.write(row)
    store.clear()


if __name__ == "__main__":
    run(main, "perspective infer")
