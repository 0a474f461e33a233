"""Hyperparameter search with Optuna: ``space`` (what may vary, as Optuna distributions, checked before
any trial) and ``study`` (the study, its trials, results and plots; ``run_search`` is what
``perspective search`` calls). ``python -m perspective.search`` is ``perspective search``."""

from .study import SearchResult, run_search

__all__ = ["SearchResult", "run_search"]
