"""Which images to predict: ``-i`` paths and glob patterns, a folder (``-d``), a list file (``--list``)."""

from __future__ import annotations

import glob
import logging
import os

from ..data import list_images, read_path_list
from ..errors import UserError

log = logging.getLogger(__name__)


def collect_paths(images: list[str], directory: str | None = None, recursive: bool = False,
                  listed: str | None = None) -> list[str]:
    """Expand ``-i`` patterns, ``-d`` and ``--list`` into a list of files, in that order.

    A named file that does not exist still gets its row (with the error); a pattern that matches
    nothing is a warning.
    """
    paths: list[str] = []
    for item in images:
        if glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                log.warning("%r matches no file", item)
            paths.extend(m for m in matches if os.path.isfile(m))
        else:
            paths.append(item)
    if directory is not None:
        if not os.path.isdir(directory):
            raise UserError(f"-d {directory}: not a folder")
        paths.extend(list_images(directory, recursive))
    if listed is not None:
        try:
            paths.extend(read_path_list(listed))
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise UserError(str(exc) if isinstance(exc, ValueError) else f"--list {listed}: {exc}") from None
    return paths
