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
    )
    add_config_flag(p, "pretrain")
    p.add_argument("-d", "--data", type=existing_path, required=True,
                   help="a folder of images, subfolders too; labels, if any, are ignored")
    add_output_flag(p, D.output, "the backbone file train's --weights reads (written when the run ends)")
    p.add_argument("-b", "--backbone", default=D.backbone,
                   help=f"backbone: {', '.join(BACKBONE_NAMES)} (default {D.backbone})")
    p.add_argument("--weights", default=D.weights,
                   help=f"start from: none (random), imagenet, or a weights file (default {D.weights})")
    p.add_argument("--method", choices=PRETRAIN_METHODS, default=D.method,
                   help="self-supervised method, lightly's losses and views (dcl: simclr's views with the decoupled "
                        "contrastive loss); measured on 3,000 car photos, -e 20: a "
                        "300-photo fine-tune reached R2 0.198 from simclr, 0.187 from vicreg, 0.092 from random "
                        "weights; on 59,500 Fashion-MNIST photos at 32 px, -e 18, a 500-photo fine-tune reached "
                        "0.846 accuracy from simclr, 0.839 from dcl with --blur-prob 0, 0.834 from byol (3 seeds "
                        "each; byol's momentum copy costs 27%% more time) "
                        f"(default {D.method})")
    p.add_argument("--hflip-prob", type=probability, default=D.hflip_prob,
                   help="chance that a view is mirrored; 0 where a mirror changes what the photo shows (a car's "
                        "left side becomes its right) and the scores must tell the two apart: measured on 3,000 car "
                        "photos, -e 20, a 300-photo fine-tune reached R2 0.203 from 0 and 0.188 from 0.5 (3 seeds) "
                        f"(default {D.hflip_prob:g})")
    p.add_argument("--blur-prob", type=probability, default=D.blur_prob,
                   help="chance that a view is blurred; on 59,500 Fashion-MNIST photos at 32 px, -e 18, a 500-photo "
                        "fine-tune reached 0.846 accuracy from simclr's own 0.5 and 0.841 from 0 (3 seeds each) "
                        "(default: the method's own, 0.5; byol 1.0 and 0.1 for its two views)")
    p.add_argument("--image-size", type=positive_int, default=D.image_size,
                   help="input side in pixels; train starts at the same size unless its --image-size says otherwise. "
                        "Half the training size costs a quarter: on 59,500 Fashion-MNIST photos (28 px), -e 18 at 32 px "
                        "took 67 min of 2 CPU cores and a 500-photo fine-tune at 64 px from it reached 0.846 accuracy, "
                        "as 21 epochs at 64 px did (0.845; 3 seeds each) (default: the weights' own, 224 for most)")
    p.add_argument("-e", "--max-epochs", type=positive_int, default=D.max_epochs,
                   help="epochs; measured on 3,000 unlabelled car photos at 64 px, a 300-photo fine-tune from it gained "
                        f"+0.089 R2 with -e 20, +0.126 with -e 40 and +0.199 with -e 100 (68 min of one CPU core, 167 s on an "
                        f"H200) (default {D.max_epochs})")
    p.add_argument("-l", "--learning-rate", type=positive_float, default=D.learning_rate,
                   help=f"AdamW learning rate, warm-up then cosine (default {D.learning_rate:g})")
    p.add_argument("--weight-decay", type=non_negative_float, default=D.weight_decay,
                   help=f"(default {D.weight_decay:g})")
    p.add_argument("--warmup-epochs", type=non_negative_float, default=D.warmup_epochs,
                   help=f"warm-up of the learning rate, in epochs (default {D.warmup_epochs:g})")
    add_batch_flags(p, D, workers_help="DataLoader processes (default: min(CPU count, 8) beside a GPU; on the CPU "
                                       "one per 8 cores)")
    add_device_flags(p, D, device=False)
    add_precision_flag(p)
    p.add_argument("-c", "--checkpoint-dir", "--checkpoints-location", dest="checkpoints_location",
                   default=D.checkpoints_location,
                   help=f"checkpoint folder; runs go to <it>/pretrain-<backbone>/<run>/ (default ./{D.checkpoints_location})")
    p.add_argument("--logs-location", default=D.logs_location,
                   help=f"folder of the loggers' files (default ./{D.logs_location})")
    p.add_argument("--logger", type=logger_names, default=D.logger,
                   help=f"experiment loggers, comma-separated: {', '.join(LOGGERS)}, or none (default {D.logger})")
    p.add_argument("--run-name", default=None, help="name of this run's folders (default: a timestamp)")
    p.add_argument("--resume", nargs="?", const="last", default=None, metavar="CHECKPOINT",
                   help="continue an interrupted run from this checkpoint (its last.ckpt); alone, or 'last': the "
                        "newest last.ckpt of this backbone's pretraining runs under -c (default: start a new run)")
    p.add_argument("--seed", type=non_negative_int, default=D.seed,
                   help=f"seed for initialisation, views and order (default {D.seed})")
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
