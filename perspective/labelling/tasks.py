"""The tasks ``select`` and ``audit`` send: each photo with a note saying why it was sent and the model's
answer as a pre-annotation (a Label Studio *prediction*, named by the model's version), so that an
annotator corrects a number instead of typing it.

- ``select``: the model's scores (or its class) for each chosen photo; the note gives its rank and why.
- ``audit``: each suspect row with two pre-annotations, the label it has (version ``given label``) and
  the out-of-fold models' answer; the note and the ``suspect`` field name the target in doubt.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .studio import CLASS_FIELD, IMAGE, NOTE, PHOTO, Studio, image_url

GIVEN_VERSION = "given label"  # the pre-annotation that shows a suspect row's label as the data has it
DECIMALS = 2  # as the number fields step


def prediction(version: str, task: str, names: Sequence[str], values: Mapping[str, Any] | str | None) -> dict | None:
    """A pre-annotation: one number per target (clipped to [0, 1]) or the class; None when there is nothing."""
    if task == "regression":
        result = [{"from_name": n, "to_name": IMAGE, "type": "number",
                   "value": {"number": round(min(1.0, max(0.0, float(values[n]))), DECIMALS)}}
                  for n in names if values is not None and _present(values.get(n))]
    else:
        result = [] if not _present(values) else [{"from_name": CLASS_FIELD, "to_name": IMAGE, "type": "choices",
                                                   "value": {"choices": [str(values)]}}]
    return {"model_version": version, "result": result} if result else None


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value != ""


def photo_task(studio: Studio, path: str, note: str, predictions: Sequence[dict | None], **fields: Any) -> dict:
    photo = studio.photo_of(path)
    return {"data": {IMAGE: image_url(photo), PHOTO: photo, NOTE: note, **fields},
            "predictions": [p for p in predictions if p is not None]}


def selection_tasks(studio: Studio, table: pd.DataFrame, task: str, names: Sequence[str], version: str) -> list[dict]:
    """``select``'s chosen photos (its table, with the ``predicted_*`` columns) as tasks."""
    tasks = []
    for row in table.to_dict("records"):
        if task == "regression":
            values = {n: row[f"predicted_{n}"] for n in names}
        else:
            values = row["predicted"]
        note = f"#{row['rank']} to label: {row['reason']}"
        tasks.append(photo_task(studio, row["path"], note, [prediction(version, task, names, values)]))
    return tasks


def audit_tasks(studio: Studio, table: pd.DataFrame, task: str, names: Sequence[str], version: str) -> list[dict]:
    """The audit's worst rows (its table, worst first) as tasks: the given label and the models' answer."""
    tasks = []
    for row in table.to_dict("records"):
        suspect = row["suspect"] if task == "regression" else CLASS_FIELD
        if task == "regression":
            given = {n: row[n] for n in names}
            predicted = {n: row[f"predicted_{n}"] for n in names}
            note = (f"label in doubt: {suspect} (given {row['given']:.2f}, the models say {row['predicted']:.2f}; "
                    f"label quality {row['label_quality']:.3f})")
        else:
            given, predicted = row["given"], row["predicted"]
            note = f"label in doubt: given {given}, the models say {predicted} (label quality {row['label_quality']:.3f})"
        tasks.append(photo_task(studio, row["path"], note, [prediction(GIVEN_VERSION, task, names, given),
                                                             prediction(version, task, names, predicted)],
                                suspect=suspect))
    return tasks
