"""Reading a file that ``torch.save`` wrote: the one place the toolkit opens a checkpoint or a weights file.

Everything is read with ``torch.load(weights_only=True)``: a file that needs arbitrary pickles is
refused before any of its code can run. ``lazy`` maps the tensors instead of reading them (a caller
that wants only the hyperparameters or the epoch must not load a second copy of the weights); a file
in torch's old non-zip format cannot be mapped and is read whole.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError

ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
PICKLE_MAGIC = b"\x80"  # ... or, in its legacy format, a pickle (protocol 2 or later)


def _is_text(head: bytes) -> bool:
    try:
        return head.decode("utf-8").isprintable()
    except UnicodeDecodeError:
        return False


def _noun(label: str) -> str:
    return "checkpoint" if label == "checkpoint" else "weights file"


def _check_header(path: Path, label: str) -> None:
    """A file that is neither torch.save's zip nor its older pickle is refused from its first bytes."""
    with open(path, "rb") as file:
        head = file.read(4)
    if head != ZIP_MAGIC and head[:1] != PICKLE_MAGIC:
        raise UserError(f"{path}: not a {_noun(label)} (a .ckpt file that train writes; this one starts like "
                        f"{'a text file' if _is_text(head) else 'another kind of file'})")


def read_checkpoint(path: str | os.PathLike, label: str = "checkpoint", lazy: bool = False) -> Any:
    """The content of a file ``torch.save`` wrote, read safely; ``UserError`` (one line) when it cannot be.

    ``label`` names the file in the messages (``checkpoint``, ``--weights``): a missing file, a file of
    another kind, one that needs arbitrary Python objects, or one that is truncated or foreign.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{label} {path}: no such file")
    _check_header(path, label)
    try:
        if lazy:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # the legacy format cannot be mapped
                pass
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UserError(f"{label} {path} refused: it needs arbitrary Python objects to load, which could run "
                        f"code; only plain weights are accepted ({first})") from None
    except Exception as exc:  # noqa: BLE001 - truncated or foreign files are the user's data error
        raise UserError(f"{label} {path}: not a readable {_noun(label)} ({type(exc).__name__}: {exc})") from None
