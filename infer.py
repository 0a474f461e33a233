"""Predict scores or labels for images with a trained checkpoint and write them to a CSV.

A checkout's shim for ``perspective infer`` (perspective/cli/infer.py): the same flags, run as
``python infer.py ...``.
"""

from perspective.cli.common import run
from perspective.cli.infer import main

if __name__ == "__main__":
    run(lambda: main(prog="infer.py"), "infer.py")
