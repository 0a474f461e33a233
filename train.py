"""Train a torchvision backbone with a regression or classification head.

A checkout's shim for ``perspective train`` (perspective/cli/train.py): the same flags, run as
``python train.py ...``.
"""

from perspective.cli.common import run
from perspective.cli.train import main

if __name__ == "__main__":
    run(lambda: main(prog="train.py"), "train.py")
