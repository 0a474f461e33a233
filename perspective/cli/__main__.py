"""The ``perspective`` command: ``perspective <command> [flags]``, one subcommand per job.

Each subcommand is the module of the same name in this package, with the same flags as the
script of that name in a checkout (``perspective train -b resnet18`` is ``python train.py -b
resnet18``). Only the chosen command's module is imported, so ``perspective -h`` and a mistyped
command answer at once.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from .. import __version__
from .common import run

COMMANDS = {
    "train": "fine-tune a backbone on labelled images (scores or classes)",
    "pretrain": "pretrain a backbone on unlabelled images (self-supervised) for train --weights",
    "infer": "predict for images with a checkpoint (default: the shipped model)",
    "evaluate": "metrics and an HTML report of a checkpoint on labelled data",
    "serve": "an HTTP prediction server with micro-batching",
    "search": "hyperparameter search with Optuna; every trial a real training run",
    "export": "export a checkpoint to ONNX, TorchScript or OpenVINO (fp32 or int8), checked before it is kept",
    "download": "download the images of a URL list, verified and resumable",
    "synth": "render synthetic car photos labelled with perspective scores",
    "audit": "rank a data set's labels by how much a model that never saw them disagrees",
    "select": "which unlabelled photos to label next: uncertain ones, spread over what the photos show",
    "labels": "a Label Studio project's finished annotations as a labels.csv",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    return ("usage: perspective <command> [flags]   (perspective <command> -h lists a command's flags)\n\n"
            "commands:\n" + "\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), end="")
        sys.exit(0 if args else 2)
    if args[0] in ("-V", "--version"):
        print(f"perspective {__version__}")
        sys.exit(0)
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"perspective: error: unknown command {name!r}; choose one of: {', '.join(COMMANDS)} "
              "(see perspective -h)", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(f"{__package__}.{name}")
    prog = f"perspective {name}"
    run(lambda: module.main(rest, prog=prog), prog)


if __name__ == "__main__":
    main()
