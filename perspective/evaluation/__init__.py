"""Evaluation: the truth beside predictions (``truth``), metrics beside trivial baselines
(``metrics``), plots and the HTML report (``report``). It reads prediction rows and truth, never a
model's internals; ``labelled`` predicts labelled rows through the prediction path and reports them."""

from .metrics import (
    calibrate_from_predictions,
    compute_metrics,
    flat_metrics,
    format_table,
    interval_table,
    metrics_table,
    novelty_note,
)
from .report import Evaluation, report_predictions, write_report
from .truth import (
    TRUE_PREFIX,
    find_labels,
    load_truth,
    result_columns,
    select_split,
    truth_columns,
    truth_for,
    truth_lookup,
    with_truth,
)

__all__ = [
    "TRUE_PREFIX", "Evaluation", "calibrate_from_predictions", "compute_metrics", "find_labels", "flat_metrics",
    "format_table", "interval_table", "load_truth", "metrics_table", "novelty_note", "report_predictions",
    "result_columns",
    "write_report",
    "select_split", "truth_columns", "truth_for", "truth_lookup", "with_truth",
]
