"""``python -m perspective.synth``: the same as ``perspective synth``."""

from ..cli.common import run
from ..cli.synth import main

run(main, "python -m perspective.synth")
