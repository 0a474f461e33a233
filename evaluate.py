"""Evaluate a checkpoint on labelled images: metrics beside baselines, plots and an HTML report.

A checkout's shim for ``perspective evaluate`` (perspective/cli/evaluate.py): the same flags, run as
``python evaluate.py ...``.
"""

from perspective.cli.common import run
from perspective.cli.evaluate import main

if __name__ == "__main__":
    run(lambda: main(prog="evaluate.py"), "evaluate.py")
