"""A project's finished annotations as the toolkit's labels.csv, which ``perspective train -d`` reads.

One row a photo that has at least one annotation that was not skipped ("cancelled"). The rule for
several annotations of one photo: **for each target, the latest annotation that gives it** (by its
last change), so a reviewer's correction wins and a target one annotator skipped is taken from another;
a target no annotation gives stays blank, which training reads as a partial label. Pre-annotations are
never labels: a value counts only once an annotator submitted it. A score outside [0, 1] is clipped.

The ``filename`` column is the photo's path relative to the images folder of the CSV's folder (its
``images/`` or the folder itself), or the absolute path for a photo outside it.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import unescape

import pandas as pd

from ..data.tables import images_dir
from ..errors import UserError
from ..results import atomic_write
from .studio import CLASS_FIELD, PAGE, PHOTO, Studio, find_project, speaking_to

log = logging.getLogger(__name__)

NUMBER_TAG = re.compile(r"<Number\b[^>]*\bname=\"([^\"]+)\"")


@dataclass
class Answers:
    """What a project gave: the labels table, its task, and how many tasks had no finished annotation."""

    frame: pd.DataFrame  # path, then a column per target (or label)
    task: str
    waiting: int  # tasks without a finished annotation
    clipped: int = 0  # scores outside [0, 1], clipped


def interface_of(config: str) -> tuple[str, list[str]]:
    """(task, target names) from a project's labelling interface as ``studio.labelling_config`` writes it."""
    names = [unescape(n, {"&quot;": '"'}) for n in NUMBER_TAG.findall(config)]
    if names:
        return "regression", names
    if f'name="{CLASS_FIELD}"' in config and "<Choices" in config:
        return "classification", [CLASS_FIELD]
    raise UserError("this project's labelling interface has neither Number fields nor a Choices named "
                    f"{CLASS_FIELD!r}: it was not made by perspective select or audit")


def _when(annotation: dict[str, Any]) -> str:
    return str(annotation.get("updated_at") or annotation.get("created_at") or "")


def merged_values(annotations: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Each target's value from the latest annotation that gives it; skipped annotations count for nothing."""
    values: dict[str, Any] = {}
    for annotation in sorted((a for a in annotations if not a.get("was_cancelled")), key=_when):
        for item in annotation.get("result") or []:
            name, value = item.get("from_name"), item.get("value") or {}
            if name not in names:
                continue
            if "number" in value and value["number"] is not None:
                values[name] = float(value["number"])
            elif value.get("choices"):
                values[name] = str(value["choices"][0])
    return values


def fetch_answers(studio: Studio, title: str) -> Answers:
    """The project's finished annotations, one row a photo."""
    project = find_project(studio, title)
    if project is None:
        raise UserError(f"--project {title!r}: no such project on {studio.url}")
    task, names = interface_of(project.label_config)
    rows, waiting, clipped = [], 0, 0
    with speaking_to(studio.url):
        for item in studio.client.tasks.list(project=project.id, fields="all", page_size=PAGE):
            annotations = [a if isinstance(a, dict) else a.dict() for a in item.annotations or []]
            values = merged_values(annotations, names)
            photo = (item.data or {}).get(PHOTO)
            if not values or not photo:
                waiting += 1
                continue
            if task == "regression":
                for name, value in values.items():
                    if not 0.0 <= value <= 1.0:
                        values[name] = min(1.0, max(0.0, value))
                        clipped += 1
            rows.append({"path": str(studio.path_of(photo)), **{n: values.get(n) for n in names}})
    frame = pd.DataFrame(rows, columns=["path", *names])
    return Answers(frame, task, waiting, clipped)


def write_labels(answers: Answers, output: str | os.PathLike) -> Path:
    """The answers as labels.csv at ``output`` (atomically): filename relative to its images folder."""
    if answers.frame.empty:
        raise UserError("no photo of this project has a finished annotation yet: nothing to write")
    target = Path(output).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    base = images_dir(target.parent).resolve()

    def filename(path: str) -> str:
        try:
            return Path(path).resolve().relative_to(base).as_posix()
        except ValueError:
            return str(Path(path).resolve())

    frame = answers.frame.assign(filename=answers.frame["path"].map(filename)).drop(columns="path")
    frame = frame[["filename", *[c for c in frame.columns if c != "filename"]]].sort_values("filename")
    atomic_write(target, frame.to_csv(index=False))
    return target
