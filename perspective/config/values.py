"""The value checks of the flags: each reads a typed text and returns the value, or says in a few words
why the text is not one (``argparse.ArgumentTypeError``, which the command prints as its one-line error).

A ``Flag`` names its check as ``type``; the text of a ``--config`` file goes through the same check.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path

from ..errors import UserError
from .choices import parse_loggers


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def fraction(text: str) -> float:
    """A share in [0, 1): dropout, label smoothing, a split fraction."""
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def probability(text: str) -> float:
    """A chance in [0, 1]: 1 is a sure event (a view always blurred), unlike a share of a whole."""
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1 (a chance), got {text}")
    return value


def coverage_level(text: str) -> float:
    """``--interval``: a coverage strictly between 0 and 1."""
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1 (a coverage such as 0.9), got {text}")
    return value


def average_decay(text: str) -> float:
    """``--ema-decay``: 0 turns the average off; a decay below 0.5 would average almost nothing."""
    value = fraction(text)
    if 0 < value < 0.5:
        raise argparse.ArgumentTypeError(f"must be 0 (off) or a decay from 0.5 to below 1, got {text}")
    return value


def share_of_pool(text: str) -> float:
    """``--pseudo-share``: a share in (0, 1]; 1 is the whole pool, 0 would teach nothing."""
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, got {text}")
    return value


def lightning_devices(text: str) -> int | str:
    """``--devices``: a count (``2``) or what Lightning reads as a string (``auto``, ``0,1``, ``-1``)."""
    return int(text) if text.isdigit() else text


def port(text: str) -> int:
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number, 0 to 65535, got {value}")
    return value


def comma_list(text: str) -> list[str]:
    """``a, b,c`` -> ``["a", "b", "c"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]


def logger_names(text: str) -> str:
    """``--logger``: names of LOGGERS, comma-separated, or none; checked, kept as typed."""
    try:
        parse_loggers(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--logger {text}: ")) from None
    return text


SYNTH_SIDES = (32, 4096)  # the smallest and largest side of a synthetic image


def parse_size(text: str) -> tuple[int, int]:
    """``"320x240"`` -> (320, 240); ValueError for anything else or a side outside ``SYNTH_SIDES``."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"expected WIDTHxHEIGHT such as 320x240, got {text!r}")
    width, height = int(match[1]), int(match[2])
    low, high = SYNTH_SIDES
    if not (low <= width <= high and low <= height <= high):
        raise ValueError(f"each side must be {low} to {high} pixels, got {text!r}")
    return width, height


def width_x_height(text: str) -> tuple[int, int]:
    """``--size``: ``parse_size`` with its message as the flag's error."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def output_path(text: str) -> str:
    """Where results go: refused while parsing when a file stands where a folder of the path must be."""
    for parent in Path(text).parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{text}: {parent} is a file, not a folder")
            break
    return text


def existing_path(text: str) -> str:
    """A file or folder that must exist (data, images): checked while parsing."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"no such file or folder: {text}")
    return text


def existing_folder(text: str) -> str:
    """A folder that must exist (images to predict): checked while parsing."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"not a folder: {text}")
    return text


def existing_file(text: str) -> str:
    """A path that must name a file: checked while parsing, before any model library loads."""
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no such file: {text}" if not os.path.exists(text) else f"not a file: {text}")
    return text
