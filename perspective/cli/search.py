"""Search hyperparameters (and backbones) with Optuna; every trial is a real training run.

    perspective search --trials 30 -d ./my_data -e 15 --weights none --image-size 128
    perspective search --trials 20 -d ./my_data -b resnet18,efficientnet_b0 --space space.yaml

Flags of train stay fixed across trials; the space (default: learning rate, batch size, weight
decay, dropout, augmentation, loss) is searched. The study lives in --storage (SQLite in OUTDIR by
default): run the same command again to add trials. Writes OUTDIR/results.csv (best first) and
plots; the last line of stdout is a ready ``python train.py ...`` command (``perspective train`` takes the same flags) with the best parameters.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import fields

from ..config import DEFAULT_BACKBONE, DEFAULT_SPACE, METRICS, SAMPLERS, SEARCH_PARAMS, SearchConfig, TrainConfig
from ..errors import UserError
from .common import add_output_flag, positive_float, positive_int, run, setup_logging
from .train import train_flags_parser

D = SearchConfig  # every search default is SearchConfig's


def get_args_parser(prog: str = "perspective search") -> argparse.ArgumentParser:
    """train's parser (its flags are the fixed settings of every trial) plus the search flags."""
    p = train_flags_parser(prog, "data", "backbone", "checkpoints_location", "logs_location")
    p.description = (
        "Search hyperparameters with Optuna, every trial a training run. Every flag of perspective train "
        "applies too, fixed for every trial except the searched settings "
        f"({', '.join(DEFAULT_SPACE)}, or those of --space)."
    )
    p.epilog = "Guide: docs/search.md; every flag: docs/cli.md"
    folders = {"checkpoints_location": "checkpoint folder of the trials (default OUTDIR/checkpoints)",
               "logs_location": "TensorBoard folder of the trials (default OUTDIR/lightning_logs)"}
    for action in p._actions:  # -b, -c and --logs-location mean something slightly different here
        if action.dest == "backbone":
            action.help = f"backbone, or several comma-separated to search over them (default {DEFAULT_BACKBONE})"
        elif action.dest in folders:
            action.default, action.help = None, folders[action.dest]  # None: under OUTDIR
        elif action.dest in ("run_name", "resume"):
            action.help = argparse.SUPPRESS  # refused: trials are named by the search, a study resumes itself

    metrics = sorted({m for ms in METRICS.values() for m in ms})
    g = p.add_argument_group("search")
    g.add_argument("--trials", type=positive_int, default=D.trials,
                   help=f"trials to add to the study in this call (default {D.trials})")
    g.add_argument("--timeout", type=positive_float, default=D.timeout,
                   help="start no new trial after this many seconds (default: no limit)")
    add_output_flag(g, D.output, "results.csv, plots, the SQLite study and the trials' runs (OUTDIR)", "--outdir")
    g.add_argument("--storage", default=D.storage,
                   help="Optuna storage URL; postgresql://USER@HOST/DB for workers on several machines (default "
                        "sqlite:///OUTDIR/search.db)")
    g.add_argument("--heartbeat", type=positive_float, default=D.heartbeat,
                   help="seconds between a trial's heartbeats; a trial that misses 5 is failed and run again "
                        f"(default {D.heartbeat:g})")
    g.add_argument("--study", default=D.study,
                   help=f"study name; the same name and storage continue a study (default {D.study})")
    g.add_argument("--sampler", choices=SAMPLERS, default=D.sampler,
                   help=f"tpe (random for 10 trials, then model-based) or random (default {D.sampler})")
    g.add_argument("--metric", default=None,
                   help=f"validation metric to optimise: {', '.join(metrics)}; r2, acc and f1 are maximised "
                        "(default: val_mse for scores, val_loss for classes)")
    g.add_argument("--space", default=None,
                   help=f"YAML search space replacing the default; parameters: {', '.join(SEARCH_PARAMS)}")
    return p


def typed_flags(argv: Sequence[str] | None, prog: str = "perspective search") -> set[str]:
    """The settings (dests) the user typed, whatever their value: a parse with every default suppressed."""
    p = get_args_parser(prog)
    for action in p._actions:
        action.default = argparse.SUPPRESS
    return set(vars(p.parse_args(argv)))


def split_args(args: argparse.Namespace, typed: set[str]):
    """(TrainConfig, the train settings the user typed) from parsed flags."""
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    return TrainConfig(**values), {n: v for n, v in values.items() if n in typed}


def main(argv: Sequence[str] | None = None, prog: str = "perspective search") -> int:
    p = get_args_parser(prog)
    args = p.parse_args(argv)
    setup_logging(args.quiet)
    import optuna

    from perspective.search import run_search

    optuna.logging.disable_default_handler()  # Optuna's messages go through our logging set-up
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(optuna.logging.WARNING if args.quiet else optuna.logging.INFO)
    if args.run_name:
        raise UserError("--run-name is set by the search (<study>-trial<number>)")
    cfg, given = split_args(args, typed_flags(argv))
    settings = SearchConfig(**{f.name: getattr(args, f.name) for f in fields(SearchConfig)})
    result = run_search(settings, cfg, given)
    counts = ", ".join(f"{n} {s}" for s, n in result.counts.items())
    best = result.best
    print(f"study {result.study!r} in {result.storage}: {sum(result.counts.values())} trials ({counts})")
    print(f"best trial: #{best.number}, {result.metric} {best.value:.6g}; "
          + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items()))
    print(f"best checkpoint: {result.best_checkpoint}")
    print(f"results: {result.results_csv}" + "".join(f", {path}" for path in result.plots))
    print(f"its settings: {result.config} (perspective train --config {result.config} trains it again)")
    print(result.command)
    return 0


if __name__ == "__main__":
    run(main, "perspective search")
