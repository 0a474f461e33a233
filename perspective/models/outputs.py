"""The columns of a model's result rows, the same for a checkpoint and an exported model.

Every front end writes these (infer's result file, evaluate's predictions, the server's JSON is
built from the same row), and every reader of results (metrics, calibration, the audit, the int8
check) takes the model's outputs back from them.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..trust.conformal import interval_columns


def output_keys(task: str, names: Sequence[str]) -> list[str]:
    """The row keys that hold a model's outputs: the target names, or ``prob_<class>`` for each class."""
    return list(names) if task == "regression" else [f"prob_{c}" for c in names]


def output_columns(model, interval: float | None = None) -> list[str]:
    """Result columns of ``model``'s rows: path, predictions, the interval's bounds or set (``interval``), error."""
    task, names = model.hparams.task, model.names
    extra = interval_columns(task, names) if interval else []
    if task == "regression":
        return ["path", *names, *extra, "error"]
    return ["path", "label", "confidence", *output_keys(task, names), *extra, "error"]
