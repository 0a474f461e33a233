"""The columns of a model's result rows, the same for a checkpoint and an exported model: the one place
that names them (predictions, class probabilities, interval bounds and class sets).

Every front end writes these (infer's result file, evaluate's predictions, the server's JSON is
built from the same row), and every reader of results (metrics, calibration, the audit, the int8
check) takes the model's outputs back from them.
"""

from __future__ import annotations

from collections.abc import Sequence

SET_COLUMN = "set"  # a classifier's prediction set (an interval of classes)
SET_SEPARATOR = "|"  # between the classes of a set in a result row


def bound_columns(name: str) -> tuple[str, str]:
    """The columns of a target's interval: ``<target>_low`` and ``<target>_high``."""
    return f"{name}_low", f"{name}_high"


def interval_columns(task: str, names: Sequence[str]) -> list[str]:
    """The columns an interval adds to a result row: each target's bounds, or the class set."""
    if task == "classification":
        return [SET_COLUMN]
    return [column for name in names for column in bound_columns(name)]


def set_cell(classes: Sequence[str]) -> str:
    """A prediction set as a result row holds it: ``cat|dog``."""
    return SET_SEPARATOR.join(classes)


def set_members(cell: object) -> list[str]:
    """The classes of a result row's set cell."""
    return str(cell).split(SET_SEPARATOR)


NOVELTY_COLUMNS = ("novelty_p", "novel")  # how unusual a photo is for the model, and whether it is flagged


def has_novelty(model) -> bool:
    """Whether ``model`` carries a novelty summary: its outputs end with a novelty score (``models.novelty``)."""
    return getattr(model, "novelty", None) is not None


def output_keys(task: str, names: Sequence[str]) -> list[str]:
    """The row keys that hold a model's outputs: the target names, or ``prob_<class>`` for each class."""
    return list(names) if task == "regression" else [f"prob_{c}" for c in names]


def output_columns(model, interval: float | None = None) -> list[str]:
    """Result columns of ``model``'s rows: path, predictions, the interval's bounds or set (``interval``), the
    novelty p-value and flag (a model with a novelty summary), error."""
    task, names = model.hparams.task, model.names
    extra = [*(interval_columns(task, names) if interval else []), *(NOVELTY_COLUMNS if has_novelty(model) else ())]
    if task == "regression":
        return ["path", *names, *extra, "error"]
    return ["path", "label", "confidence", *output_keys(task, names), *extra, "error"]
