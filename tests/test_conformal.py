"""Conformal intervals and class sets: coverage on toy problems, the columns every command writes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_command

from perspective.models import load_checkpoint
from perspective.models.conformal import Intervals, calibrate, quantile


def _zero_heavy(rng, n):
    """A target that is 0 for 60% of the images (predicted near 0, small errors), else noisy."""
    visible = rng.random(n) > 0.6
    truth = np.where(visible, rng.uniform(0.2, 1.0, n), 0.0)
    pred = np.where(visible, np.clip(truth + rng.normal(0, 0.15, n), 0, 1), np.abs(rng.normal(0.01, 0.01, n)))
    return pred[:, None], truth[:, None]


def test_regression_coverage_is_near_nominal_and_narrower_where_the_model_says_zero():
    rng = np.random.default_rng(0)
    cal_pred, cal_truth = _zero_heavy(rng, 2000)
    calibration = calibrate(cal_pred, cal_truth, "regression", ["hood"])
    assert len(calibration["targets"]["hood"]["edges"]) >= 1  # the zeros get a group of their own
    intervals = Intervals(calibration, 0.9, ["hood"], bounds=(0.0, 1.0))
    pred, truth = _zero_heavy(rng, 20000)
    low, high = intervals.regression(pred)
    inside = (low[:, 0] <= truth[:, 0]) & (truth[:, 0] <= high[:, 0])
    assert abs(inside.mean() - 0.9) < 0.02
    assert (low >= 0).all() and (high <= 1).all() and (low <= pred).all() and (pred <= high).all()
    width = high[:, 0] - low[:, 0]
    zero = truth[:, 0] == 0
    assert width[zero].mean() < 0.5 * width[~zero].mean()


def test_class_sets_cover_about_as_asked_and_are_never_empty():
    rng = np.random.default_rng(1)

    def sample(n):
        logits = rng.normal(0, 1.5, (n, 4))
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        labels = np.array([rng.choice(4, p=p) for p in probs])  # the probabilities are right, by construction
        return probs, labels

    calibration = calibrate(*sample(3000), "classification", list("abcd"))
    intervals = Intervals(calibration, 0.8, list("abcd"))
    probs, labels = sample(10000)
    sets = intervals.class_sets(probs)
    assert abs(np.mean([y in s for y, s in zip(labels, sets)]) - 0.8) < 0.02
    assert all(s and s[0] == int(np.argmax(p)) for s, p in zip(sets, probs))


def test_too_few_calibration_errors_give_an_unbounded_interval():
    assert quantile([0.1] * 5, 0.9) == math.inf  # ceil(6 * 0.9) = 6 > 5
    assert quantile(list(np.linspace(0, 1, 19)), 0.9) == pytest.approx(17 / 18)  # the ceil(20 * 0.9) = 18th
    calibration = calibrate(np.full((5, 1), 0.5), np.full((5, 1), 0.6), "regression", ["t"])
    low, high = Intervals(calibration, 0.9, ["t"], bounds=(0.0, 1.0)).regression(np.array([[0.5]]))
    assert (low[0, 0], high[0, 0]) == (0.0, 1.0)


def test_blank_targets_are_left_out_of_the_calibration():
    pred = np.array([[0.1, 0.5]] * 4)
    truth = np.array([[0.2, np.nan], [0.3, 0.5], [np.nan, 0.7], [0.1, np.nan]])
    calibration = calibrate(pred, truth, "regression", ["a", "b"])
    assert calibration["targets"]["a"]["errors"] == [[0.0, 0.1, 0.2]]
    assert calibration["targets"]["b"]["errors"] == [[0.0, 0.2]]


def test_a_trained_checkpoint_carries_its_calibration_and_infer_writes_intervals(trained_regression, regression_dir,
                                                                                 tmp_path):
    _, best = trained_regression
    content = torch.load(best, map_location="cpu", weights_only=True)
    assert content["conformal"]["task"] == "regression"
    assert set(content["conformal"]["targets"]) == {"redness", "greenness"}
    assert load_checkpoint(best).conformal == content["conformal"]
    out = tmp_path / "rows.csv"
    result = run_command("infer", "-d", str(regression_dir / "images"), "-c", str(best), "-r", str(out),
                         "--interval", "0.9", "-q", "--show", "0")
    assert result.returncode == 0, result.stderr
    rows = pd.read_csv(out)
    assert list(rows.columns)[:7] == ["path", "redness", "greenness", "redness_low", "redness_high", "greenness_low",
                                      "greenness_high"]  # then the labels.csv beside the images: true_*, error
    for name in ("redness", "greenness"):
        assert (rows[f"{name}_low"] <= rows[name]).all() and (rows[name] <= rows[f"{name}_high"]).all()
        assert (rows[f"{name}_low"] >= 0).all() and (rows[f"{name}_high"] <= 1).all()
    # the run's own test report measured the coverage at 0.9 on its test split
    metrics = pd.read_json(best.parent / "test_report" / "metrics.json", typ="series")
    assert metrics["intervals"]["level"] == 0.9
    assert 0 <= metrics["intervals"]["targets"]["redness"]["coverage"] <= 1


def test_evaluate_reports_coverage_and_calibrate_stores_a_new_calibration(trained_regression, regression_dir,
                                                                         tmp_path):
    import shutil

    _, best = trained_regression
    copy = tmp_path / "model.ckpt"
    shutil.copy(best, copy)
    result = run_command("evaluate", "-c", str(copy), "-d", str(regression_dir), "-o", str(tmp_path / "cal"),
                         "--calibrate", "-q", "--samples", "0")
    assert result.returncode == 0, result.stderr
    assert "conformal calibration from 96 images" in result.stdout
    stored = torch.load(copy, map_location="cpu", weights_only=True)["conformal"]
    assert sum(len(e) for e in stored["targets"]["redness"]["errors"]) == 96
    result = run_command("evaluate", "-c", str(copy), "-d", str(regression_dir), "-o", str(tmp_path / "ev"),
                         "--interval", "0.8", "-q", "--samples", "0")
    assert result.returncode == 0, result.stderr
    assert "coverage@0.8" in result.stdout and "width|true>0" in result.stdout
    metrics = pd.read_json(tmp_path / "ev" / "metrics.json", typ="series")
    # calibrated on these very images, the coverage is at least nominal
    assert metrics["intervals"]["targets"]["redness"]["coverage"] >= 0.8
    assert "Conformal intervals" in (tmp_path / "ev" / "report.html").read_text()


def test_classifier_rows_get_a_class_set(trained_classifier, class_dir, tmp_path):
    _, best = trained_classifier
    out = tmp_path / "rows.csv"
    result = run_command("infer", "-d", str(class_dir), "-R", "-c", str(best), "-r", str(out), "--interval", "0.9", "-q",
                         "--show", "0")
    assert result.returncode == 0, result.stderr
    rows = pd.read_csv(out)
    assert "set" in rows.columns
    assert all(label in str(members).split("|") for label, members in zip(rows["label"], rows["set"]))


def test_interval_usage_errors_are_one_line(trained_regression, regression_dir, tmp_path):
    _, best = trained_regression
    content = torch.load(best, map_location="cpu", weights_only=True)
    del content["conformal"]
    bare = tmp_path / "bare.ckpt"
    torch.save(content, bare)
    result = run_command("infer", "-d", str(regression_dir / "images"), "-c", str(bare), "-r",
                         str(tmp_path / "r.csv"), "--interval", "0.9", "-q")
    assert result.returncode == 2 and "no conformal calibration" in result.stderr and "--calibrate" in result.stderr
    result = run_command("infer", "-d", str(regression_dir / "images"), "--interval", "1.5", "-q")
    assert result.returncode == 2 and "between 0 and 1" in result.stderr
    result = run_command("evaluate", "-c", str(bare), "-d", str(regression_dir), "--calibrate", "--interval", "0.9")
    assert result.returncode == 2 and "other data" in result.stderr


def test_the_server_answers_with_intervals(trained_regression, regression_dir):
    """In-process (the app's lifespan run by hand): each score comes with its [low, high], as infer's columns."""
    import asyncio

    import httpx

    from perspective.prediction import Predictor
    from perspective.serving import ServeConfig, create_app

    _, best = trained_regression
    predictor = Predictor(load_checkpoint(best), "cpu", interval=0.9)
    app = create_app(predictor, best, ServeConfig(max_wait_ms=0))
    path = sorted((regression_dir / "images").iterdir())[0]

    async def ask():
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return (await client.post("/predict", files=[("file", (path.name, path.read_bytes(), "image/png"))]),
                    await client.get("/model"))

    response, info = asyncio.run(ask())
    assert response.status_code == 200, response.text
    item = response.json()["predictions"][0]
    row = next(iter(predictor.predict_paths([str(path)], progress=False)))
    assert item["intervals"]["redness"] == pytest.approx([row["redness_low"], row["redness_high"]])
    assert item["intervals"]["redness"][0] <= item["scores"]["redness"] <= item["intervals"]["redness"][1]
    assert info.json()["interval"] == 0.9


def test_an_exported_model_carries_the_calibration(trained_regression, regression_dir, tmp_path):
    _, best = trained_regression
    onnx = tmp_path / "model.onnx"
    assert run_command("export", "-c", str(best), "--format", "onnx", "-o", str(onnx)).returncode == 0
    rows = {}
    for name, model in (("ckpt", best), ("onnx", onnx)):
        out = tmp_path / f"{name}.csv"
        result = run_command("infer", "-d", str(regression_dir / "images"), "-c", str(model), "-r", str(out),
                             "--interval", "0.9", "--precision", "32", "-q", "--show", "0")
        assert result.returncode == 0, result.stderr
        rows[name] = pd.read_csv(out)
    np.testing.assert_allclose(rows["onnx"]["redness_high"], rows["ckpt"]["redness_high"], atol=1e-4)
