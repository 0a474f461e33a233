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
    DEFAULT_PATIENCE,
    FIXMATCH_LEARNING_RATE,
    FIXMATCH_RATIO,
    FIXMATCH_THRESHOLD,
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
        description="Fine-tune a torchvision backbone to predict scores (regression) or labels "
                    "(classification) from images. Every flag has a default; long flags also accept "
                    "underscores (--batch_size).",
    )
    add_config_flag(p, "train")
    g = p.add_argument_group("model")
    g.add_argument("-b", "--backbone", default=D.backbone,
                   help=f"backbone: {', '.join(BACKBONE_NAMES)} (default {D.backbone})")
    g.add_argument("--weights", default=D.weights,
                   help="imagenet (torchvision's weights, cached under $TORCH_HOME), none (random "
                        "initialisation), a path to a state_dict file, or a checkpoint of train whose backbone "
                        "starts this run with a new head (its head too when it predicts the same targets or "
                        f"classes) (default {D.weights})")
    g.add_argument("--image-size", type=positive_int, default=None,
                   help="input side in pixels (default: the weights' own, 224 for most)")
    g.add_argument("--resize-mode", choices=RESIZE_MODES, default=D.resize_mode,
                   help="full = resize the whole image to a square (nothing cut off); crop = the weights' "
                        f"resize then centre crop (default {D.resize_mode})")
    g.add_argument("--output-activation", choices=("auto", *OUTPUT_ACTIVATIONS), default=D.output_activation,
                   help="regression output activation; auto = sigmoid when every training target lies "
                        f"in [0, 1] (default {D.output_activation})")
    g.add_argument("--dropout", type=fraction, default=D.dropout, help=f"dropout before the head (default {D.dropout:g})")
    g.add_argument("--freeze-epochs", type=non_negative_int, default=D.freeze_epochs,
                   help="train the head alone for this many epochs, then the backbone too (default: "
                        f"{PRETRAINED_FREEZE_EPOCHS} with pretrained --weights, 0 with none)")
    g.add_argument("--backbone-lr-scale", type=positive_float, default=D.backbone_lr_scale,
                   help="the backbone's learning rate as a multiple of the head's (default: "
                        f"{PRETRAINED_BACKBONE_LR_SCALE} with pretrained --weights, 1 with none)")

    g = p.add_argument_group("data")
    g.add_argument("-d", "--data", type=existing_path, default=None,
                   help="a folder with labels.csv + images/, a CSV file, or a folder of class subfolders "
                        "(default: the built-in synthetic car dataset, generated on first use into data/synthetic under "
                        "$PERSPECTIVE_HOME, the checkout, or ~/.cache/perspective for an installed package)")
    g.add_argument("--images", type=existing_path, default=None, help="images folder for a CSV given with -d (default: images/ beside it)")
    g.add_argument("--task", choices=TASKS, default=None,
                   help="force the task (default: detected from the data layout)")
    g.add_argument("--targets", type=comma_list, default=None,
                   help="regression target columns, comma-separated (default: the perspective_score_* "
                        "columns if any, else every numeric column)")
    g.add_argument("--label-column", default=None, help="class column of a CSV; naming one implies classification (default label)")
    g.add_argument("--val-fraction", type=fraction, default=D.val_fraction, help=f"validation share (default {D.val_fraction})")
    g.add_argument("--test-fraction", type=fraction, default=D.test_fraction, help=f"test share (default {D.test_fraction})")
    g.add_argument("--val-data", type=existing_path, default=None, help="separate validation data (same layout as -d)")
    g.add_argument("--test-data", type=existing_path, default=None, help="separate test data (same layout as -d)")
    g.add_argument("--augment", choices=AUGMENT_LEVELS, default=D.augment,
                   help="training augmentation: light = flip, rotation within 10 degrees, colour jitter; "
                        "strong adds a random resized crop; trivial = TrivialAugmentWide; randaugment = RandAugment. "
                        "Measured on 500 Fashion-MNIST photos from scratch (-e 15, one seed): light 0.796, randaugment "
                        f"0.793, trivial 0.771, strong 0.763 test accuracy (default {D.augment})")
    g.add_argument("--mix", choices=MIXES, default=D.mix,
                   help="mix training images in pairs, labels in the same share: mixup or cutmix for classes, "
                        "mixup or cmixup (partners with close scores) for regression. Measured from scratch, -e 15: "
                        "300 car photos (3 seeds) R2 0.134 with mixup, 0.095 with cmixup, 0.092 without (from a "
                        "pretrained backbone mixup lost: 0.238 against 0.314); 500 "
                        "Fashion-MNIST photos (one seed) accuracy 0.785 with cutmix, 0.766 with mixup, 0.796 without "
                        "(default none)")
    g.add_argument("--mix-alpha", type=positive_float, default=D.mix_alpha,
                   help="Beta(alpha, alpha) of the mixing share (default: 1 for mixup and cutmix, 2 for cmixup)")
    g.add_argument("--unlabelled", default=D.unlabelled, metavar="DIR",
                   help="classes: learn from these unlabelled photos too (subfolders too), as --semi says: a teacher "
                        "trains on the labelled ones first (folder <run>-teacher beside the run's) (default: none)")
    g.add_argument("--semi", choices=SEMI_METHODS, default=D.semi,
                   help="with --unlabelled: fixmatch = the teacher's model goes on learning, an unlabelled photo it is "
                        f"sure of (probability {FIXMATCH_THRESHOLD:g}) teaching its class for a strongly augmented view; "
                        "self-training = a student learns from the teacher's surest classes, fixed once. Measured on "
                        "500 Fashion-MNIST labels and 59,500 unlabelled from a SimCLR backbone: fixmatch 0.852 against "
                        "0.846 (3 seeds, a gain on each), self-training 0.838 against 0.849 (one seed) (default "
                        f"{D.semi})")
    g.add_argument("--fixmatch-steps", type=positive_int, default=D.fixmatch_steps,
                   help=f"--semi fixmatch: the phase's steps of -s labelled and {FIXMATCH_RATIO}x as many unlabelled "
                        f"photos, at a learning rate of {FIXMATCH_LEARNING_RATE:g} (the gain above took 600 steps, "
                        f"9 minutes on 2 CPU cores; 1,500 added nothing) (default {D.fixmatch_steps})")
    g.add_argument("--fixmatch-with-val", action="store_true",
                   help="--semi fixmatch: the phase learns from the validation photos too (it is scored at its end, "
                        "so it needs none to pick a step); its checkpoint then has no validation score and no "
                        "conformal calibration (calibrate it later: perspective evaluate --calibrate). Measured as "
                        "for --semi: 0.855 against 0.852 (3 seeds, a gain on each) (default: off)")
    g.add_argument("--pseudo-share", type=share_of_pool, default=D.pseudo_share,
                   help="--semi self-training: the share of the unlabelled photos the student learns from, the "
                        f"teacher's surest, as many for each class it predicts (default {D.pseudo_share:g})")
    g.add_argument("--strict", action="store_true",
                   help="decode every image before training and stop (exit 2) if any cannot be read "
                        "(default: unreadable images are skipped with a warning)")
    g.add_argument("--balance", choices=BALANCES, default=D.balance,
                   help="classification with uneven classes: sampler = draw every class equally often; loss = "
                        f"weigh the cross-entropy by inverse class frequency (default {D.balance})")
    g.add_argument("--allow-missing-targets", action="store_true",
                   help="regression: a CSV row may leave some targets blank; the loss and the metrics skip "
                        "the blank cells; a row with no target at all is still refused (default off: a blank "
                        "is an error)")
    g.add_argument("--flip-pairs", default=None,
                   help="targets or classes swapped by a horizontal flip, as a:b,c:d; none = no flips, for "
                        "images whose mirror is not a valid example (text, digits) (default: every *left* "
                        "name with its *right* counterpart)")

    g = p.add_argument_group("optimisation")
    g.add_argument("-e", "--max-epochs", type=positive_int, default=D.max_epochs,
                   help=f"maximum epochs; early stopping may end sooner (default {D.max_epochs})")
    g.add_argument("-l", "--learning-rate", type=positive_float, default=D.learning_rate,
                   help=f"initial learning rate (default {D.learning_rate:g})")
    g.add_argument("--loss", choices=LOSSES, default=D.loss,
                   help=f"regression loss; weighted_mse weighs errors by alpha + target (default {D.loss})")
    g.add_argument("--huber-delta", type=positive_float, default=D.huber_delta,
                   help=f"Huber loss delta (default {D.huber_delta:g})")
    g.add_argument("--weighted-mse-alpha", type=positive_float, default=D.weighted_mse_alpha,
                   help=f"weighted_mse alpha (default {D.weighted_mse_alpha:.4g})")
    g.add_argument("--label-smoothing", type=fraction, default=D.label_smoothing,
                   help=f"classification label smoothing (default {D.label_smoothing:g})")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=D.optimizer, help=f"(default {D.optimizer})")
    g.add_argument("--weight-decay", type=non_negative_float, default=D.weight_decay,
                   help=f"(default {D.weight_decay:g})")
    g.add_argument("--scheduler", choices=SCHEDULERS, default=D.scheduler,
                   help="cosine = linear warm-up then cosine decay; plateau = halve on a stalled "
                        f"validation metric (default {D.scheduler})")
    g.add_argument("--warmup-epochs", type=non_negative_float, default=D.warmup_epochs,
                   help=f"warm-up of the cosine schedule, in epochs (default {D.warmup_epochs:g})")
    g.add_argument("--patience", type=positive_int, default=D.patience,
                   help="early stopping: end the run after this many epochs without improvement, counted from "
                        "--min-epochs on (default: off under the cosine schedule, which -e sets the length of; "
                        f"{DEFAULT_PATIENCE} with the others)")
    g.add_argument("--min-epochs", type=non_negative_int, default=D.min_epochs,
                   help="epochs before a checkpoint may be called best or early stopping may end the run "
                        "(default: a quarter of --max-epochs under the cosine schedule, whose learning rate is "
                        "near its peak before that; 0 with the others)")
    g.add_argument("--ema-decay", type=ema_decay, default=D.ema_decay,
                   help="exponential moving average of the weights, used for validation, the saved checkpoints "
                        "and the test; its decay warms up with the step count, so short runs work too. "
                        f"0 turns it off (default {D.ema_decay})")
    g.add_argument("--lr-find", action="store_true",
                   help="run Lightning's learning-rate finder first (up to 100 batches), save its plot as "
                        "lr_find.png in the run folder and train with its suggestion instead of -l (default off)")
    g.add_argument("--seed", type=non_negative_int, default=D.seed,
                   help=f"seed for the split, initialisation and augmentation (default {D.seed})")

    g = p.add_argument_group("hardware and output")
    add_batch_flags(g, D, workers_help="DataLoader processes (default: min(CPU count, 8) beside a GPU; on the CPU one "
                                       "per 8 cores, the main process decoding between steps)")
    add_device_flags(g, D, device=False)
    add_precision_flag(g)
    g.add_argument("-c", "--checkpoint-dir", "--checkpoints-location", dest="checkpoints_location",
                   default=D.checkpoints_location,
                   help=f"checkpoint folder; runs go to <it>/<backbone>/<run>/ (default ./{D.checkpoints_location})")
    g.add_argument("--logs-location", default=D.logs_location,
                   help=f"folder of the loggers' files: <it>/<backbone>/<run>/ (default ./{D.logs_location})")
    g.add_argument("--logger", type=logger_names, default=D.logger,
                   help=f"experiment loggers, comma-separated: {', '.join(LOGGERS)}, or none; csv writes "
                        "metrics.csv with a row per epoch, mlflow and wandb (offline) need their package "
                        f"(default {D.logger})")
    g.add_argument("--run-name", default=None, help="name of this run's folders (default: a timestamp)")
    g.add_argument("--tta", action="store_true",
                   help="the final test report averages each image with its mirror (as infer --tta; default off)")
    g.add_argument("--resume", nargs="?", const="last", default=None, metavar="CHECKPOINT",
                   help="continue an interrupted run from this checkpoint (e.g. its last.ckpt); alone, or 'last': "
                        "the newest last.ckpt of this backbone under -c. With --unlabelled: the teacher's continues "
                        "it, the second phase's starts that phase again (default: start a new run)")
    add_quiet_flag(g)
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
