"""Self-supervised pretraining of a backbone on a folder of unlabelled photos.

    perspective pretrain -d ./all_photos -o backbone.ckpt                  # SimCLR, resnet18 from scratch
    perspective train -d ./labelled --weights backbone.ckpt                # then fine-tune on the labelled ones

Writes the backbone's weights (and its preprocessing) to -o once the run ends; checkpoints and logs go
where train's do, under pretrain-<backbone>/<run>/. Exit codes: 0 done, 2 usage or data error, 130
interrupted (resume with --resume).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..config import BACKBONE_NAMES, LOGGERS, PRETRAIN_METHODS, PretrainConfig
from .common import (
    ArgumentParser,
    add_batch_flags,
    add_config_flag,
    add_device_flags,
    add_output_flag,
    add_precision_flag,
    add_quiet_flag,
    config_of,
    existing_path,
    name_list,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
    run,
    setup_logging,
)
from .train import logger_names

D = PretrainConfig  # every default is PretrainConfig's


def get_args_parser(prog: str = "perspective pretrain") -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog,
        description="Pretrain a backbone on unlabelled images (self-supervised, with lightly): the output starts "
                    "`perspective train --weights FILE`. Long flags also accept underscores.",
        epilog="Guide and measured effects of the flags: docs/training.md",
    )
    add_config_flag(p)
    p.add_argument("-d", "--data", type=existing_path, required=True,
                   help="a folder of images, subfolders too; labels are ignored")
    add_output_flag(p, D.output, "the backbone file for train's --weights")
    p.add_argument("-b", "--backbone", default=D.backbone,
                   help=f"{name_list(BACKBONE_NAMES)} (default {D.backbone})")
    p.add_argument("--weights", default=D.weights,
                   help=f"start from none (random), imagenet or a weights file (default {D.weights})")
    p.add_argument("--method", choices=PRETRAIN_METHODS, default=D.method,
                   help=f"lightly's methods; dcl = simclr with a decoupled loss (default {D.method})")
    p.add_argument("--hflip-prob", type=probability, default=D.hflip_prob,
                   help=f"chance of a mirrored view; 0 where mirrors change scores (default {D.hflip_prob:g})")
    p.add_argument("--blur-prob", type=probability, default=D.blur_prob,
                   help="chance of a blurred view (default: the method's own, 0.5; byol 1.0 and 0.1)")
    p.add_argument("--image-size", type=positive_int, default=D.image_size,
                   help="side in pixels, train's too (default: the weights', mostly 224)")
    p.add_argument("-e", "--max-epochs", type=positive_int, default=D.max_epochs,
                   help=f"epochs (default {D.max_epochs})")
    p.add_argument("-l", "--learning-rate", type=positive_float, default=D.learning_rate,
                   help=f"AdamW's peak learning rate (default {D.learning_rate:g})")
    p.add_argument("--weight-decay", type=non_negative_float, default=D.weight_decay,
                   help=f"weight decay (default {D.weight_decay:g})")
    p.add_argument("--warmup-epochs", type=non_negative_float, default=D.warmup_epochs,
                   help=f"epochs of warm-up before the cosine decay (default {D.warmup_epochs:g})")
    add_batch_flags(p, D, workers_help="DataLoader processes (default: min(CPU count, 8) with a GPU, CPUs/8 "
                                       "without)")
    add_device_flags(p, D, device=False)
    add_precision_flag(p)
    p.add_argument("-c", "--checkpoint-dir", "--checkpoints-location", dest="checkpoints_location",
                   default=D.checkpoints_location,
                   help=f"checkpoint folder (default ./{D.checkpoints_location})")
    p.add_argument("--logs-location", default=D.logs_location,
                   help=f"the loggers' folder (default ./{D.logs_location})")
    p.add_argument("--logger", type=logger_names, default=D.logger,
                   help=f"{', '.join(LOGGERS)}, several or none (default {D.logger})")
    p.add_argument("--run-name", default=None, help="name of this run's folders (default: a timestamp)")
    p.add_argument("--resume", nargs="?", const="last", default=None, metavar="CHECKPOINT",
                   help="continue a run from this checkpoint; alone: the newest last.ckpt (default: a new run)")
    p.add_argument("--seed", type=non_negative_int, default=D.seed,
                   help=f"seed of weights, views and order (default {D.seed})")
    add_quiet_flag(p)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "perspective pretrain") -> int:
    args = get_args_parser(prog).parse_args(argv)
    setup_logging(args.quiet)
    from perspective.training.pretrain import pretrain

    result = pretrain(config_of(PretrainConfig, args))
    if not result.is_global_zero:
        return 0
    loss = f", final loss {result.final_loss:.4f}" if result.final_loss is not None else ""
    print(f"pretrained on {result.images} images ({result.unreadable} unreadable, skipped) in "
          f"{result.seconds:.0f} s{loss}; checkpoints: {result.run_dir}")
    print(f"backbone: {result.output} (perspective train --weights {result.output})")
    return 0


if __name__ == "__main__":
    run(main, "perspective pretrain")
