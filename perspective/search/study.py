"""Hyperparameter search: an Optuna study whose trials are real training runs.

The space it draws from, and the metrics, are in ``search.space``.

``run_search(SearchConfig(...), TrainConfig(...))`` is what ``perspective search`` calls. The choices, and why:

- Every trial is ``perspective.training.train`` in this process (not a subprocess of train), with
  its own run name, so its checkpoints and TensorBoard logs sit under OUTDIR like any run's and a
  pruning callback can watch it epoch by epoch.
- The study lives in an RDB storage (SQLite in OUTDIR by default). A repeated or interrupted search
  with the same storage and study name loads the study and adds trials; a heartbeat marks the trial
  of a killed search as failed instead of leaving it "running" forever.
- Optuna's median pruner stops a run whose metric after an epoch is worse than the median of earlier
  trials at the same epoch. A trial that raises (out of memory, a combination a backbone refuses) is
  recorded as failed, with its error, and the search goes on.
- The value of a trial is the metric at the epoch of its best checkpoint (the one train() keeps by
  val_loss, or val_acc for classification), so a trial's value, its checkpoint and the printed
  train command all describe the same model.
- Every trial uses the same ``--seed``: the same split and initialisation, so trials differ only by
  their parameters.

Outputs: ``OUTDIR/results.csv`` (every trial of the study, best first, rewritten atomically after
each trial), ``optimization_history.png`` and ``param_importances.png``, and a ready train command.
"""

from __future__ import annotations

import gc
import importlib.util
import io
import logging
import math
import random
import re
import shlex
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
import pytorch_lightning as pl
import torch
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from ..config import RUN_CONFIG, TrainConfig, config_yaml
from ..data import LabelledData
from ..errors import NothingDone, UserError
from ..models.backbones import default_preprocessing
from ..models.transforms import parse_flip_pairs
from ..progress import format_duration
from ..results import ResultWriter, atomic_write
from ..training import read_training_data, train
from .settings import DEFAULT_METRIC, SearchConfig
from .space import LOSS_SETTINGS, check_metric, choices_of, fit_space, read_space, suggest

log = logging.getLogger(__name__)

# Pruning waits for 5 finished trials (a median of fewer says little) and never acts on the first
# two epochs, whose metric mostly reflects the learning-rate warm-up.
PRUNER_STARTUP_TRIALS = 5
PRUNER_WARMUP_EPOCHS = 2
# A running trial refreshes its heartbeat every --heartbeat seconds (a minute); one silent for 5 beats
# (its worker was killed) is marked failed when the next trial of the study starts, and retried.
GRACE_BEATS = 5
MAX_RETRIES = 2

STATE_ORDER = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.RUNNING: 2, TrialState.WAITING: 3,
               TrialState.FAIL: 4}


@dataclass
class SearchResult:
    study: str
    storage: str
    metric: str
    counts: dict[str, int]
    results_csv: Path
    plots: list[Path] = field(default_factory=list)
    best: FrozenTrial | None = None
    best_checkpoint: str | None = None
    command: str | None = None
    config: Path | None = None  # the best trial's settings as a YAML file for --config


# ----------------------------------------------------------------------------- checks before any trial


def _many_devices(devices: str | int | None) -> bool:
    if isinstance(devices, int):
        return devices > 1 or devices == -1
    if isinstance(devices, str):
        if devices.strip() in ("-1", "auto"):
            return torch.cuda.device_count() > 1
        return len([d for d in devices.split(",") if d.strip()]) > 1
    return False


def check_single_process(cfg: TrainConfig) -> None:
    """Trials run one after another in this process; DDP would re-run the script per device."""
    many = cfg.num_nodes > 1 or "ddp" in str(cfg.strategy) or (cfg.gpus or 0) > 1 or _many_devices(cfg.devices)
    if many:
        raise UserError("search runs its trials one after another in one process on one device; drop "
                        "--devices/--strategy/--num-nodes/-g N>1 (for several GPUs, run one search per GPU "
                        "with the same --storage and --study)")
    if cfg.resume:
        raise UserError("--resume is a train flag; search continues a study through --storage and --study")


def inspect_data(cfg: TrainConfig) -> LabelledData:
    """Read the labels once before any trial: the task decides the metrics and the space."""
    return read_training_data(cfg)


def check_fixed_settings(base: TrainConfig, backbones: list[str], space: Mapping[str, BaseDistribution]) -> None:
    """What every trial shares is checked once, before any trial: a bad value would fail each of them.

    The same checks as ``train`` makes (backbone names, input size, resize mode, flip pairs); a
    searched image size is checked per trial.
    """
    size = None if "image_size" in space else base.image_size
    for backbone in backbones:
        default_preprocessing(backbone, size, base.resize_mode)
    parse_flip_pairs(base.flip_pairs)


def safe_url(url: str) -> str:
    """The storage URL with any password hidden, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given
        return url


POSTGRES_SCHEMES = ("postgresql", "postgres")
OPEN_ATTEMPTS = 8  # workers that start together race to create Optuna's tables; the losers try again


def storage_url(url: str) -> str:
    """``url`` with the PostgreSQL driver this toolkit installs: ``postgresql://`` means psycopg 3.

    SQLAlchemy reads a bare ``postgresql://`` as psycopg2, which the ``postgres`` extra does not
    install; ``postgresql+psycopg://`` names psycopg 3. A driver that is missing is one line that
    says what to install or write.
    """
    scheme, sep, rest = url.partition("://")
    dialect, _, driver = scheme.partition("+")
    if not sep or dialect not in POSTGRES_SCHEMES:
        return url
    driver = driver or "psycopg"
    module = {"psycopg": "psycopg", "psycopg2": "psycopg2"}.get(driver, driver)
    if importlib.util.find_spec(module) is None:
        hint = ("pip install 'perspective[postgres]'" if driver == "psycopg"
                else "write postgresql:// (psycopg 3, pip install 'perspective[postgres]')")
        raise UserError(f"--storage {safe_url(url)}: needs the {module} driver: {hint}")
    return f"postgresql+{driver}://{rest}"


def open_storage(url: str, heartbeat: float = SearchConfig.heartbeat) -> optuna.storages.RDBStorage:
    """The study storage; a URL that cannot be opened is a UserError (before any trial).

    A trial whose worker stops refreshing its heartbeat (killed) for ``GRACE_BEATS`` beats is marked
    failed by the next trial any worker starts, and queued again with the same parameters
    (``RetryHeartbeatStaleTrialCallback``, up to ``MAX_RETRIES`` times). Workers started at the same
    moment on a fresh database race to create its tables; a worker that loses the race (a duplicate
    key or an existing table) opens the storage again, after a short random wait.
    """
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    url = storage_url(url)
    interval = max(1, round(heartbeat))
    for attempt in range(OPEN_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)
                return optuna.storages.RDBStorage(url, heartbeat_interval=interval, grace_period=interval * GRACE_BEATS,
                                                  heartbeat_stale_trial_callback=retry)
        except (IntegrityError, ProgrammingError) as exc:
            if attempt == OPEN_ATTEMPTS - 1:
                raise UserError(f"--storage {safe_url(url)}: cannot open it ({_one_line(exc)})") from None
            time.sleep(random.uniform(0.2, 1.0) * (attempt + 1))
        except OperationalError as exc:
            reason = _one_line(exc.orig if exc.orig is not None else exc)
            if url.startswith("sqlite"):
                raise UserError(f"--storage {safe_url(url)}: cannot open it ({reason})") from None
            raise UserError(f"--storage {safe_url(url)}: cannot reach the {where(url)} ({reason})") from None
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds; all mean "cannot open"
            raise UserError(f"--storage {safe_url(url)}: cannot open it ({_one_line(exc)})") from None
    raise AssertionError("unreachable")


def where(url: str) -> str:
    """``database D on host H`` (or the socket folder) of a storage URL, for messages."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"file {parsed.database}"
    host = parsed.host or parsed.query.get("host") or "the local socket"
    port = f":{parsed.port}" if parsed.port else ""
    return f"database {parsed.database} on {host}{port}"


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    raise UserError(f"--sampler must be random or tpe, not {name!r}")


def open_study(
    storage: optuna.storages.BaseStorage, name: str, metric: str, direction: str,
    sampler: str, seed: int, pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Create the study or load it; a study run with another metric is refused.

    The sampler's seed is ``seed`` plus the number of trials already in the study: a fresh study is
    reproducible, and a continued one does not redraw the parameters of its first call.
    """
    pruner = pruner or optuna.pruners.MedianPruner(
        n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_EPOCHS
    )
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True,
                                pruner=pruner)
    known = study.user_attrs.get("metric")
    if known is None:
        study.set_user_attr("metric", metric)
    elif known != metric:
        raise UserError(f"study {name!r} optimises {known}, not {metric}; use --metric {known} or another --study")
    if study.direction.name.lower() != direction:
        raise UserError(f"study {name!r} is set to {study.direction.name.lower()}, but {metric} is to {direction}")
    study.sampler = make_sampler(sampler, seed + len(study.trials))
    return study


# ----------------------------------------------------------------------------- one trial


class PruningCallback(pl.Callback):
    """Reports the metric to the trial after every validation epoch; stops a trial the pruner drops.

    optuna-integration's callback is built on the ``lightning.pytorch`` package, not on
    ``pytorch_lightning``, so this project's Trainer would refuse it. Raising TrialPruned inside
    fit ends the run at once (Lightning tears down and re-raises), so a pruned trial skips the test.
    It also keeps every epoch's validation metrics, from which the trial's value is taken.
    """

    def __init__(self, trial: optuna.Trial, metric: str):
        super().__init__()
        self.trial, self.metric = trial, metric
        self.monitor: tuple[str, str] = ("val_loss", "min")
        self.history: list[dict[str, float]] = []
        self.start_epoch = 0  # the checkpoint callback's: no best checkpoint before it

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.monitor = getattr(pl_module, "monitor", self.monitor)
        self.start_epoch = getattr(trainer.checkpoint_callback, "start_epoch", 0)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        metrics["epoch"] = trainer.current_epoch
        self.history.append(metrics)
        value = metrics.get(self.metric, math.nan)
        epoch = trainer.current_epoch
        if math.isfinite(value):
            self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch} ({self.metric} {value:.4g})")

    def value_of_best_checkpoint(self) -> float:
        """The metric at the epoch train() keeps: the first with the best monitored value from
        ``--min-epochs`` on (the checkpoint callback's ``start_epoch``), else the last epoch."""
        name, mode = self.monitor
        sign = 1 if mode == "min" else -1
        candidates = [i for i, m in enumerate(self.history) if m["epoch"] >= self.start_epoch]
        candidates = candidates or [len(self.history) - 1]
        scored = [(sign * self.history[i][name], i) for i in candidates
                  if math.isfinite(self.history[i].get(name, math.nan))]
        if not scored:
            raise RuntimeError(f"no validation epoch produced a finite {name}")
        value = self.history[min(scored)[1]].get(self.metric, math.nan)
        if not math.isfinite(value):
            raise RuntimeError(f"{self.metric} is {value} at the best epoch")
        return value


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _free_memory() -> None:
    """Drop what a finished or crashed trial left, so an out-of-memory trial does not doom the next."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _run_name(study: str, number: int, cfg: TrainConfig) -> str:
    """``<study>-trial0007``; a timestamp is added when an older study left folders of that name."""
    name = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', study)}-trial{number:04d}"
    for root in (cfg.checkpoints_location, cfg.logs_location):
        if (Path(root) / cfg.backbone / name).exists():
            return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return name


class Objective:
    """One trial: draw parameters, train with the pruning callback, return the metric."""

    def __init__(self, base: TrainConfig, space: Mapping[str, BaseDistribution], metric: str,
                 study_name: str, given: Mapping[str, Any]):
        self.base, self.space, self.metric, self.study_name = base, space, metric, study_name
        self.given = {k: v for k, v in given.items() if k not in space}

    def __call__(self, trial: optuna.Trial) -> float:
        params = suggest(trial, self.space)
        cfg = replace(self.base, **params)
        cfg = replace(cfg, run_name=_run_name(self.study_name, trial.number, cfg))
        trial.set_user_attr("train_flags", {"backbone": cfg.backbone, **self.given})
        log.info("trial %d: %s", trial.number, ", ".join(f"{k}={v}" for k, v in params.items()))
        reporter = PruningCallback(trial, self.metric)
        try:
            result = train(cfg, callbacks=[reporter])
            value = reporter.value_of_best_checkpoint()
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt:  # train() turns Lightning's graceful Ctrl-C exit back into this
            trial.set_user_attr("error", "interrupted")
            raise
        except BaseException as exc:
            trial.set_user_attr("error", _one_line(exc))
            raise
        finally:
            trial.set_user_attr("epochs", len(reporter.history))
            _free_memory()
        trial.set_user_attr("checkpoint", result.best_checkpoint)
        return value


# ----------------------------------------------------------------------------- results


def _sort_key(trial: FrozenTrial, direction: str) -> tuple:
    sign = -1 if direction == "maximize" else 1
    scored = trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and trial.value is not None
    return (STATE_ORDER.get(trial.state, 5), sign * trial.value if scored else 0.0, trial.number)


def results_rows(study: optuna.Study, metric: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of results.csv: every trial of the study, best first."""
    direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
    trials = study.get_trials(deepcopy=False)
    params = list(dict.fromkeys(p for t in trials for p in t.params))
    columns = ["number", "state", metric, *params, "epochs", "duration_s", "started", "checkpoint", "error"]
    rows = []
    for t in sorted(trials, key=lambda t: _sort_key(t, direction)):
        rows.append({
            "number": t.number,
            "state": t.state.name,
            metric: t.value,
            **t.params,
            "epochs": t.user_attrs.get("epochs"),
            "duration_s": round(t.duration.total_seconds(), 1) if t.duration else None,
            "started": t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else None,
            "checkpoint": t.user_attrs.get("checkpoint"),
            "error": t.user_attrs.get("error"),
        })
    return columns, rows


def write_results(study: optuna.Study, metric: str, path: Path) -> Path:
    """Rewrite results.csv (temporary file, then os.replace: a reader never sees half a file)."""
    columns, rows = results_rows(study, metric)
    with ResultWriter(path, columns, "csv") as writer:
        for row in rows:
            writer.write(row)
    return path


def _save(ax: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure = ax.figure
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    atomic_write(path, buffer.getvalue())
    return path


def write_plots(study: optuna.Study, metric: str, outdir: Path) -> list[Path]:
    """Optimisation history and parameter importances as PNG; skipped (logged) when they mean nothing.

    Plots are a by-product: a failure here is logged and never loses the search's results.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; works without a display
    from optuna.visualization import matplotlib as plots

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        log.info("no completed trial yet: no plots")
        return []
    written = []
    varying = [p for p in dict.fromkeys(p for t in complete for p in t.params)
               if len({repr(t.params.get(p)) for t in complete}) > 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            written.append(_save(plots.plot_optimization_history(study, target_name=metric),
                                 outdir / "optimization_history.png"))
            if len(complete) < 2 or len(varying) < 2:
                log.info("parameter importances skipped: they need 2 completed trials and 2 varying "
                         "parameters (have %d and %d)", len(complete), len(varying))
            else:
                written.append(_save(plots.plot_param_importances(study, target_name=metric),
                                     outdir / "param_importances.png"))
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.warning("plot not written: %s", _one_line(exc))
    return written


def _format(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return repr(value)  # exact: the command reruns the trial's value, not a rounded one
    return str(value)


def train_command(flags: Mapping[str, Any]) -> str:
    """``python train.py ...`` for these TrainConfig settings (field names are train's long flags); in a
    checkout as the search was run there, and ``perspective train`` takes the same words."""
    words = ["python", "train.py"]
    for name, value in flags.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            words.append(flag)
        elif value is not None and value is not False:
            words += [flag, _format(value)]
    return shlex.join(words)


def best_command(trial: FrozenTrial) -> str:
    """The best trial as a train command: the fixed flags of its search call plus its parameters."""
    return train_command({**trial.user_attrs.get("train_flags", {}), **trial.params})


# ----------------------------------------------------------------------------- the search


def run_search(
    settings: SearchConfig,
    base: TrainConfig,
    given: Mapping[str, Any] | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> SearchResult:
    """Run (or continue) the study and write its results.

    Args:
        settings: trials, storage, study, sampler, metric, space, output folder.
        base: the training settings that stay fixed; ``base.backbone`` may list several names
            (comma-separated) to search over them. ``checkpoints_location`` / ``logs_location`` of
            None mean ``<outdir>/checkpoints`` and ``<outdir>/lightning_logs``.
        given: the train settings the user gave (field -> value), repeated in the best command.
        pruner: replaces the median pruner (tests use it to force a prune).

    Bad input (space, metric, data, storage) raises UserError before any trial runs. Raises
    NothingDone when no trial of the study has completed.
    """
    outdir = Path(settings.output)
    backbones = [b.strip() for b in base.backbone.split(",") if b.strip()]
    if not backbones:
        raise UserError("-b: no backbone named")
    if settings.metric is not None:
        check_metric(settings.metric)
    space, where = read_space(settings.space)
    if settings.trials is None and settings.timeout is None:
        raise UserError("give --trials or --timeout (or both)")
    check_single_process(base)
    data = inspect_data(base)
    metric = settings.metric or DEFAULT_METRIC[data.task]
    direction = check_metric(metric, data.task)
    space = fit_space(space, where, data, backbones)
    check_fixed_settings(base, backbones, space)
    varied = [n for n in LOSS_SETTINGS if n in space and len(choices_of(space[n])) != 1]
    if metric == "val_loss" and varied:
        log.warning("--metric val_loss compares trials by their own loss, and %s varies; val_loss values of "
                    "different losses are not comparable", ", ".join(varied))
    settings = replace(settings, metric=metric)

    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"-o {outdir}: cannot create the folder ({exc.strerror or exc})") from None
    url = settings.storage or f"sqlite:///{(outdir / 'search.db').resolve()}"
    study = open_study(open_storage(url, settings.heartbeat), settings.study, settings.metric, direction, settings.sampler,
                       base.seed, pruner)
    base = replace(
        base,
        backbone=backbones[0],
        task=data.task,
        devices=1 if base.devices is None and base.gpus is None else base.devices,
        checkpoints_location=base.checkpoints_location or str(outdir / "checkpoints"),
        logs_location=base.logs_location or str(outdir / "lightning_logs"),
        test=False,  # trials are judged on validation; the test belongs to the final run
    )
    given = dict(given or {})
    for name in space:
        if name in given and name != "backbone":
            log.warning("%s is searched; the value given on the command line (%s) is ignored",
                        "--" + name.replace("_", "-"), _format(given[name]))
    if base.devices == 1 and torch.cuda.device_count() > 1 and "devices" not in given:
        given["devices"] = 1  # the best command must train on one device, as its trial did
    log.info("study %r in %s: %d trial(s) so far; searching %s by %s (%s)", settings.study, safe_url(url),
             len(study.trials), ", ".join(space), settings.metric, direction)

    results_csv = outdir / "results.csv"
    try:
        study.optimize(
            Objective(base, space, settings.metric, settings.study, given),
            n_trials=settings.trials,
            timeout=settings.timeout,
            catch=(Exception,),
            callbacks=[lambda s, t: write_results(s, settings.metric, results_csv),
                       TrialLog(settings.trials, settings.timeout)],
        )
    finally:
        write_results(study, settings.metric, results_csv)
    return _summarise(study, settings, url, results_csv, write_plots(study, settings.metric, outdir))


class TrialLog:
    """A log line after each trial of this call: its state and value, the best so far, and the time left.

    Written whatever the terminal, so a search under nohup, CI or a scheduler shows its progress; the
    time left assumes the remaining trials take as long as this call's so far.
    """

    def __init__(self, trials: int | None, timeout: float | None) -> None:
        self.trials, self.timeout = trials, timeout
        self.start, self.done = time.monotonic(), 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        left = float("inf")
        if self.trials is not None:
            left = (self.trials - self.done) * elapsed / self.done
        if self.timeout is not None:
            left = min(left, max(0.0, self.timeout - elapsed))
        value = f" {trial.value:.6g}" if trial.value is not None else ""
        try:
            best = f"; best {study.best_value:.6g} (trial {study.best_trial.number})"
        except ValueError:  # no completed trial yet
            best = ""
        of = f" of {self.trials}" if self.trials is not None else ""
        log.info("trial %d%s of this search: #%d %s%s%s; %s per trial, about %s left", self.done, of, trial.number,
                 trial.state.name.lower(), value, best, format_duration(elapsed / self.done), format_duration(left))


def _summarise(study: optuna.Study, settings: SearchConfig, url: str, results_csv: Path,
               plots: list[Path]) -> SearchResult:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    result = SearchResult(settings.study, safe_url(url), settings.metric, counts, results_csv, plots)
    if not counts.get("complete"):
        raise NothingDone(f"no trial of study {settings.study!r} completed; see {results_csv}")
    result.best = study.best_trial
    result.best_checkpoint = result.best.user_attrs.get("checkpoint")
    result.command = best_command(result.best)
    result.config = Path(settings.output) / RUN_CONFIG
    atomic_write(result.config, config_yaml(
        {**result.best.user_attrs.get("train_flags", {}), **result.best.params},
        f"The best trial of study {settings.study!r} (trial {result.best.number}): the flags of its search call\n"
        f"and its parameters. perspective train --config {RUN_CONFIG} trains it again."))
    return result
