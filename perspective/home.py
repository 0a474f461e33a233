"""Where the toolkit keeps the files it makes for itself (the built-in dataset).

``$PERSPECTIVE_HOME`` when set; else, in a checkout that can be written (a ``pyproject.toml``
beside the package), the checkout itself, so ``data/synthetic`` stays where a developer sees it;
else ``$XDG_CACHE_HOME/perspective`` (default ``~/.cache/perspective``), since an installed
package's folder is often not writable and is replaced by every upgrade.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_VARIABLE = "PERSPECTIVE_HOME"


def perspective_home() -> Path:
    configured = os.environ.get(HOME_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and os.access(checkout, os.W_OK):
        return checkout
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "perspective"


def default_data_dir() -> Path:
    """The built-in synthetic dataset's folder (generated on first use by ``training.ensure_default_dataset``)."""
    return perspective_home() / "data" / "synthetic"
