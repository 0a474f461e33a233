"""``python -m perspective.export``: the same as ``perspective export``."""

from ..cli.common import run
from ..cli.export import main

run(main, "python -m perspective.export")
