"""Hyperparameter search with Optuna: ``settings`` (what a search is told: its settings, the parameters
a space may vary, the metrics; no Optuna), ``space`` (a space as Optuna distributions, checked before
any trial) and ``study`` (the study, its trials, results and plots; ``run_search`` is what
``perspective search`` calls). ``python -m perspective.search`` is ``perspective search``.

``run_search`` and ``SearchResult`` are imported on first use, so that reading ``settings`` (as
``perspective search -h`` does) imports neither Optuna nor torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SearchResult", "run_search"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import study

        return getattr(study, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
