"""Data: ``images`` (decode one image safely, list a folder), ``tables`` (labels CSV, targets, tasks,
splits) and ``datasets`` (Dataset, loaders, DataModule).

The names of ``images`` and ``tables`` are importable from here; they need neither torch nor
Lightning, so a command can check its paths and labels before it loads a model. ``datasets`` is
imported by name (``perspective.data.datasets``).
"""

from ..config import IMAGE_EXTENSIONS, MAX_PIXELS, TASKS, default_workers
from .images import (
    TooManyPixels,
    failure_reason,
    find_unreadable,
    list_images,
    load_image,
    load_resized,
    read_path_list,
)
from .tables import (
    LABELS_CSV,
    SCORE_PREFIX,
    LabelledData,
    read_csv_checked,
    read_labelled_data,
    split_data,
)

__all__ = [
    "IMAGE_EXTENSIONS", "LABELS_CSV", "MAX_PIXELS", "SCORE_PREFIX", "TASKS", "LabelledData", "TooManyPixels",
    "default_workers", "failure_reason", "find_unreadable", "list_images", "load_image", "load_resized",
    "read_csv_checked", "read_labelled_data", "read_path_list", "split_data",
]
