"""Export a checkpoint to ONNX or TorchScript, checked against PyTorch before it is kept.

A checkout's shim for ``perspective export`` (perspective/cli/export.py): the same flags, run as
``python export.py ...``.
"""

from perspective.cli.common import run
from perspective.cli.export import main

if __name__ == "__main__":
    run(lambda: main(prog="export.py"), "export.py")
