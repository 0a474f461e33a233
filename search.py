"""Search hyperparameters (and backbones) with Optuna; every trial is a real training run.

A checkout's shim for ``perspective search`` (perspective/cli/search.py): the same flags, run as
``python search.py ...``.
"""

from perspective.cli.common import run
from perspective.cli.search import main

if __name__ == "__main__":
    run(lambda: main(prog="search.py"), "search.py")
