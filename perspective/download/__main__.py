"""``python -m perspective.download``: the same as ``perspective download``."""

from ..cli.common import run
from ..cli.download import main

run(main, "python -m perspective.download")
