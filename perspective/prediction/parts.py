"""Prediction over many images: part files per process, resume after a crash, one merged result.

A run over a million photos must survive a crash at image 700,000 and may run in several
processes (GPUs, machines). Both come from one layout: every process streams its rows, each with
the image's position in the input list (``index``), into its own part file in
``<result>.parts/``, flushed after every batch. When all processes are done, the first one merges
the parts (each sorted by index) into the result file in input order, streaming, and removes them.

``--resume`` reads which positions the parts (or a finished result file) already hold and predicts
only the others; a part file cut off mid-line by a SIGKILL loses only its last, partial row. Each
resumed run writes a new generation of part files (``g001-rank00000.csv``, ...), so earlier parts
are read, never rewritten, and each part file stays sorted by index.

Processes come from Lightning (``distributed.predict_distributed``: ``Trainer.predict`` with a
``BasePredictionWriter``, the shard of each rank chosen in the DataModule's ``setup``, so the same
code runs under ``--strategy ddp`` on one machine and under SLURM's ``srun``), or there is one
(``predict_local`` here: the ``Predictor``'s own fast loop, no Trainer).
"""

from __future__ import annotations

import csv
import heapq
import logging
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import InferConfig
from ..errors import UserError
from ..results import FLAG_COLUMNS, TEXT_COLUMNS, csv_value

log = logging.getLogger(__name__)

INDEX = "index"  # the extra first column of a part file: the image's position in the input list
PART_NAME = re.compile(r"g(\d+)-rank(\d+)\.csv$")


def parts_folder(result: str | os.PathLike) -> Path:
    """Where the part files of ``result`` live: ``<result>.parts/`` beside it."""
    result = Path(result)
    return result.with_name(result.name + ".parts")


def typed(row: dict[str, str]) -> dict[str, Any]:
    """A row read back from CSV text: numbers as floats, text as it was; an empty ``error`` stays "" (as
    ``Predictor.row`` makes it), every other empty cell is None."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value == "" or value is None:
            out[key] = "" if key == "error" else None
        elif key in TEXT_COLUMNS:
            out[key] = value
        elif key in FLAG_COLUMNS:
            out[key] = value == "True"
        else:
            out[key] = float(value)
    return out


class PartStore:
    """The part files of one result file.

    Args:
        result: the result file the parts merge into.
        columns: the prediction columns (``Predictor.columns``); a part file with other columns
            belongs to another model or other options and is refused on resume.
    """

    def __init__(self, result: str | os.PathLike, columns: Sequence[str]):
        self.result = Path(result)
        self.folder = parts_folder(result)
        self.columns = list(columns)

    def files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if PART_NAME.match(p.name))

    def generation(self, path: Path) -> int:
        return int(PART_NAME.match(path.name).group(1))

    def next_generation(self) -> int:
        return 1 + max((self.generation(p) for p in self.files()), default=0)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- before a run (the first process only) --------------------------------------------------

    def prepare(self, resume: bool, paths: Sequence[str], result_format: str) -> None:
        """Make the folder ready: emptied for a new run; for ``resume``, parts cut off mid-row are
        trimmed, and a finished result file (with no parts left) becomes generation 0."""
        if not resume:
            self.clear()
        self.folder.mkdir(parents=True, exist_ok=True)
        if not resume:
            return
        for part in self.files():
            trim_partial_row(part)
        if not self.files() and self.result.is_file():
            self._import_result(paths, result_format)

    def _import_result(self, paths: Sequence[str], result_format: str) -> None:
        """The rows of an earlier result file as part ``g000``, each matched to its input position."""
        frame = read_result(self.result, result_format)
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise UserError(f"--resume: {self.result} has no column {missing[0]!r}: it was written by another model "
                            "or with other options; run without --resume to replace it")
        positions: dict[str, list[int]] = {}
        for i, path in enumerate(paths):
            positions.setdefault(path, []).append(i)
        for indices in positions.values():
            indices.reverse()  # pop() takes the first position of a repeated path first
        rows, dropped = [], 0
        for row in frame[self.columns].to_dict("records"):
            indices = positions.get(row["path"])
            if not indices:
                dropped += 1
                continue
            rows.append((indices.pop(), row))
        if dropped:
            log.warning("--resume: %d row(s) of %s are for images no longer in the input; left out", dropped,
                        self.result)
        rows.sort(key=lambda item: item[0])
        with PartWriter(self.folder / "g000-rank00000.csv", self.columns) as writer:
            for index, row in rows:
                writer.write(index, {k: None if isinstance(v, float) and v != v else v for k, v in row.items()})

    # --- reading --------------------------------------------------------------------------------

    def read(self, path: Path) -> Iterator[dict[str, str]]:
        """The rows of one part file as text (complete lines only)."""
        with open(path, newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            if reader.fieldnames is None:  # empty: killed before its header was written
                return
            if reader.fieldnames != [INDEX, *self.columns]:
                raise UserError(f"--resume: {path} holds other columns than this run writes (another model or "
                                f"other options); run without --resume to start over")
            yield from reader

    def done(self, paths: Sequence[str]) -> np.ndarray:
        """A mask over the input positions: True where a part file holds the row.

        One pass over the parts also refuses to resume when their rows name other images than the
        input list has at their positions (the folder or the list changed since the interrupted run).
        """
        mask = np.zeros(len(paths), dtype=bool)
        for part in self.files():
            for row in self.read(part):
                index = int(row[INDEX])
                if index >= len(paths):
                    raise UserError(f"--resume: {part} has a row for image {index + 1}, but the input lists "
                                    f"{len(paths)}; the image list changed since that run: run without --resume")
                if paths[index] != row["path"]:
                    raise UserError(f"--resume: image {index + 1} was {row['path']} in the interrupted run and is "
                                    f"{paths[index]} now: the image list changed; run without --resume")
                mask[index] = True
        return mask

    def merged(self) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """``(index, generation, row)`` over every part, in input order, each position once."""
        def stream(part: Path) -> Iterator[tuple[int, int, dict[str, str]]]:
            generation = self.generation(part)
            for row in self.read(part):
                yield int(row[INDEX]), generation, row

        streams = [stream(part) for part in self.files()]
        last = -1
        for index, generation, row in heapq.merge(*streams, key=lambda item: item[0]):
            if index == last:  # cannot happen unless parts were copied by hand; the first copy wins
                log.warning("image %d appears in two part files; the second is ignored", index + 1)
                continue
            last = index
            row = typed(row)
            del row[INDEX]
            yield index, generation, row


def trim_partial_row(path: Path) -> None:
    """Cut a file after its last newline: a process killed mid-write leaves at most one partial row."""
    with open(path, "rb+") as file:
        size = file.seek(0, os.SEEK_END)
        if size == 0:
            return
        block = 1 << 16
        position = size
        while position > 0:
            start = max(0, position - block)
            file.seek(start)
            chunk = file.read(position - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                file.truncate(start + newline + 1)
                return
            position = start
        file.truncate(0)


def read_result(path: Path, result_format: str):
    """A finished result file (CSV, JSON or parquet) as a DataFrame."""
    import pandas as pd

    try:
        if result_format == "parquet":
            return pd.read_parquet(path)
        if result_format == "json":
            return pd.read_json(path, orient="records", dtype=False)
        return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"path": str, "label": str,
                                                                               "error": str})
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: the user's to decide
        raise UserError(f"--resume: cannot read {path} as {result_format} ({type(exc).__name__}: {exc}); run "
                        "without --resume to replace it") from None


class PartWriter:
    """Appends rows to one part file, flushed after every batch, so a killed process loses at most a batch."""

    def __init__(self, path: Path, columns: Sequence[str]):
        self.path, self.columns = path, list(columns)

    def __enter__(self) -> PartWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow([INDEX, *self.columns])
        self._file.flush()
        return self

    def write(self, index: int, row: dict[str, Any]) -> None:
        self._csv.writerow([index, *(csv_value(row.get(c)) for c in self.columns)])

    def flush(self) -> None:
        self._file.flush()

    def __exit__(self, *exc) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


def part_path(folder: Path, generation: int, rank: int) -> Path:
    return folder / f"g{generation:03d}-rank{rank:05d}.csv"


# --- one run --------------------------------------------------------------------------------------


@dataclass
class RunState:
    """What a process knows once the run is set up: its generation, the positions already done."""

    generation: int
    skipped: int  # images already in the parts (or result file) when this run started
    todo: np.ndarray  # input positions still to predict (all processes together), ascending


def start_run(store: PartStore, paths: Sequence[str], resume: bool, result_format: str, barrier=lambda: None,
              is_first: bool = True) -> RunState:
    """Prepare the parts (first process), then let every process read the same state.

    ``barrier`` waits for every process: between the preparation and the reading, and after the
    reading, so no process writes a new part before every one has read the old ones.
    """
    if is_first:
        store.prepare(resume, paths, result_format)
    barrier()
    done = np.zeros(len(paths), dtype=bool)
    if resume:
        done = store.done(paths)
    state = RunState(store.next_generation(), int(done.sum()), np.flatnonzero(~done))
    barrier()
    return state


def shard(todo: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This process's share: every ``world``-th position from ``rank`` (each part then stays sorted)."""
    return todo[rank::world]


@dataclass
class Outcome:
    is_main: bool  # the first process, which merges and prints; the others only predict
    generation: int  # of the part files this run wrote
    skipped: int  # images already predicted by an earlier run


def predict_local(predictor, paths: Sequence[str], store: PartStore, *, resume: bool, result_format: str,
                  batch_size: int, workers: int, progress: bool, log_every: int = InferConfig.log_every) -> Outcome:
    """One process: the ``Predictor``'s own loop (threads that take turns with the model on a CPU)."""
    state = start_run(store, paths, resume, result_format)
    todo = [paths[i] for i in state.todo]
    if state.skipped:
        log.info("--resume: %d of %d images are already predicted; %d to go", state.skipped, len(paths), len(todo))
    with PartWriter(part_path(store.folder, state.generation, 0), store.columns) as part:
        position = iter(state.todo)
        batch_rows = 0
        for row in predictor.predict_paths(todo, batch_size, workers, progress, log_every):
            part.write(int(next(position)), row)
            batch_rows += 1
            if batch_rows == batch_size:
                part.flush()
                batch_rows = 0
    return Outcome(True, state.generation, state.skipped)


@dataclass
class Merged:
    rows: int = 0
    unreadable: int = 0
    predicted_now: int = 0  # rows of this run's generation: each image predicted by this run counts once
    novel: int = 0  # rows flagged novel (a model with a novelty summary)


def merge(store: PartStore, generation: int) -> tuple[Iterator[dict[str, Any]], Merged]:
    """The rows of every part in input order (streamed), and their counts, complete once the rows are consumed."""
    counts = Merged()

    def rows() -> Iterator[dict[str, Any]]:
        for _, part_generation, row in store.merged():
            counts.rows += 1
            counts.unreadable += bool(row.get("error"))
            counts.predicted_now += part_generation == generation
            counts.novel += row.get("novel") is True
            yield row

    return rows(), counts
