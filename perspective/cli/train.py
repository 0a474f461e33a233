"""Train a torchvision backbone with a regression or classification head.

    perspective train -b resnet18 -d ./my_data

At the end the best checkpoint is tested on the test split, the metrics are printed as a table,
and the last line is ``best checkpoint: <path>``. See README.md for data layouts and examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from ..config import TrainConfig
from ..config.flags import DATA, HARDWARE, MODEL, OPTIMISATION, OUTPUT
from .common import run, setup_logging
from .parser import CommandParser, command_parser

GROUPS = (MODEL, DATA, OPTIMISATION, HARDWARE, OUTPUT)  # train's -h headings
# The usage of a command that takes every train flag too (search, audit): its -h lists only a few of them.
WITH_TRAIN_FLAGS = "%(prog)s [-h] [options] [perspective train options]"
DESCRIPTION = ("Fine-tune a torchvision backbone to predict scores (regression) or classes from images. "
               "Long flags also accept underscores (--batch_size).")


def get_args_parser(prog: str = "perspective train") -> CommandParser:
    # --runtime sets the test report's runtime: taken, not listed (docs/prediction.md says it)
    return command_parser(prog, TrainConfig, groups=GROUPS, description=DESCRIPTION, hidden={"runtime"},
                          epilog="Guide, recipes and measured effects of the flags: docs/training.md")


def train_flags_hidden(*shown: str) -> set[str]:
    """train's flags that a command taking them all leaves out of its -h: all but ``shown`` (and -q)."""
    return {f.name for f in fields(TrainConfig)} - {*shown, "quiet"}


def main(argv: Sequence[str] | None = None, prog: str = "perspective train") -> int:
    cfg = get_args_parser(prog).parse_config(argv)
    setup_logging(cfg.quiet)
    from perspective.evaluation import format_table
    from perspective.training import train

    result = train(cfg)
    if not result.is_global_zero:
        return 0
    if result.test_table is not None:
        print("\ntest metrics of the best checkpoint:")
        print(format_table(result.test_table))
        print(f"test report: {Path(result.run_dir) / 'test_report' / 'report.html'}")
    if result.found_learning_rate is not None:
        print(f"learning rate found by --lr-find: {result.found_learning_rate:.3g}")
    print(f"best checkpoint: {result.best_checkpoint}")
    return 0


if __name__ == "__main__":
    run(main, "perspective train")
