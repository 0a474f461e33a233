"""Streaming, atomic result files (CSV, JSON or parquet) that open cleanly in a spreadsheet or a parser.

Rows are written as they arrive to ``<name>.<pid>.partial`` beside the target and renamed onto it
when the writer closes, so a reader never sees half a file and an old result is only replaced by a
complete new one; the process id keeps two writers of the same file (parallel searches) apart. If
the run is interrupted (Ctrl-C), the rows so far are still renamed into place; after any other error
the old file is kept and the partial one removed.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError


def partial_path(path: Path) -> Path:
    """This process's temporary name for ``path``."""
    return path.with_name(f"{path.name}.{os.getpid()}.partial")


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: a reader never sees half a file."""
    path = Path(path)
    partial = partial_path(path)
    try:
        partial.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(partial, path)
    except OSError as exc:  # a folder that cannot be written, a full disk: the user's to fix, in one line
        raise UserError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(OSError):  # best effort: the error above says what is wrong
            partial.unlink(missing_ok=True)


def csv_float(value: float) -> str:
    """A float as a spreadsheet reads it: positional notation, shortest exact (6e-06 -> 0.000006)."""
    return np.format_float_positional(value, trim="-")


def csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return csv_float(value)
    return value


def _parquet_value(column: str, value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if column in TEXT_COLUMNS:
        return None if value == "" else str(value)
    if column in FLAG_COLUMNS:
        return bool(value)
    return float(value)


def _json_value(value: Any) -> Any:
    """JSON has no NaN: a missing number is null."""
    return None if isinstance(value, float) and value != value else value


PARQUET_ROWS = 65_536  # rows per parquet row group: memory stays bounded however many rows come
TEXT_COLUMNS = frozenset({"path", "label", "error", "true_label", "set"})  # a parquet file types every other column float64
FLAG_COLUMNS = frozenset({"novel"})  # true or false: a parquet bool, True/False in a CSV


def require_pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UserError("--format parquet needs pyarrow: pip install 'perspective[parquet]' (or pyarrow)") from None
    return pyarrow


class ResultWriter:
    """Context manager: ``with ResultWriter(path, columns, "csv") as w: w.write(row)``.

    Args:
        path: the final file.
        columns: column order (CSV header; key order in JSON objects).
        fmt: ``"csv"``, ``"json"`` (one JSON array of objects) or ``"parquet"`` (needs pyarrow;
            ``TEXT_COLUMNS`` are strings, ``FLAG_COLUMNS`` booleans, every other column float64, empty cells null).
    """

    def __init__(self, path: str | os.PathLike, columns: list[str], fmt: str = "csv"):
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.columns, self.fmt = columns, fmt
        self.count = 0
        self._batch: list[dict[str, Any]] = []
        if fmt == "parquet":
            require_pyarrow()

    def __enter__(self) -> ResultWriter:
        if self.path.is_dir():
            raise UserError(f"{self.path} is a folder; give a file name for the results")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.partial, "w", newline="", encoding="utf-8")
        except OSError as exc:
            raise UserError(f"{self.path}: cannot write it ({exc.strerror or exc})") from None
        if self.fmt == "csv":
            self._csv = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore")
            self._csv.writeheader()
        elif self.fmt == "parquet":
            self._file.close()
            self._parquet = None
        else:
            self._file.write("[")
        return self

    def _schema(self):
        pa = require_pyarrow()
        kinds = {**dict.fromkeys(TEXT_COLUMNS, pa.string()), **dict.fromkeys(FLAG_COLUMNS, pa.bool_())}
        return pa.schema([(c, kinds.get(c, pa.float64())) for c in self.columns])

    def _flush_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.partial, self._schema())
        columns = {c: [_parquet_value(c, row.get(c)) for row in self._batch] for c in self.columns}
        self._parquet.write_table(pa.table(columns, schema=self._parquet.schema))
        self._batch = []

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "csv":
            self._csv.writerow({k: csv_value(v) for k, v in row.items()})
        elif self.fmt == "parquet":
            self._batch.append(row)
            if len(self._batch) >= PARQUET_ROWS:
                self._flush_parquet()
        else:
            self._file.write(("," if self.count else "") + "\n  " + json.dumps({k: _json_value(row.get(k)) for k in self.columns}))
        self.count += 1

    def __exit__(self, exc_type, exc, traceback) -> None:
        if self.fmt == "parquet":
            if self._batch or self._parquet is None:
                self._flush_parquet()  # an empty result still gets its schema
            self._parquet.close()
        else:
            if self.fmt == "json":
                self._file.write("\n]\n")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            os.replace(self.partial, self.path)  # complete, or the rows so far of an interrupted run
        else:
            self.partial.unlink(missing_ok=True)
