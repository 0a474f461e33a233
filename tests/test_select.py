"""perspective select: uncertain photos first, spread over the feature space; tiny data."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
from conftest import run_command

from perspective.trust.select import Scored, choose


def test_select_writes_its_choice_and_skips_unreadable_photos(trained_regression, regression_dir, tmp_path):
    _, best = trained_regression
    photos = tmp_path / "photos"
    shutil.copytree(regression_dir / "images", photos)
    (photos / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "select"
    result = run_command("select", "-d", str(photos), "-n", "10", "-c", str(best), "-o", str(out), "-w", "0", "-q")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out / "select.csv")
    assert list(table.columns) == ["rank", "filename", "reason", "uncertainty", "distance", "predicted_redness",
                                   "predicted_greenness", "path"]
    assert len(table) == 10 and table["filename"].is_unique and "broken.png" not in set(table["filename"])
    assert "1 unreadable, skipped" in result.stdout and (out / "select.png").stat().st_size > 0
    assert table.loc[0, "uncertainty"] == table["uncertainty"].max()  # the first pick is the least sure
    by_uncertainty = run_command("select", "-d", str(photos), "-n", "10", "-c", str(best), "-o", str(tmp_path / "u"),
                                 "--by", "uncertainty", "-w", "0", "-q")
    alone = pd.read_csv(tmp_path / "u" / "select.csv")
    assert by_uncertainty.returncode == 0 and alone["uncertainty"].is_monotonic_decreasing


def test_balanced_selection_spreads_over_clusters_where_uncertainty_alone_does_not():
    rng = np.random.default_rng(0)
    centres = np.eye(4)
    features = np.concatenate([c + rng.normal(0, 0.02, (25, 4)) for c in centres])
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    uncertainty = np.concatenate([rng.uniform(0.9, 1.0, 25), rng.uniform(0, 0.5, 75)])  # cluster 0 is the least sure
    scored = Scored([f"{i}.png" for i in range(100)], uncertainty, features, 0)
    alone, _ = choose(scored, 4, "uncertainty")
    balanced, distances = choose(scored, 4, "balanced")
    assert {i // 25 for i in alone} == {0}
    assert {i // 25 for i in balanced} == {0, 1, 2, 3} and balanced[0] == int(np.argmax(uncertainty))
    assert np.isnan(distances[0]) and (distances[1:] > 1).all()
    labelled = features[25:30]  # cluster 1 labelled already: no pick there
    with_labelled, _ = choose(scored, 3, "balanced", labelled)
    assert 1 not in {i // 25 for i in with_labelled}
    random_a, _ = choose(scored, 10, "random", seed=1)
    random_b, _ = choose(scored, 10, "random", seed=2)
    assert random_a != random_b and len(set(random_a)) == 10
