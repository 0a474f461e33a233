"""Evaluation: metrics against hand-computed values, plots, the HTML report, evaluate.py and infer.py --labels."""

import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import run_command, run_script
from PIL import Image

from perspective.evaluation import metrics as metrics_lib
from perspective.evaluation import report

# --- metrics on fixed arrays ------------------------------------------------------------------


def test_regression_metrics_match_hand_computed_values():
    pred = np.array([[0.1, 0.5], [0.4, 0.5], [0.7, 0.5]])
    truth = np.array([[0.0, 0.2], [0.5, 0.5], [1.0, 0.8]])
    m = metrics_lib.regression_metrics(pred, truth, ["a", "b"], train_mean=[0.5, 0.4])
    a = m["targets"]["a"]
    assert a["mse"] == pytest.approx((0.01 + 0.01 + 0.09) / 3)
    assert a["mae"] == pytest.approx((0.1 + 0.1 + 0.3) / 3)
    assert a["rmse"] == pytest.approx(np.sqrt(0.11 / 3))
    assert a["r2"] == pytest.approx(1 - 0.11 / 0.5)
    # b predicts its own mean everywhere: R² of a constant prediction at the mean is 0
    assert m["targets"]["b"]["r2"] == pytest.approx(0.0)
    assert m["mean"]["mse"] == pytest.approx((0.11 / 3 + 0.18 / 3) / 2)
    # the baseline predicts the training mean: 0.4 for b gives MSE ((0.2)^2 + (0.1)^2 + (0.4)^2) / 3
    assert m["baseline"]["targets"]["b"]["mse"] == pytest.approx((0.04 + 0.01 + 0.16) / 3)
    assert m["baseline"]["source"] == "training mean"


def test_constant_mean_prediction_scores_r2_zero_and_equals_the_baseline_without_training_stats():
    truth = np.array([[0.1], [0.3], [0.9], [0.5]])
    pred = np.full_like(truth, truth.mean())
    m = metrics_lib.regression_metrics(pred, truth, ["s"])
    assert m["targets"]["s"]["r2"] == pytest.approx(0.0)
    assert m["targets"]["s"] == pytest.approx(m["baseline"]["targets"]["s"])
    assert "own mean" in m["baseline"]["source"]


def test_missing_labels_are_left_out_not_counted_as_zero():
    pred = np.array([[0.5], [0.5], [0.9]])
    truth = np.array([[0.5], [np.nan], [0.9]])
    m = metrics_lib.regression_metrics(pred, truth, ["s"])
    assert m["n"] == 3 and m["n_labelled"] == {"s": 2}
    assert m["targets"]["s"]["mse"] == pytest.approx(0.0)  # a NaN read as 0 would add an error of 0.25


def test_r2_of_a_constant_truth_is_undefined_and_written_as_null():
    m = metrics_lib.regression_metrics(np.array([[0.1], [0.2]]), np.array([[0.5], [0.5]]), ["s"])
    assert m["targets"]["s"]["r2"] is None
    json.dumps(m, allow_nan=False)  # valid JSON, no NaN


def test_classification_metrics_match_hand_computed_values():
    classes = ["a", "b", "c"]
    truth = ["a", "a", "a", "b", "b", "c", None]
    pred = ["a", "a", "b", "b", "c", "c", "a"]
    m = metrics_lib.classification_metrics(pred, truth, classes, train_counts={"a": 6, "b": 3, "c": 1})
    assert m["n_unlabelled"] == 1
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert m["per_class"]["b"]["precision"] == pytest.approx(0.5) and m["per_class"]["b"]["recall"] == pytest.approx(0.5)
    f1_c = 2 * 0.5 * 1.0 / 1.5
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + f1_c) / 3)
    assert m["baseline"]["majority_class"] == "a" and m["baseline"]["majority"] == pytest.approx(3 / 6)
    assert m["baseline"]["prior_random"] == pytest.approx(0.6 * 3 / 6 + 0.3 * 2 / 6 + 0.1 * 1 / 6)


# --- plots and the HTML report ----------------------------------------------------------------


def _blank_loader(path):
    rng = np.random.default_rng(abs(hash(path)) % 2**32)
    return Image.fromarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8))


def _assert_real_png(png: bytes):
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32)
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert image.std() > 5, "the plot is blank"


@pytest.fixture
def regression_frame():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 1, (40, 2))
    pred = np.clip(truth + rng.normal(0, 0.1, truth.shape), 0, 1)
    frame = pd.DataFrame({"path": [f"img{i}.png" for i in range(40)], "a": pred[:, 0], "b": pred[:, 1],
                          "true_a": truth[:, 0], "true_b": truth[:, 1], "error": ""})
    return frame, metrics_lib.regression_metrics(pred, truth, ["a", "b"])


def test_regression_plots_are_valid_non_trivial_pngs(regression_frame):
    frame, metrics = regression_frame
    plots = report.regression_plots(frame, ["a", "b"], metrics, _blank_loader, samples=16)
    assert set(plots) == {"samples.png", "histograms.png", "scatter.png", "residuals.png"}
    for png in plots.values():
        _assert_real_png(png)


def test_classification_plots_include_confusion_matrix_and_mistakes():
    classes = ["x", "y"]
    frame = pd.DataFrame({"path": [f"i{i}" for i in range(6)], "label": ["x", "x", "y", "y", "x", "y"],
                          "confidence": [0.9, 0.8, 0.7, 0.95, 0.6, 0.55], "true_label": ["x", "y", "y", "y", "x", "x"]})
    metrics = metrics_lib.classification_metrics(frame["label"].tolist(), frame["true_label"].tolist(), classes)
    plots = report.classification_plots(frame, classes, metrics, _blank_loader)
    assert set(plots) == {"samples.png", "confusion_matrix.png", "mistakes.png"}
    for png in plots.values():
        _assert_real_png(png)


def test_report_html_holds_metrics_and_every_plot_and_references_nothing_outside(regression_frame, tmp_path):
    frame, metrics = regression_frame
    plots = report.regression_plots(frame, ["a", "b"], metrics, _blank_loader, samples=4)
    out = report.write_report(tmp_path / "r", metrics, frame, plots, {"backbone": "resnet18"}, {"images": 40}, "T")
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(plots)
    assert re.findall(r'(?:src|href)="(?!data:)', page) == [] and "http" not in page
    assert f"{metrics['targets']['a']['r2']:.4f}" in page and "baseline_r2" in page and "resnet18" in page
    assert json.loads((out / "metrics.json").read_text())["targets"]["a"]["r2"] == pytest.approx(metrics["targets"]["a"]["r2"])
    assert list(pd.read_csv(out / "metrics.csv")["name"]) == ["a", "b", "mean"]
    for name in plots:
        assert (out / name).read_bytes() == plots[name]


# --- the commands -----------------------------------------------------------------------------


def test_train_writes_the_test_report_beside_the_checkpoints(trained_regression):
    result, best = trained_regression
    report_dir = best.parent / "test_report"
    metrics = json.loads((report_dir / "metrics.json").read_text())
    assert metrics["task"] == "regression" and set(metrics["targets"]) == {"redness", "greenness"}
    assert metrics["baseline"]["source"] == "training mean"
    assert (report_dir / "report.html").is_file() and (report_dir / "scatter.png").is_file()
    assert "baseline_r2" in result.stdout  # the printed table has the baseline beside the model
    printed_r2 = float(next(line for line in result.stdout.splitlines() if line.startswith("mean")).split()[4])
    assert printed_r2 == pytest.approx(metrics["mean"]["r2"], abs=1e-4)


def test_evaluate_and_infer_give_the_same_predictions(trained_regression, regression_dir, tmp_path):
    _, best = trained_regression
    ev = run_command("evaluate", "-c", str(best), "-d", str(regression_dir), "-o", str(tmp_path / "ev"), "-q")
    assert ev.returncode == 0, ev.stderr
    inf = run_command("infer", "-d", str(regression_dir / "images"), "-c", str(best), "-r", str(tmp_path / "i.csv"), "-q")
    assert inf.returncode == 0, inf.stderr
    a = pd.read_csv(tmp_path / "ev" / "predictions.csv").sort_values("path").reset_index(drop=True)
    b = pd.read_csv(tmp_path / "i.csv").sort_values("path").reset_index(drop=True)
    assert len(a) == len(b) == 96
    np.testing.assert_allclose(a[["redness", "greenness"]], b[["redness", "greenness"]], atol=1e-6)
    # infer.py found labels.csv beside the images folder: truth columns and the metrics table
    np.testing.assert_allclose(a[["true_redness", "true_greenness"]], b[["true_redness", "true_greenness"]])
    assert "metrics against" in inf.stdout and "baseline_r2" in inf.stdout
    for name in ("metrics.json", "metrics.csv", "report.html", "samples.png", "histograms.png", "residuals.png"):
        assert (tmp_path / "ev" / name).is_file(), name
    # the truth as labels.csv wrote it, predictions to 6 decimals (a float32's further digits are noise)
    labels = pd.read_csv(regression_dir / "labels.csv", dtype=str).set_index("filename")
    for written in (tmp_path / "ev" / "predictions.csv", tmp_path / "i.csv"):
        text = pd.read_csv(written, dtype=str)
        names = text["path"].map(lambda p: p.rsplit("/", 1)[-1])
        for target in ("redness", "greenness"):
            assert list(text["true_" + target]) == list(labels.loc[names, target]), written
            assert text[target].map(lambda v: len(v.partition(".")[2]) <= 6 and "e" not in v).all(), written


def test_evaluate_test_split_rebuilds_the_training_split(trained_regression, regression_dir, tmp_path):
    _, best = trained_regression
    ev = run_command("evaluate", "-c", str(best), "-d", str(regression_dir), "--split", "test",
                    "-o", str(tmp_path / "ev"), "-q")
    assert ev.returncode == 0, ev.stderr
    ours = pd.read_csv(tmp_path / "ev" / "predictions.csv")
    trains = pd.read_csv(best.parent / "test_report" / "predictions.csv")
    assert sorted(ours["path"]) == sorted(trains["path"]) and len(ours) == round(96 * 0.15)


def test_evaluate_reports_rows_with_blank_targets_and_scores_each_target_on_its_labels(trained_regression, regression_dir, tmp_path):
    _, best = trained_regression
    labels = pd.read_csv(regression_dir / "labels.csv")
    labels.loc[[0, 1], "redness"] = np.nan
    labels.loc[2, ["redness", "greenness"]] = np.nan
    labels.to_csv(tmp_path / "labels.csv", index=False)
    ev = run_script("evaluate.py", "-c", str(best), "-d", str(tmp_path / "labels.csv"), "--images",
                    str(regression_dir / "images"), "-o", str(tmp_path / "ev"))
    assert ev.returncode == 0, ev.stderr
    assert "2 row(s) leave some targets blank (redness 2)" in ev.stderr
    assert "1 row(s) without a label" in ev.stderr
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n"] == 96 and metrics["n_labelled"] == {"redness": 93, "greenness": 95}


@pytest.mark.parametrize("bad", ["targets", "classes"])
def test_mismatched_data_is_a_one_line_error_naming_the_mismatch(bad, trained_regression, trained_classifier,
                                                                  regression_dir, class_dir, tmp_path):
    if bad == "targets":
        labels = pd.read_csv(regression_dir / "labels.csv").rename(columns={"greenness": "blueness"})
        labels.to_csv(tmp_path / "labels.csv", index=False)
        args = ["-c", str(trained_regression[1]), "-d", str(tmp_path / "labels.csv"), "--images", str(regression_dir / "images")]
        expected = "greenness"
    else:
        frame = pd.DataFrame({"filename": ["red/red00.png", "green/green00.png"], "label": ["red", "purple"]})
        frame.to_csv(tmp_path / "labels.csv", index=False)
        args = ["-c", str(trained_classifier[1]), "-d", str(tmp_path / "labels.csv"), "--images", str(class_dir)]
        expected = "purple"
    ev = run_command("evaluate", *args, "-o", str(tmp_path / "ev"), "-q")
    assert ev.returncode == 2
    assert expected in ev.stderr and "does not match the checkpoint" in ev.stderr
    assert len(ev.stderr.strip().splitlines()) == 1 and "Traceback" not in ev.stderr


def test_evaluate_classification_writes_confusion_matrix(trained_classifier, class_dir, tmp_path):
    _, best = trained_classifier
    ev = run_command("evaluate", "-c", str(best), "-d", str(class_dir), "-o", str(tmp_path / "ev"), "-q")
    assert ev.returncode == 0, ev.stderr
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["classes"] == ["blue", "green", "red"]
    assert np.asarray(metrics["confusion_matrix"]).sum() == 36
    assert metrics["accuracy"] >= 0.8 and metrics["baseline"]["majority"] == pytest.approx(1 / 3)
    assert (tmp_path / "ev" / "confusion_matrix.png").is_file()


def test_no_sample_grid_is_asked_for_with_samples_0(trained_classifier, class_dir, tmp_path):
    ev = run_command("evaluate", "-c", str(trained_classifier[1]), "-d", str(class_dir), "-o", str(tmp_path / "ev"),
                    "--samples", "0", "-q")
    assert ev.returncode == 0, ev.stderr
    assert (tmp_path / "ev" / "report.html").is_file() and not (tmp_path / "ev" / "samples.png").exists()


@pytest.mark.parametrize("script", ["evaluate.py", "infer.py"])
def test_an_output_path_under_a_file_is_a_one_line_error(script, trained_classifier, class_dir, tmp_path):
    (tmp_path / "file").write_text("in the way")
    out = ["-o", str(tmp_path / "file" / "ev")] if script == "evaluate.py" else ["-r", str(tmp_path / "file" / "r.csv")]
    data = ["-d", str(class_dir)] if script == "evaluate.py" else ["-d", str(class_dir / "red")]
    result = run_script(script, "-c", str(trained_classifier[1]), *data, *out, "-q")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert str(tmp_path / "file") in result.stderr
