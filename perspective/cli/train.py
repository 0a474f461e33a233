"""Train a torchvision backbone with a regression or classification head.

    perspective train -b resnet18 -d ./my_data

At the end the best checkpoint is tested on the test split, the metrics are printed as a table,
and the last line is ``best checkpoint: <path>``. See README.md for data layouts and examples.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..config import (
    AUGMENT_LEVELS,
    BACKBONE_NAMES,
    BALANCES,
    BUILT_IN_EPOCHS,
    BUILT_IN_IMAGE_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_PATIENCE,
    FIXMATCH_RATIO,
    LOGGERS,
    LOSSES,
    MIXES,
    OPTIMIZERS,
    OUTPUT_ACTIVATIONS,
    PRETRAINED_BACKBONE_LR_SCALE,
    PRETRAINED_FREEZE_EPOCHS,
    RESIZE_MODES,
    SCHEDULERS,
    SEMI_METHODS,
    TASKS,
    TrainConfig,
    parse_loggers,
)
from ..errors import UserError
from .common import (
    ArgumentParser,
    add_batch_flags,
    add_config_flag,
    add_device_flags,
    add_precision_flag,
    add_quiet_flag,
    config_of,
    existing_path,
    fraction,
    name_list,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    run,
    setup_logging,
)


def ema_decay(text: str) -> float:
    value = fraction(text)
    if 0 < value < 0.5:
        raise argparse.ArgumentTypeError(f"must be 0 (off) or a decay from 0.5 to below 1, got {text}")
    return value


def share_of_pool(text: str) -> float:
    """``--pseudo-share``: a share in (0, 1], as ``training.self_training`` takes it; 1 is the whole pool."""
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, got {text}")
    return value


def comma_list(text: str) -> list[str]:
    """``a, b,c`` -> ``["a", "b", "c"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]


def logger_names(text: str) -> str:
    try:
        parse_loggers(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--logger {text}: ")) from None
    return text


def get_args_parser(prog: str = "perspective train") -> argparse.ArgumentParser:
    D = TrainConfig  # every default is TrainConfig's

    p = ArgumentParser(
        prog=prog,
        description="Fine-tune a torchvision backbone to predict scores (regression) or classes from images. "
                    "Long flags also accept underscores (--batch_size).",
        epilog="Guide, recipes and measured effects of the flags: docs/training.md",
    )
    add_config_flag(p)
    g = p.add_argument_group("model")
    g.add_argument("-b", "--backbone", default=D.backbone, help=f"{name_list(BACKBONE_NAMES)} (default {D.backbone})")
    g.add_argument("--weights", default=D.weights,
                   help=f"imagenet, none, a state_dict file or a train checkpoint (default {D.weights})")
    g.add_argument("--image-size", type=positive_int, default=None,
                   help=f"side in pixels (default: the weights', mostly 224; {BUILT_IN_IMAGE_SIZE} on the built-in data)")
    g.add_argument("--resize-mode", choices=RESIZE_MODES, default=D.resize_mode,
                   help=f"full squeezes, crop centre-crops (default {D.resize_mode})")
    g.add_argument("--output-activation", choices=("auto", *OUTPUT_ACTIVATIONS), default=D.output_activation,
                   help=f"auto: sigmoid for targets in [0, 1] (default {D.output_activation})")
    g.add_argument("--dropout", type=fraction, default=D.dropout, help=f"dropout before the head (default {D.dropout:g})")
    g.add_argument("--freeze-epochs", type=non_negative_int, default=D.freeze_epochs,
                   help=f"epochs of the head alone (default: {PRETRAINED_FREEZE_EPOCHS} with pretrained --weights, else 0)")
    g.add_argument("--backbone-lr-scale", type=positive_float, default=D.backbone_lr_scale,
                   help="backbone's learning rate over the head's (default: "
                        f"{PRETRAINED_BACKBONE_LR_SCALE} with pretrained --weights, else 1)")

    g = p.add_argument_group("data")
    g.add_argument("-d", "--data", type=existing_path, default=None,
                   help="labels.csv + images/, a CSV, or class subfolders (default: synthetic cars)")
    g.add_argument("--images", type=existing_path, default=None,
                   help="images of a CSV -d (default: images/ beside it)")
    g.add_argument("--task", choices=TASKS, default=None, help="force the task (default: from the data layout)")
    g.add_argument("--targets", type=comma_list, default=None,
                   help="regression targets, comma-separated (default: perspective_score_*, else all numeric)")
    g.add_argument("--label-column", default=None,
                   help="a CSV's class column, for classes (default label)")
    g.add_argument("--val-fraction", type=fraction, default=D.val_fraction, help=f"validation share (default {D.val_fraction})")
    g.add_argument("--test-fraction", type=fraction, default=D.test_fraction, help=f"test share (default {D.test_fraction})")
    g.add_argument("--val-data", type=existing_path, default=None, help="separate validation data (layout of -d)")
    g.add_argument("--test-data", type=existing_path, default=None, help="separate test data (layout of -d)")
    g.add_argument("--augment", choices=AUGMENT_LEVELS, default=D.augment,
                   help=f"light = flip, small rotation, jitter; strong adds crops (default {D.augment})")
    g.add_argument("--mix", choices=MIXES, default=D.mix,
                   help=f"mix image pairs and labels: mixup, cutmix (classes), cmixup (scores) (default {D.mix})")
    g.add_argument("--mix-alpha", type=positive_float, default=D.mix_alpha,
                   help="Beta(alpha, alpha) mixing (default: 1, cmixup 2)")
    g.add_argument("--unlabelled", default=D.unlabelled, metavar="DIR",
                   help="classes: unlabelled photos to learn from too, after a teacher run (default: none)")
    g.add_argument("--semi", choices=SEMI_METHODS, default=D.semi,
                   help="fixmatch: the teacher learns on; self-training: a student learns its labels (default "
                        f"{D.semi})")
    g.add_argument("--fixmatch-steps", type=positive_int, default=D.fixmatch_steps,
                   help=f"fixmatch steps of -s labelled, {FIXMATCH_RATIO}x unlabelled photos (default {D.fixmatch_steps})")
    g.add_argument("--fixmatch-with-val", action="store_true",
                   help="fixmatch learns from the validation photos too")
    g.add_argument("--pseudo-share", type=share_of_pool, default=D.pseudo_share,
                   help=f"self-training: unlabelled share used (default {D.pseudo_share:g})")
    g.add_argument("--strict", action="store_true",
                   help="decode every image first; stop (exit 2) at an unreadable one (default: skip it)")
    g.add_argument("--balance", choices=BALANCES, default=D.balance,
                   help=f"uneven classes: sampler = even draws; loss = weighted loss (default {D.balance})")
    g.add_argument("--allow-missing-targets", action="store_true",
                   help="regression: skip blank targets in a CSV row")
    g.add_argument("--flip-pairs", default=None,
                   help="names a flip swaps, a:b,c:d; none = no flips (default: *left* with *right*)")

    g = p.add_argument_group("optimisation")
    g.add_argument("-e", "--max-epochs", type=positive_int, default=D.max_epochs,
                   help=f"maximum epochs (default {DEFAULT_EPOCHS}; {BUILT_IN_EPOCHS} on the built-in data)")
    g.add_argument("-l", "--learning-rate", type=positive_float, default=D.learning_rate,
                   help=f"initial learning rate (default {D.learning_rate:g})")
    g.add_argument("--loss", choices=LOSSES, default=D.loss, help=f"regression loss (default {D.loss})")
    g.add_argument("--huber-delta", type=positive_float, default=D.huber_delta,
                   help=f"Huber loss delta (default {D.huber_delta:g})")
    g.add_argument("--weighted-mse-alpha", type=positive_float, default=D.weighted_mse_alpha,
                   help=f"errors weigh alpha + target (default {D.weighted_mse_alpha:.4g})")
    g.add_argument("--label-smoothing", type=fraction, default=D.label_smoothing, metavar="SHARE",
                   help=f"classification label smoothing (default {D.label_smoothing:g})")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=D.optimizer, help=f"optimiser (default {D.optimizer})")
    g.add_argument("--weight-decay", type=non_negative_float, default=D.weight_decay,
                   help=f"weight decay (default {D.weight_decay:g})")
    g.add_argument("--scheduler", choices=SCHEDULERS, default=D.scheduler,
                   help=f"cosine = warm-up, cosine decay; plateau = halve on a stall (default {D.scheduler})")
    g.add_argument("--warmup-epochs", type=non_negative_float, default=D.warmup_epochs,
                   help=f"epochs of the cosine warm-up (default {D.warmup_epochs:g})")
    g.add_argument("--patience", type=positive_int, default=D.patience,
                   help=f"early stopping: epochs without a gain (default: {DEFAULT_PATIENCE}; off under cosine)")
    g.add_argument("--min-epochs", type=non_negative_int, default=D.min_epochs,
                   help="epochs before a best checkpoint or a stop (default: -e/4 under cosine, else 0)")
    g.add_argument("--ema-decay", type=ema_decay, default=D.ema_decay,
                   help=f"weight average decay; 0 = off (default {D.ema_decay})")
    g.add_argument("--lr-find", action="store_true",
                   help="learning rate from Lightning's finder, not -l")
    g.add_argument("--seed", type=non_negative_int, default=D.seed,
                   help=f"seed of split, weights, augmentation (default {D.seed})")

    g = p.add_argument_group("hardware and output")
    add_batch_flags(g, D, workers_help="DataLoader processes (default: min(CPU count, 8) with a GPU, CPUs/8 "
                                       "without)")
    add_device_flags(g, D, device=False)
    add_precision_flag(g)
    g.add_argument("-c", "--checkpoint-dir", "--checkpoints-location", dest="checkpoints_location",
                   default=D.checkpoints_location,
                   help=f"checkpoint folder (default ./{D.checkpoints_location})")
    g.add_argument("--logs-location", default=D.logs_location,
                   help=f"the loggers' folder (default ./{D.logs_location})")
    g.add_argument("--logger", type=logger_names, default=D.logger,
                   help=f"{', '.join(LOGGERS)}, several or none (default {D.logger})")
    g.add_argument("--run-name", default=None, help="name of this run's folders (default: a timestamp)")
    g.add_argument("--tta", action="store_true", help="test report with infer's --tta")
    g.add_argument("--resume", nargs="?", const="last", default=None, metavar="CHECKPOINT",
                   help="continue a run from this checkpoint; alone: the newest last.ckpt (default: a new run)")
    add_quiet_flag(g)
    return p


def train_flags_parser(prog: str, *shown: str) -> argparse.ArgumentParser:
    """train's parser for a command that also takes every train flag (search, audit).

    Its ``-h`` lists the command's own flags, the shared ones and the train flags in ``shown`` (dests
    whose meaning the command changes); the usage line names the rest, so two screens hold it.
    """
    p = get_args_parser(prog)
    p.usage = "%(prog)s [-h] [options] [perspective train options]"
    for action in p._actions:
        if action.dest not in {"help", "config", "quiet", *shown}:
            action.help = argparse.SUPPRESS
    for group in p._action_groups:  # the few train flags shown go under "options", not a heading each
        if group is not p._optionals:
            p._optionals._group_actions += [a for a in group._group_actions if a.help != argparse.SUPPRESS]
            group._group_actions = []
    return p


def main(argv: Sequence[str] | None = None, prog: str = "perspective train") -> int:
    args = get_args_parser(prog).parse_args(argv)
    setup_logging(args.quiet)
    from perspective.evaluation import format_table
    from perspective.training import train

    result = train(config_of(TrainConfig, args))
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
