"""The search space: which training settings a search may vary, their legal values, and the metrics
a trial can be judged by.

The names (parameters, metrics, the default space) are in ``search.settings``, where the
command's parser reads them without importing Optuna; here a space becomes Optuna distributions,
checked before any trial starts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from ..errors import UserError
from .settings import CHOICE_PARAMS, DEFAULT_SPACE, METRICS, NUMERIC_PARAMS
from .settings import SEARCH_PARAMS as PARAMS

if TYPE_CHECKING:
    import optuna

    from ..data import LabelledData

log = logging.getLogger(__name__)

LOSS_SETTINGS = ("loss", "huber_delta", "weighted_mse_alpha", "label_smoothing")


def _number(name: str, value: Any, where: str) -> int | float:
    """A legal value of a numeric parameter; strings are read too (PyYAML reads ``1e-5`` as a string)."""
    kind, legal, text = NUMERIC_PARAMS[name]
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if kind is int:
            if not number.is_integer():
                raise ValueError
            number = int(number)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {name} must be {'an integer' if kind is int else 'a number'}, "
                        f"not {value!r}") from None
    if not (math.isfinite(number) and legal(number)):
        raise UserError(f"{where}: {name} must be {text}, not {value!r}")
    return number


def _choice(name: str, value: Any, where: str) -> Any:
    if name in NUMERIC_PARAMS:
        return _number(name, value, where)
    if value not in CHOICE_PARAMS[name]:
        raise UserError(f"{where}: {name} must be one of {', '.join(CHOICE_PARAMS[name])}, not {value!r}")
    return value


def _distribution(name: str, spec: Any, where: str) -> BaseDistribution:
    """One space entry: a list (choices), a mapping with low/high[/log/step] (a range), or a fixed value."""
    if name not in PARAMS:
        raise UserError(f"{where}: unknown parameter {name!r} (known: {', '.join(PARAMS)})")
    if not isinstance(spec, Mapping):
        values = spec if isinstance(spec, list) else [spec]
        if not values:
            raise UserError(f"{where}: {name} has an empty list of choices")
        choices = list(dict.fromkeys(_choice(name, v, where) for v in values))
        return CategoricalDistribution(choices)
    if name not in NUMERIC_PARAMS:
        raise UserError(f"{where}: {name} takes a list of choices, not a range")
    unknown = sorted(set(spec) - {"low", "high", "log", "step"})
    if unknown or not {"low", "high"} <= set(spec):
        raise UserError(f"{where}: a range for {name} has keys low, high and optionally log, step; "
                        f"got {', '.join(map(str, spec))}")
    log_scale = spec.get("log", False)
    if not isinstance(log_scale, bool):
        raise UserError(f"{where}: {name}: log must be true or false, not {log_scale!r}")
    low, high = _number(name, spec["low"], where), _number(name, spec["high"], where)
    step = spec.get("step")
    try:
        if NUMERIC_PARAMS[name][0] is int:
            step = 1 if step is None else int(step)
            return IntDistribution(int(low), int(high), log=log_scale, step=step)
        step = None if step is None else float(step)
        return FloatDistribution(float(low), float(high), log=log_scale, step=step)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: {name}: {exc}") from None


def read_space(source: str | Path | Mapping[str, Any] | None) -> tuple[dict[str, BaseDistribution], str]:
    """The space as Optuna distributions, and where it came from (for messages)."""
    if source is None:
        raw, where = DEFAULT_SPACE, "the default space"
    elif isinstance(source, Mapping):
        raw, where = source, "the space"
    else:
        where = str(source)
        try:
            raw = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        except OSError as exc:
            raise UserError(f"--space {source}: cannot read it ({exc.strerror or exc})") from None
        except UnicodeDecodeError:
            raise UserError(f"--space {source}: not a UTF-8 text file") from None
        except yaml.YAMLError as exc:
            raise UserError(f"--space {source}: not valid YAML ({' '.join(str(exc).split())})") from None
        if not isinstance(raw, Mapping) or not raw:
            raise UserError(f"--space {source}: expected a mapping of parameter names to ranges or choices")
    return {str(name): _distribution(str(name), spec, where) for name, spec in raw.items()}, where


def fit_space(
    space: dict[str, BaseDistribution], where: str, data: LabelledData, backbones: list[str]
) -> dict[str, BaseDistribution]:
    """Adapt the space to the data and -b: loss only for regression, backbone from a -b list."""
    space = dict(space)
    default = where == "the default space"
    if data.task == "classification" and "loss" in space:
        if not default:
            raise UserError(f"{where}: loss is a regression setting; classification always uses cross-entropy")
        del space["loss"]
    loss = space.get("loss")
    if isinstance(loss, CategoricalDistribution) and "weighted_mse" in loss.choices:
        if float(data.frame[data.names].min().min()) < 0:
            if not default:
                raise UserError(f"{where}: weighted_mse needs non-negative targets (its weight is alpha + target)")
            log.info("weighted_mse left out of the loss choices: some targets are negative")
            space["loss"] = CategoricalDistribution([c for c in loss.choices if c != "weighted_mse"])
    if len(backbones) > 1:
        if "backbone" in space:
            raise UserError(f"backbones are given twice: -b {','.join(backbones)} and in {where}")
        space["backbone"] = CategoricalDistribution([_choice("backbone", b, "-b") for b in backbones])
    if not space:
        raise UserError(f"{where}: no parameter to search")
    return space


def choices_of(dist: BaseDistribution) -> tuple:
    """The choices of a categorical distribution; a range stands for many values."""
    return dist.choices if isinstance(dist, CategoricalDistribution) else (dist.low, dist.high)


def suggest(trial: optuna.Trial, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """This trial's parameters, drawn by the study's sampler."""
    params = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, IntDistribution):
            params[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            params[name] = trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return params


def check_metric(metric: str, task: str | None = None) -> str:
    """The study direction for ``metric``; an unknown metric (for ``task``) is a UserError."""
    tasks = [task] if task else list(METRICS)
    for t in tasks:
        if metric in METRICS[t]:
            return METRICS[t][metric]
    known = sorted({m for t in tasks for m in METRICS[t]})
    what = f"a {task} run" if task else "training"
    raise UserError(f"--metric {metric}: not a metric {what} logs (known: {', '.join(known)})")
