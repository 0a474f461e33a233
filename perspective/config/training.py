"""The configs of the commands that train: ``RunConfig`` (what train and pretrain share), ``TrainConfig``,
``PretrainConfig`` and ``AuditConfig`` (each fold of an audit is a train run). Field names are the
long flags; each field's ``flag`` says its help, short flag, value check and -h group."""

from __future__ import annotations

from dataclasses import dataclass

from .backbones import BACKBONE_NAMES, DEFAULT_BACKBONE
from .choices import (
    AUGMENT_LEVELS,
    BALANCES,
    LOGGERS,
    LOSSES,
    MIXES,
    OPTIMIZERS,
    OUTPUT_ACTIVATIONS,
    PRETRAIN_METHODS,
    RESIZE_MODES,
    SCHEDULERS,
    SEMI_METHODS,
    TASKS,
)
from .flags import DATA, MODEL, OPTIMISATION, OUTPUT, flag, name_list
from .labelling import LabelStudioConfig, send_count_flag
from .shared import DeviceConfig, images_flag, output_flag, runtime_flag, tta_flag
from .tuning import (
    BUILT_IN_EPOCHS,
    BUILT_IN_IMAGE_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_PATIENCE,
    FIXMATCH_RATIO,
    PRETRAINED_BACKBONE_LR_SCALE,
    PRETRAINED_FREEZE_EPOCHS,
)
from .values import (
    average_decay,
    comma_list,
    existing_file,
    existing_path,
    fraction,
    logger_names,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
    share_of_pool,
)


@dataclass
class RunConfig(DeviceConfig):
    """What a training run of train and of pretrain both take: the backbone, the schedule, the folders."""

    backbone: str = flag(DEFAULT_BACKBONE, f"{name_list(BACKBONE_NAMES)} (default {{default}})", "-b", group=MODEL)
    weights: str = flag("imagenet", "imagenet, none (random), a state_dict file or a train checkpoint (default "
                                    "{default})", group=MODEL)
    image_size: int | None = flag(None, "side in pixels (default: the weights', mostly 224; "
                                        f"{BUILT_IN_IMAGE_SIZE} on the built-in data)", type=positive_int, group=MODEL)
    max_epochs: int | None = flag(None, f"maximum epochs (default {DEFAULT_EPOCHS}; {BUILT_IN_EPOCHS} on the built-in "
                                        "data)", "-e", type=positive_int, group=OPTIMISATION)
    learning_rate: float = flag(1e-3, "peak learning rate of the schedule (default {default:g})", "-l",
                                type=positive_float, group=OPTIMISATION)
    weight_decay: float = flag(1e-4, "weight decay (default {default:g})", type=non_negative_float, group=OPTIMISATION)
    warmup_epochs: float = flag(1.0, "epochs of warm-up before the cosine decay (default {default:g})",
                                type=non_negative_float, group=OPTIMISATION)
    seed: int = flag(42, "seed of every random draw: split, weights, augmentation, order (default {default})",
                     type=non_negative_int, group=OPTIMISATION)
    # None: default_loader_workers for the DataLoader, default_workers for threads
    workers: int | None = flag(None, "DataLoader processes (default: min(CPU count, 8) with a GPU, CPUs/8 without)")
    checkpoints_location: str = flag("checkpoints", "checkpoint folder (default ./{default})", "-c",
                                     long="--checkpoint-dir", aliases=("--checkpoints-location",), group=OUTPUT)
    logs_location: str = flag("lightning_logs", "the loggers' folder (default ./{default})", group=OUTPUT)
    logger: str = flag("tensorboard", f"{', '.join(LOGGERS)}, several or none (default {{default}})",
                       type=logger_names, group=OUTPUT)  # comma-separated names of LOGGERS, or none
    run_name: str | None = flag(None, "name of this run's folders (default: a timestamp)", group=OUTPUT)
    resume: str | None = flag(None, "continue a run from this checkpoint; alone: the newest last.ckpt (default: a new "
                                    "run)", nargs="?", const="last", metavar="CHECKPOINT", group=OUTPUT)


@dataclass
class TrainConfig(RunConfig):
    """Every setting of a training run; field names are train's long flags."""

    resize_mode: str = flag("full", "full squeezes, crop centre-crops (default {default})", choices=RESIZE_MODES,
                            group=MODEL)
    output_activation: str = flag("auto", "auto: sigmoid for targets in [0, 1] (default {default})",
                                  choices=("auto", *OUTPUT_ACTIVATIONS), group=MODEL)
    dropout: float = flag(0.0, "dropout before the head (default {default:g})", type=fraction, group=MODEL)
    freeze_epochs: int | None = flag(None, f"epochs of the head alone (default: {PRETRAINED_FREEZE_EPOCHS} with "
                                           "pretrained --weights, else 0)", type=non_negative_int, group=MODEL)
    backbone_lr_scale: float | None = flag(None, "backbone's learning rate over the head's (default: "
                                                 f"{PRETRAINED_BACKBONE_LR_SCALE} with pretrained --weights, else 1)",
                                           type=positive_float, group=MODEL)  # None: training.run.fine_tuning decides
    tta: bool = tta_flag()
    runtime: str = runtime_flag()  # the test report's
    data: str | None = flag(None, "labels.csv + images/, a CSV, or class subfolders (default: synthetic cars)", "-d",
                            type=existing_path, group=DATA)
    images: str | None = images_flag(group=DATA)
    task: str | None = flag(None, "force the task (default: from the data layout)", choices=TASKS, group=DATA)
    targets: list[str] | None = flag(None, "regression targets, comma-separated (default: perspective_score_*, else "
                                           "all numeric)", type=comma_list, group=DATA)
    label_column: str | None = flag(None, "a CSV's class column, for classes (default label)", group=DATA)
    val_fraction: float = flag(0.15, "validation share (default {default})", type=fraction, group=DATA)
    test_fraction: float = flag(0.15, "test share (default {default})", type=fraction, group=DATA)
    val_data: str | None = flag(None, "separate validation data (layout of -d)", type=existing_path, group=DATA)
    test_data: str | None = flag(None, "separate test data (layout of -d)", type=existing_path, group=DATA)
    augment: str = flag("light", "light = flip, small rotation, jitter; strong adds crops (default {default})",
                        choices=AUGMENT_LEVELS, group=DATA)
    mix: str = flag("none", "mix image pairs and labels: mixup, cutmix (classes), cmixup (scores) (default {default})",
                    choices=MIXES, group=DATA)
    # None: the method's own (1.0 for mixup and cutmix, 2.0 for cmixup)
    mix_alpha: float | None = flag(None, "Beta(alpha, alpha) mixing (default: 1, cmixup 2)", type=positive_float,
                                   group=DATA)
    unlabelled: str | None = flag(None, "classes: unlabelled photos to learn from too, after a teacher run (default: "
                                        "none)", metavar="DIR", group=DATA)
    semi: str = flag("fixmatch", "fixmatch: the teacher learns on; self-training: a student learns its labels "
                                 "(default {default})", choices=SEMI_METHODS, group=DATA)
    fixmatch_steps: int = flag(600, f"fixmatch steps of -s labelled, {FIXMATCH_RATIO}x unlabelled photos (default "
                                    "{default})", type=positive_int, group=DATA)
    fixmatch_with_val: bool = flag(False, "fixmatch learns from the validation photos too", group=DATA)
    pseudo_share: float = flag(0.1, "self-training: unlabelled share used (default {default:g})", type=share_of_pool,
                               group=DATA)
    strict: bool = flag(False, "decode every image first; stop (exit 2) at an unreadable one (default: skip it)",
                        group=DATA)
    balance: str = flag("none", "uneven classes: sampler = even draws; loss = weighted loss (default {default})",
                        choices=BALANCES, group=DATA)
    allow_missing_targets: bool = flag(False, "regression: skip blank targets in a CSV row", group=DATA)
    flip_pairs: str | None = flag(None, "names a flip swaps, a:b,c:d; none = no flips (default: *left* with *right*)",
                                  group=DATA)
    loss: str = flag("mse", "regression loss (default {default})", choices=LOSSES, group=OPTIMISATION)
    huber_delta: float = flag(0.1, "Huber loss delta (default {default:g})", type=positive_float, group=OPTIMISATION)
    weighted_mse_alpha: float = flag(1 / 30, "errors weigh alpha + target (default {default:.4g})", type=positive_float,
                                     group=OPTIMISATION)
    label_smoothing: float = flag(0.0, "classification label smoothing (default {default:g})", type=fraction,
                                  metavar="SHARE", group=OPTIMISATION)
    optimizer: str = flag("adamw", "optimiser (default {default})", choices=OPTIMIZERS, group=OPTIMISATION)
    scheduler: str = flag("cosine", "cosine = warm-up, cosine decay; plateau = halve on a stall (default {default})",
                          choices=SCHEDULERS, group=OPTIMISATION)
    patience: int | None = flag(None, f"early stopping: epochs without a gain (default: {DEFAULT_PATIENCE}; off under "
                                      "cosine)", type=positive_int, group=OPTIMISATION)
    min_epochs: int | None = flag(None, "epochs before a best checkpoint or a stop (default: -e/4 under cosine, else "
                                        "0)", type=non_negative_int, group=OPTIMISATION)
    ema_decay: float = flag(0.999, "weight average decay; 0 = off (default {default})", type=average_decay,
                            group=OPTIMISATION)
    lr_find: bool = flag(False, "learning rate from Lightning's finder, not -l", group=OPTIMISATION)
    test: bool = True  # not a flag: False skips the test report (search trials are judged on validation alone)


@dataclass
class PretrainConfig(RunConfig):
    """``perspective pretrain``: self-supervised pretraining of a backbone on unlabelled images."""

    data: str | None = flag(None, "a folder of images, subfolders too; labels are ignored", "-d", type=existing_path,
                            required=True)
    output: str = output_flag("backbone.ckpt", "the backbone file for train's --weights")
    method: str = flag("simclr", "lightly's methods; dcl = simclr with a decoupled loss (default {default})",
                       choices=PRETRAIN_METHODS)
    hflip_prob: float = flag(0.5, "chance of a mirrored view; 0 where mirrors change scores (default {default:g})",
                             type=probability)  # lightly's views' own mirror chance
    # None: the method's own (lightly's views: 0.5; BYOL 1.0 and 0.1)
    blur_prob: float | None = flag(None, "chance of a blurred view (default: the method's own, 0.5; byol 1.0 and "
                                         "0.1)", type=probability)
    weights: str = "none"  # self-supervised pretraining starts from random weights
    image_size: int | None = flag(None, "side in pixels, train's too (default: the weights', mostly 224)")
    max_epochs: int = flag(100, "epochs (default {default})")  # longer than a fine-tune: unlabelled photos teach slowly
    batch_size: int = 128  # contrastive losses compare every image of a batch with every other


FOLDS = 5  # the audit's folds when nothing sizes them
AUDIT = "audit"  # the -h heading of the audit's own flags


@dataclass
class AuditConfig(LabelStudioConfig):
    """``perspective audit``: the folds and the output, and where to send the worst rows; each fold's run takes
    train's flags."""

    # FOLDS, or with calibrate as many as make each fold's run like the model's (folds_like)
    folds: int | None = flag(None, f"training runs, each leaving one fold out (default: {FOLDS}; with --calibrate, as "
                                   "many as give each run the model's training size)", type=positive_int, group=AUDIT)
    # a short schedule: k runs of it, and a rough model is enough to question a label
    max_epochs: int = flag(8, "epochs of each fold's run (default {default})")
    output: str = output_flag("audit", "folder for audit.csv and worst.png", group=AUDIT)
    calibrate: str | None = flag(None, "store a conformal calibration from the out-of-fold errors in this checkpoint "
                                       "of the same data (default: none)", type=existing_file, metavar="MODEL.ckpt",
                                 group=AUDIT)  # a checkpoint to store the out-of-fold calibration in
    count: int = send_count_flag()
