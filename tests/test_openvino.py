"""OpenVINO export (fp32 IR and int8 through NNCF), the int8 accuracy check, and prediction with -c model.xml."""

import sys

import numpy as np
import pandas as pd
import pytest
from conftest import run_command

from perspective.errors import UserError
from perspective.export.int8 import compare, split_images
from perspective.prediction import load_model
from perspective.prediction.runtimes import OpenVinoModel, require_openvino

pytest.importorskip("openvino")
pytest.importorskip("nncf")


@pytest.fixture(scope="module")
def openvino_models(trained_regression, regression_dir, tmp_path_factory):
    """(checkpoint, fp32 IR, int8 IR): the int8 one calibrated on the first 48 images, checked on the rest."""
    _, best = trained_regression
    out = tmp_path_factory.mktemp("openvino")
    images = sorted((regression_dir / "images").iterdir())
    calibration, check = out / "calibration", out / "check"
    calibration.mkdir()
    check.mkdir()
    for i, path in enumerate(images):
        (calibration if i < 48 else check).joinpath(path.name).symlink_to(path)
    fp32 = run_command("export", "-c", str(best), "--format", "openvino", "-o", str(out / "fp32.xml"), "-q")
    assert fp32.returncode == 0, fp32.stderr
    int8 = run_command("export", "-c", str(best), "--format", "openvino", "--int8", "--calibration", str(calibration),
                       "--check", str(check), "--max-drop", "0.2", "-o", str(out / "int8.xml"), "-q")
    assert int8.returncode == 0, int8.stderr
    assert "R² vs fp32" in int8.stdout and "48 held-out images" in int8.stdout
    assert "━" not in int8.stdout + int8.stderr  # NNCF's progress bars only on a terminal
    return best, out / "fp32.xml", out / "int8.xml"


def test_the_ir_carries_the_model_and_reloads(openvino_models):
    best, fp32, int8 = openvino_models
    checkpoint = load_model(best)
    for path, quantized in ((fp32, False), (int8, True)):
        model = load_model(path)
        assert isinstance(model, OpenVinoModel) and model.int8 is quantized
        assert model.names == checkpoint.names == ["redness", "greenness"]
        assert model.hparams["preprocessing"] == dict(checkpoint.hparams.preprocessing)
        assert path.with_suffix(".bin").is_file()
    assert not list(fp32.parent.glob("*partial*"))


def test_infer_with_openvino_models_writes_the_checkpoints_columns(openvino_models, regression_dir, tmp_path):
    best, fp32, int8 = openvino_models
    args = ["-d", str(regression_dir / "images"), "-q", "--labels", str(regression_dir / "labels.csv")]
    rows = {}
    for name, model in (("pt", best), ("fp32", fp32), ("int8", int8)):
        result = run_command("infer", *args, "-c", str(model), "--precision", "32", "-r", str(tmp_path / f"{name}.csv"))
        assert result.returncode == 0, result.stderr
        rows[name] = pd.read_csv(tmp_path / f"{name}.csv")
    assert list(rows["fp32"].columns) == list(rows["int8"].columns) == list(rows["pt"].columns)
    assert (rows["int8"]["path"] == rows["pt"]["path"]).all()
    targets = ["redness", "greenness"]
    np.testing.assert_allclose(rows["fp32"][targets], rows["pt"][targets], atol=1e-4)
    # the graph computes the novelty score too: p-values in steps of 1/15 (14 calibration photos) agree
    # within one step, and the flag is the p-value against the level as in PyTorch
    np.testing.assert_allclose(rows["fp32"]["novelty_p"], rows["pt"]["novelty_p"], atol=1 / 15 + 1e-6)
    assert (rows["int8"]["novel"] == (rows["int8"]["novelty_p"] <= 0.01)).all()
    # int8 moves the scores a little, not a lot: well within the ±0.2 the check allowed
    assert np.abs(rows["int8"][targets].to_numpy() - rows["pt"][targets].to_numpy()).mean() < 0.05


def test_evaluate_runs_an_int8_model(openvino_models, regression_dir, tmp_path):
    _, _, int8 = openvino_models
    result = run_command("evaluate", "-c", str(int8), "-d", str(regression_dir), "-o", str(tmp_path / "ev"),
                         "--samples", "0", "-q")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ev" / "metrics.json").is_file()


def test_an_int8_model_past_max_drop_is_refused_and_nothing_is_written(openvino_models, tmp_path):
    best, _, _ = openvino_models
    calibration = openvino_models[1].parent / "calibration"
    check = openvino_models[1].parent / "check"
    result = run_command("export", "-c", str(best), "--format", "openvino", "--int8", "--calibration", str(calibration),
                         "--check", str(check), "--max-drop", "1e-9", "-o", str(tmp_path / "m.xml"), "-q")
    assert result.returncode == 2
    assert "int8 model refused" in result.stderr and "--max-drop 1e-09" in result.stderr
    assert "R² vs fp32" in result.stderr  # the figures that decided it are shown
    assert list(tmp_path.iterdir()) == []


def test_int8_usage_errors_are_one_line(trained_regression, tmp_path):
    best = str(trained_regression[1])
    for extra, message in ((["--format", "openvino", "--int8"], "--int8 needs --calibration"),
                           (["--format", "onnx", "--int8", "--calibration", str(tmp_path)], "--int8 needs --format openvino"),
                           (["--format", "openvino", "--check", str(tmp_path)], "go with --int8")):
        result = run_command("export", "-c", best, "-o", str(tmp_path / "m.xml"), *extra)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    result = run_command("export", "-c", best, "--format", "openvino", "-o", str(tmp_path / "m.onnx"))
    assert result.returncode == 2 and "NAME.xml" in result.stderr
    result = run_command("export", "-c", best, "--format", "openvino", "--int8", "--calibration", str(tmp_path / "no"),
                         "-o", str(tmp_path / "m.xml"))
    assert result.returncode == 2 and "--calibration" in result.stderr and "no such folder" in result.stderr


def test_a_small_calibration_folder_without_check_asks_for_one(regression_dir):
    with pytest.raises(UserError, match="give --check DIR"):
        split_images(regression_dir / "images", None)  # 96 images: all of them calibrate, none left


def test_the_check_measures_r2_against_fp32_and_label_agreement():
    reference = np.array([[0.1, 0.5], [0.2, 0.5], [0.3, 0.5], [0.4, 0.5]])
    same = compare(reference, reference.copy(), "regression", ["a", "b"])
    assert same.r2 == [1.0, 1.0] and same.drop == 0.0  # a constant target matched exactly counts as 1
    shifted = compare(reference, reference + [0.05, 0.0], "regression", ["a", "b"])
    assert shifted.r2[0] == pytest.approx(1 - 4 * 0.05**2 / 0.05) and shifted.max_abs[0] == pytest.approx(0.05)
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3]])
    flipped = probabilities.copy()
    flipped[1] = [0.6, 0.4]
    classes = compare(probabilities, flipped, "classification", ["x", "y"])
    assert classes.agreement == 0.75 and classes.drop == pytest.approx(0.25)


def test_without_openvino_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(UserError, match=r"pip install 'perspective\[openvino\]'"):
        require_openvino()


def test_the_server_answers_with_an_int8_model_as_infer_does(openvino_models, regression_dir):
    """In-process (the app's lifespan run by hand): /predict rows equal infer's for the same .xml model."""
    import asyncio

    import httpx

    from perspective.prediction import Predictor
    from perspective.serving import ServeConfig, create_app

    _, _, int8 = openvino_models
    predictor = Predictor(load_model(int8), "cpu")
    assert predictor.precision == "int8"
    app = create_app(predictor, int8, ServeConfig(max_wait_ms=0))
    paths = sorted((regression_dir / "images").iterdir())[:2]

    async def ask():
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            files = [("file", (p.name, p.read_bytes(), "image/png")) for p in paths]
            return await client.post("/predict", files=files), await client.get("/model")

    response, info = asyncio.run(ask())
    assert response.status_code == 200, response.text
    want = list(predictor.predict_paths([str(p) for p in paths], progress=False))
    for item, row in zip(response.json()["predictions"], want, strict=True):
        assert item["scores"]["redness"] == pytest.approx(row["redness"], abs=1e-4)
    assert info.json()["precision"] == "int8" and info.json()["training_metrics"]["epoch"] is None
