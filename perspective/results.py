"""Streaming, atomic result files (CSV or JSON) that open cleanly in a spreadsheet or a parser.

Rows are written as they arrive to ``<name>.partial`` beside the target and renamed onto it when the
writer closes, so a reader never sees half a file and an old result is only replaced by a
complete new one. If the run is interrupted, the rows so far are still renamed into place.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

FORMATS = ("csv", "json")


class ResultWriter:
    """Context manager: ``with ResultWriter(path, columns, "csv") as w: w.write(row)``.

    Args:
        path: the final file.
        columns: column order (CSV header; key order in JSON objects).
        fmt: ``"csv"`` or ``"json"`` (one JSON array of objects).
    """

    def __init__(self, path: str | os.PathLike, columns: list[str], fmt: str = "csv"):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.columns, self.fmt = columns, fmt
        self.count = 0

    def __enter__(self) -> ResultWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.partial, "w", newline="", encoding="utf-8")
        if self.fmt == "csv":
            self._csv = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore")
            self._csv.writeheader()
        else:
            self._file.write("[")
        return self

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "csv":
            self._csv.writerow({k: ("" if v is None else v) for k, v in row.items()})
        else:
            self._file.write(("," if self.count else "") + "\n  " + json.dumps({k: row.get(k) for k in self.columns}))
        self.count += 1

    def __exit__(self, *exc_info) -> None:
        if self.fmt == "json":
            self._file.write("\n]\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.partial, self.path)
