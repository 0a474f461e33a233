"""Hyperparameter search with Optuna: ``space`` (what may vary, the metrics; light, no torch) and
``study`` (the study, its trials, results and plots; ``run_search`` is what ``search.py`` calls).
"""
