"""``python -m perspective.search``: the same as ``perspective search``."""

from ..cli.common import run
from ..cli.search import main

run(main, "python -m perspective.search")
