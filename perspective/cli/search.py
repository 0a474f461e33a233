"""Search hyperparameters (and backbones) with Optuna; every trial is a real training run.

    perspective search --trials 30 -d ./my_data -e 15 --weights none --image-size 128
    perspective search --trials 20 -d ./my_data -b resnet18,efficientnet_b0 --space space.yaml

Flags of train stay fixed across trials; the space (default: learning rate, batch size, weight
decay, dropout, augmentation, loss) is searched. The study lives in --storage (SQLite in OUTDIR by
default): run the same command again to add trials. Writes OUTDIR/results.csv (best first) and
plots; the last line of stdout is a ready ``python train.py ...`` command (``perspective train`` takes the same flags) with the best parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from ..config import TrainConfig
from ..errors import UserError
from ..search.settings import DEFAULT_SPACE, SEARCH, SearchConfig, TrialConfig
from .common import run, setup_logging
from .parser import CommandParser, Parsed, command_parser
from .train import WITH_TRAIN_FLAGS, train_flags_hidden

# train's flags listed in -h: those a search reads its own way (TrialConfig), and -d
SHOWN = ("backbone", "data", "checkpoints_location", "logs_location")
DESCRIPTION = ("Search hyperparameters with Optuna, every trial a training run. Every flag of perspective train "
               "applies too, fixed for every trial except the searched settings "
               f"({', '.join(DEFAULT_SPACE)}, or those of --space).")


def get_args_parser(prog: str = "perspective search") -> CommandParser:
    """Every train flag (the fixed settings of every trial) and the search's own."""
    return command_parser(prog, TrialConfig, SearchConfig, groups=(SEARCH,), hidden=train_flags_hidden(*SHOWN),
                          usage=WITH_TRAIN_FLAGS, description=DESCRIPTION,
                          epilog="Guide: docs/search.md; every flag: docs/cli.md")


def trial_settings(parsed: Parsed) -> tuple[TrialConfig, dict[str, Any]]:
    """(the trials' fixed settings, the train settings the user typed or gave in --config) from one parse."""
    train_fields = {f.name for f in fields(TrainConfig)}
    return parsed.config(TrialConfig), {n: v for n, v in parsed.typed.items() if n in train_fields}


def main(argv: Sequence[str] | None = None, prog: str = "perspective search") -> int:
    parsed = get_args_parser(prog).parse(argv)
    cfg, given = trial_settings(parsed)
    setup_logging(cfg.quiet)
    import optuna

    from perspective.search import run_search

    optuna.logging.disable_default_handler()  # Optuna's messages go through our logging set-up
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(optuna.logging.WARNING if cfg.quiet else optuna.logging.INFO)
    if cfg.run_name:
        raise UserError("--run-name is set by the search (<study>-trial<number>)")
    result = run_search(parsed.config(SearchConfig), cfg, given)
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
