"""Progress of long work: a bar on a terminal, log lines in a log, nothing with ``--quiet``.

A bar redraws one line of a terminal with carriage returns; written to a file (``> run.log 2>&1``,
``nohup``, CI, a scheduler) the same bar becomes thousands of frames. ``progress`` decides once,
for every command, which of the two a job gets: a tqdm bar where its stream is a terminal, else a
log line every so often with the count, the total, the rate and the time left.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any, Protocol, TypeVar

T = TypeVar("T")

LOG_SECONDS = 30.0  # between two progress lines in a log, for work that has no count of its own


def format_duration(seconds: float) -> str:
    """``95`` -> ``1m35s``, ``4000`` -> ``1h06m``; ``?`` for an unknown (infinite or NaN) time."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def draws_bar(quiet: bool = False, stream: IO[str] | None = None) -> bool:
    """Whether a progress bar can draw: not ``quiet``, and its stream (stderr unless named) is a terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not quiet and bool(isatty and isatty())


class Progress(Protocol):
    """What every kind of progress answers: a tqdm bar, ``LogLines`` and ``NoProgress``."""

    def update(self, n: int = 1) -> Any: ...

    def close(self) -> None: ...

    def __enter__(self) -> Progress: ...

    def __exit__(self, *exc: object) -> Any: ...


class NoProgress:
    """Progress that shows nothing (``--quiet``, or work too small to show); ``LogLines`` adds the lines."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LogLines(NoProgress):
    """A log line every ``every`` items, or every ``seconds`` (None: by count alone), before the end:
    ``desc: 2000 of 9000 images, 41.2 images/s, about 2m50s left``.

    The rate counts from the start, so a slow first batch (workers starting, a model compiling)
    weighs less and less. No line at the end: the command reports what it did.
    """

    def __init__(self, log: logging.Logger, total: int, *, desc: str = "", noun: str = "images", every: int = 0,
                 seconds: float | None = LOG_SECONDS) -> None:
        self.log, self.total, self.noun = log, total, noun
        self.prefix = f"{desc}: " if desc else ""
        self.every, self.seconds = every, seconds
        self.done, self.next = 0, every
        self.start = self.last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.done >= self.total:
            return
        now = time.perf_counter()
        by_count = bool(self.every) and self.done >= self.next
        by_time = self.seconds is not None and now - self.last >= self.seconds
        if not (by_count or by_time):
            return
        if self.every:
            self.next = (self.done // self.every + 1) * self.every
        self.last = now
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        left = (self.total - self.done) / rate if rate else float("inf")
        self.log.info("%s%d of %d %s, %.1f %s/s, about %s left", self.prefix, self.done, self.total, self.noun, rate,
                      self.noun, format_duration(left))


def progress(log: logging.Logger, total: int, *, show: bool = True, bar: bool = True, desc: str = "",
             unit: str = "img", noun: str = "images", every: int = 0, seconds: float | None = LOG_SECONDS,
             **bar_options: Any) -> Progress:
    """The progress of ``total`` items: a tqdm bar on stderr where it is a terminal, ``LogLines`` to ``log``
    elsewhere, nothing unless ``show``.

    ``bar=False``: log lines even on a terminal (the processes of a multi-process run other than the
    first, which draws the one bar). ``unit`` names an item on the bar (``img/s``), ``noun`` in a log line;
    ``every`` and ``seconds`` space the log lines (see ``LogLines``); ``bar_options`` go to tqdm.
    """
    if not show:
        return NoProgress()
    if bar and draws_bar():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, **bar_options)
    return LogLines(log, total, desc=desc, noun=noun, every=every, seconds=seconds)


def track(items: Iterable[T], log: logging.Logger, total: int, **how: Any) -> Iterator[T]:
    """Yield ``items``, counting each on ``progress(log, total, **how)``, closed at the end."""
    with progress(log, total, **how) as meter:
        for item in items:
            yield item
            meter.update(1)


def logs_beside_bar(show: bool = True) -> contextlib.AbstractContextManager:
    """Log lines written above a drawing bar instead of through it (tqdm's redirect), where a bar draws;
    elsewhere log lines need no help."""
    if not (show and draws_bar()):
        return contextlib.nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm()


# Lightning's loggers, under either of its package names.
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric", "lightning")


def without_lightning_chatter(record: logging.LogRecord) -> bool:
    """A log filter: Lightning's INFO lines are its own chatter (accelerators found, the AMP it uses, tips
    to install its cloud logger, why a loop stopped), and a run logs its hardware and precision in a
    line of its own; Lightning's warnings and errors pass."""
    return record.levelno >= logging.WARNING or not record.name.startswith(LIGHTNING_LOGGERS)


def quiet_lightning() -> None:
    """Keep Lightning's chatter and two warnings nobody can act on out of a run's output, for the commands
    and for the library alike (a notebook that calls ``train``): its INFO lines come from the loggers of
    its ``rank_zero`` helpers, which get the filter; the warnings are a deprecation inside Lightning and
    the model summary's size estimate in bf16 (it counts 32 bits; the table shows on a terminal only)."""
    import warnings

    for package in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logger = logging.getLogger(f"{package}.utilities.rank_zero")
        if without_lightning_chatter not in logger.filters:
            logger.addFilter(without_lightning_chatter)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    warnings.filterwarnings("ignore", message=r"Precision .* is not supported by the model summary")
