"""Self-supervised pretraining of a backbone on a folder of unlabelled photos.

    perspective pretrain -d ./all_photos -o backbone.ckpt                  # SimCLR, resnet18 from scratch
    perspective train -d ./labelled --weights backbone.ckpt                # then fine-tune on the labelled ones

Writes the backbone's weights (and its preprocessing) to -o once the run ends; checkpoints and logs go
where train's do, under pretrain-<backbone>/<run>/. Exit codes: 0 done, 2 usage or data error, 130
interrupted (resume with --resume).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import PretrainConfig
from ..config.flags import HARDWARE, MODEL, OPTIMISATION, OUTPUT
from .common import run, setup_logging
from .parser import CommandParser, command_parser

DESCRIPTION = ("Pretrain a backbone on unlabelled images (self-supervised, with lightly): the output starts "
               "`perspective train --weights FILE`. Long flags also accept underscores.")


def get_args_parser(prog: str = "perspective pretrain") -> CommandParser:
    return command_parser(prog, PretrainConfig, groups=(MODEL, OPTIMISATION, HARDWARE, OUTPUT),
                          description=DESCRIPTION, epilog="Guide and measured effects of the flags: docs/training.md")


def main(argv: Sequence[str] | None = None, prog: str = "perspective pretrain") -> int:
    cfg = get_args_parser(prog).parse_config(argv)
    setup_logging(cfg.quiet)
    from perspective.training.pretrain import pretrain

    result = pretrain(cfg)
    if not result.is_global_zero:
        return 0
    loss = f", final loss {result.final_loss:.4f}" if result.final_loss is not None else ""
    print(f"pretrained on {result.images} images ({result.unreadable} unreadable, skipped) in "
          f"{result.seconds:.0f} s{loss}; checkpoints: {result.run_dir}")
    print(f"backbone: {result.output} (perspective train --weights {result.output})")
    return 0


if __name__ == "__main__":
    run(main, "perspective pretrain")
