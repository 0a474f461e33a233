"""
Layouts (``read_labelled_data``):

- a folder with ``labels.csv`` and ``images/`` (or ``imgs/``; else the folder itself);
- a CSV file, its images in ``--images DIR`` (default: as for a folder, beside the CSV);
- a folder of class subfolders (torchvision's ImageFolder layout): classification.

A CSV has a ``filename`` column. It is a classification set when it has the label column
(``label``, or ``--label-column``) or ``--task classification`` says so; otherwise a regression set
whose targets are ``--targets``, else every ``perspective_score_*`` column (the car-perspective
format, whose other numeric columns such as ``azimuth`` are metadata), else every numeric column.

Images are anything Pillow reads: EXIF orientation is applied and every mode (RGBA, palette,
grayscale, 16-bit) becomes 8-bit RGB.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import IMAGE_EXTENSIONS, LABELS_CSV, SCORE_PREFIX, TASKS
from ..errors import UserError

log = logging.getLogger(__name__)



@dataclass
class LabelledData:
    """Image paths with their targets.

    Args:
        frame: a ``path`` column (absolute paths) plus one column per target (regression) or a
            ``label`` column of class names (classification).
        task: ``"regression"`` or ``"classification"``.
        names: target column names, or the sorted class names.
        source: what was read, for messages.
    """

    frame: pd.DataFrame
    task: str
    names: list[str]
    source: str

    def targets(self) -> np.ndarray:
        """Float targets ``(n, len(names))`` or integer class ids ``(n,)``."""
        if self.task == "regression":
            return self.frame[self.names].to_numpy(dtype=np.float32)
        index = {name: i for i, name in enumerate(self.names)}
        return self.frame["label"].map(index).to_numpy(dtype=np.int64)


def images_dir(base: Path) -> Path:
    """Where a labels.csv in ``base`` finds its images: ``images/`` or ``imgs/`` in it, else ``base`` itself."""
    for name in ("images", "imgs"):
        if (base / name).is_dir():
            return base / name
    return base


def _csv_lines(rows: pd.Series, limit: int = 5) -> str:
    """The file's line numbers (line 1 is the header) of the first ``limit`` rows where ``rows`` is True."""
    return ", ".join(str(i + 2) for i in np.flatnonzero(rows.to_numpy())[:limit])


def read_csv_checked(csv_path: Path) -> pd.DataFrame:
    """A labels CSV read as text, refused with one line when unreadable, without filenames or empty."""
    try:
        # index_col=False: a trailing comma on each row must not turn the first column into the index
        frame = pd.read_csv(csv_path, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())  # pandas ends some messages with a newline: keep this one line
        raise UserError(f"{csv_path}: not a readable CSV ({reason})") from None
    if "filename" not in frame.columns:
        raise UserError(f"{csv_path}: no 'filename' column (columns: {', '.join(map(str, frame.columns))})")
    if frame.empty:
        raise UserError(f"{csv_path}: no rows")
    blank = frame["filename"].isna()  # pandas 3 keeps NaN through astype(str)
    if blank.any():
        raise UserError(f"{csv_path}: no filename on line(s) {_csv_lines(blank)}")
    duplicated = frame["filename"].astype(str)[frame["filename"].duplicated()].unique().tolist()
    if duplicated:
        raise UserError(f"{csv_path}: {len(duplicated)} duplicate filename(s), each must be listed once: "
                        f"{', '.join(duplicated[:5])}")
    return frame


def _resolve(images: Path, name: str) -> str:
    """The absolute path of a listed image; a name no file can have (a NUL byte) stays as is, reported missing."""
    try:
        return str((images / name).resolve())
    except (ValueError, OSError, RuntimeError):
        return str(images / name)


def _names(paths: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(os.path.basename(p) for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _keep_existing(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Drop rows whose image is missing or empty (cheap to find before training), with one warning each."""
    checks = (("not found", lambda p: not os.path.isfile(p)), ("empty (0 bytes)", lambda p: os.path.getsize(p) == 0))
    for problem, is_bad in checks:
        bad = frame["path"].map(is_bad)
        if bad.any():
            log.warning("%s: %d image(s) %s, skipped: %s", source, int(bad.sum()), problem,
                        _names(frame.loc[bad, "path"].tolist()))
            frame = frame[~bad].reset_index(drop=True)
    if frame.empty:
        raise UserError(f"{source}: none of the listed images exists")
    return frame


def _mostly_numeric(column: pd.Series) -> bool:
    """A text column whose values are mostly numbers: a target with stray entries, not metadata."""
    if pd.api.types.is_numeric_dtype(column):
        return False
    numbers = pd.to_numeric(column, errors="coerce")
    return numbers.notna().sum() >= 0.5 * column.notna().sum() > 0


def _stray_values(frame: pd.DataFrame, column: str) -> str:
    numbers = pd.to_numeric(frame[column], errors="coerce")
    stray = frame[column].notna() & numbers.isna()
    if not stray.any():
        return ""
    return f": {frame[column][stray].iloc[0]!r} on line(s) {_csv_lines(stray)}"


def _from_csv(
    csv_path: Path,
    images: Path | None,
    task: str | None,
    targets: Sequence[str] | None,
    label_column: str | None,
    allow_missing: bool = False,
    skip_bad_files: bool = True,
    partial_targets: bool = False,
) -> LabelledData:
    frame = read_csv_checked(csv_path)
    images = images or images_dir(csv_path.parent)
    if not images.is_dir():
        raise UserError(f"--images {images}: not a folder")
    source = str(csv_path)
    paths = frame["filename"].astype(str).map(lambda f: _resolve(images, f))
    label_col = label_column or "label"
    if task is None:
        task = "classification" if (label_column or "label" in frame.columns) else "regression"
    if task == "classification":
        if label_col not in frame.columns:
            raise UserError(f"{source}: no label column {label_col!r} for classification (use --label-column)")
        labels = frame[label_col]
        if labels.isna().any() and not allow_missing:
            raise UserError(f"{source}: {int(labels.isna().sum())} row(s) without a {label_col!r} value")
        out = pd.DataFrame({"path": paths, "label": labels.map(lambda v: str(v) if pd.notna(v) else None)})
        out = _keep_existing(out, source) if skip_bad_files else out
        return LabelledData(out, task, sorted(out["label"].dropna().unique()), source)

    excluded = {"filename", label_col}
    if targets:
        unknown = [t for t in targets if t not in frame.columns]
        if unknown:
            raise UserError(f"{source}: unknown target column(s) {', '.join(unknown)}")
        non_numeric = [t for t in targets if not pd.api.types.is_numeric_dtype(frame[t])]
        if non_numeric:
            raise UserError(f"{source}: target column(s) {', '.join(non_numeric)} are not numeric"
                            f"{_stray_values(frame, non_numeric[0])}")
        names = list(targets)
    else:
        candidates = [c for c in frame.columns if c not in excluded]
        scored = [c for c in candidates if str(c).startswith(SCORE_PREFIX)]
        for column in scored or candidates:  # with score columns, the others are metadata
            if _mostly_numeric(frame[column]):
                raise UserError(f"{source}: target column {column} is not numeric{_stray_values(frame, column)}")
        names = [c for c in frame.columns if c not in excluded and pd.api.types.is_numeric_dtype(frame[c])]
        scores = [c for c in names if str(c).startswith(SCORE_PREFIX)]
        names = scores or names  # car-perspective format: its other numeric columns are metadata
        if not names:
            raise UserError(f"{source}: no numeric target columns")
    if not allow_missing:
        blank = frame[names].isna()
        if partial_targets and blank.all(axis=1).any():
            raise UserError(f"{source}: no target value at all on line(s) {_csv_lines(blank.all(axis=1))} "
                            "(--allow-missing-targets needs at least one per row)")
        if not partial_targets and blank.any(axis=1).any():
            raise UserError(f"{source}: missing target values on line(s) {_csv_lines(blank.any(axis=1))} "
                            "(--allow-missing-targets trains on the cells that have one)")
    out = pd.concat([paths.rename("path"), frame[names].astype(np.float64)], axis=1)
    out = _keep_existing(out, source) if skip_bad_files else out
    return LabelledData(out, "regression", [str(n) for n in names], source)


def _from_image_folder(root: Path) -> LabelledData:
    from torchvision.datasets.folder import find_classes, make_dataset  # torchvision's ImageFolder rules

    try:
        classes, class_to_idx = find_classes(str(root))
        samples = make_dataset(str(root), class_to_idx, extensions=IMAGE_EXTENSIONS)
    except (FileNotFoundError, OSError) as exc:
        raise UserError(
            f"{root}: neither {LABELS_CSV} with images nor class subfolders with images ({exc})"
        ) from None
    frame = pd.DataFrame({"path": [str(Path(p).resolve()) for p, _ in samples], "label": [classes[i] for _, i in samples]})
    used = sorted(frame["label"].unique())
    if len(used) < 2:
        raise UserError(f"{root}: classification needs at least two class folders with images")
    return LabelledData(frame, "classification", used, str(root))


def read_labelled_data(
    data: str | os.PathLike,
    images: str | os.PathLike | None = None,
    task: str | None = None,
    targets: Sequence[str] | None = None,
    label_column: str | None = None,
    allow_missing: bool = False,
    skip_bad_files: bool = True,
    partial_targets: bool = False,
) -> LabelledData:
    """Read a dataset in any supported layout (see the module docstring).

    Args:
        data: a folder or a CSV file.
        images: the images folder for a CSV (default: ``images/`` or ``imgs/`` beside it).
        task: force ``"regression"`` or ``"classification"``; detected from the layout when None.
        targets: regression target columns (default: every numeric column).
        label_column: the class column of a CSV (default ``label``); implies classification.
        allow_missing: keep rows whose target or label is missing (NaN / None) instead of refusing
            the file; evaluation reports such rows and leaves them out of the metrics.
        skip_bad_files: drop rows whose image is missing or empty, with a warning; False keeps them
            (``--strict`` then reports every bad image together).
        partial_targets: a regression row may leave some targets blank (NaN; ``--allow-missing-targets``),
            though not all of them.
    """
    if task is not None and task not in TASKS:
        raise UserError(f"--task must be one of {', '.join(TASKS)}, not {task!r}")
    path = Path(data)
    images_path = Path(images) if images else None
    if path.is_file():
        return _from_csv(path, images_path, task, targets, label_column, allow_missing, skip_bad_files,
                         partial_targets)
    if not path.is_dir():
        raise UserError(f"data {path}: no such file or folder")
    if (path / LABELS_CSV).is_file():
        return _from_csv(path / LABELS_CSV, images_path or images_dir(path), task, targets, label_column, allow_missing,
                         skip_bad_files, partial_targets)
    if task == "regression":
        raise UserError(f"{path}: regression needs {LABELS_CSV} (a filename column and numeric targets)")
    return _from_image_folder(path)


def split_data(
    data: LabelledData, val_fraction: float, test_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Random train/val/test split, stratified by class for classification.

    Rows are shuffled with ``seed``; for classification each class is spread evenly over the
    ordering (row k of a class of size n sits at position k/n), so every prefix holds the classes
    in their overall proportions. Test takes the first rows, validation the next, train the rest.
    """
    for name, fraction in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if not 0 <= fraction < 1:
            raise UserError(f"{name} must be in [0, 1), got {fraction}")
    if val_fraction + test_fraction >= 1:
        raise UserError("--val-fraction plus --test-fraction must leave rows for training")
    rng = np.random.default_rng(seed)
    frame = data.frame.iloc[rng.permutation(len(data.frame))].reset_index(drop=True)
    if data.task == "classification":
        groups = frame.groupby("label", sort=False)["label"]
        key = (groups.cumcount() + rng.random(len(frame))) / groups.transform("size")
        frame = frame.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)
    n_test = round(len(frame) * test_fraction)
    n_val = round(len(frame) * val_fraction)
    test, val, train = frame[:n_test], frame[n_test : n_test + n_val], frame[n_test + n_val :]
    return train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True)
