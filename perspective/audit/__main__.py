"""``python -m perspective.audit``: the same as ``perspective audit``."""

from ..cli.audit import main
from ..cli.common import run

run(main, "python -m perspective.audit")
