"""Grad-CAM per target: one map per regression target (or the predicted class), for a CNN and a ViT."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import torch
from conftest import run_command
from PIL import Image

from perspective.errors import UserError
from perspective.evaluation.explain import Explainer, require_gradcam
from perspective.models import PerspectiveModel


def _model(backbone: str, size: int, task: str = "regression") -> PerspectiveModel:
    from perspective.models.backbones import default_preprocessing

    names = {"target_names": ["hood", "backdoor_left"]} if task == "regression" else {"class_names": ["a", "b", "c"]}
    torch.manual_seed(0)
    return PerspectiveModel(backbone=backbone, task=task, weights="none",
                            preprocessing=default_preprocessing(backbone, size).to_dict(), **names).eval()


@pytest.mark.parametrize(("backbone", "size"), [("resnet18", 64), ("vit_b_16", 224)])
def test_one_map_per_target_for_a_cnn_and_a_vision_transformer(backbone, size):
    explainer = Explainer(_model(backbone, size))
    image = torch.randn(3, size, size)
    outputs, maps, explained = explainer.maps(image)
    assert explained == [0, 1] and outputs.shape == (2,)
    assert maps.shape == (2, size, size)
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert maps.max() > 0  # something raised each output


def test_a_classifier_explains_its_predicted_class():
    explainer = Explainer(_model("resnet18", 64, "classification"))
    outputs, maps, explained = explainer.maps(torch.randn(3, 64, 64))
    assert explained == [int(outputs.argmax())] and maps.shape == (1, 64, 64)


def test_infer_explain_writes_one_png_per_image_with_a_panel_per_target(trained_regression, regression_dir, tmp_path):
    _, best = trained_regression
    images = sorted((regression_dir / "images").iterdir())[:2]
    folder = tmp_path / "why"
    result = run_command("infer", "-i", *map(str, images), "-c", str(best), "-r", str(tmp_path / "r.csv"),
                         "--explain", str(folder), "-q")
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in folder.iterdir())
    assert written == [f"{p.stem}.png" for p in images]
    picture = Image.open(io.BytesIO((folder / written[0]).read_bytes()))
    assert picture.width > picture.height  # two panels side by side
    assert "2 explanations" in result.stdout


def test_explain_errors_are_one_line(trained_regression, regression_dir, tmp_path, monkeypatch):
    _, best = trained_regression
    onnx = tmp_path / "m.onnx"
    assert run_command("export", "-c", str(best), "--format", "onnx", "-o", str(onnx)).returncode == 0
    result = run_command("infer", "-d", str(regression_dir / "images"), "-c", str(onnx), "--explain",
                         str(tmp_path / "why"), "-q", "-r", str(tmp_path / "r.csv"))
    assert result.returncode == 2 and "needs the .ckpt checkpoint" in result.stderr
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)
    with pytest.raises(UserError, match=r"pip install 'perspective\[explain\]'"):
        require_gradcam()


def test_the_server_explains_one_image_as_a_png(trained_regression, regression_dir):
    """In-process (the app's lifespan run by hand): POST /explain answers the PNG infer --explain writes."""
    import asyncio

    import httpx

    from perspective.models import load_checkpoint
    from perspective.prediction import Predictor
    from perspective.serving import ServeConfig, create_app

    _, best = trained_regression
    app = create_app(Predictor(load_checkpoint(best), "cpu"), best, ServeConfig(max_wait_ms=0))
    paths = sorted((regression_dir / "images").iterdir())[:2]

    def upload(p):
        return ("file", (p.name, p.read_bytes(), "image/png"))

    async def ask():
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            one = await client.post("/explain", files=[upload(paths[0])])
            two = await client.post("/explain", files=[upload(p) for p in paths])
            scores = await client.post("/predict", files=[upload(paths[0])])  # /predict is unchanged after it
            return one, two, scores

    one, two, scores = asyncio.run(ask())
    assert one.status_code == 200 and one.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(one.content))
    assert picture.format == "PNG" and picture.width > picture.height
    assert two.status_code == 422 and "one image" in two.text
    assert scores.status_code == 200


def test_the_evaluation_report_has_a_saliency_section(trained_regression, regression_dir, tmp_path):
    _, best = trained_regression
    out = tmp_path / "report"
    result = run_command("evaluate", "-c", str(best), "-d", str(regression_dir), "-o", str(out), "--samples", "0",
                         "--explain-samples", "2", "-q")
    assert result.returncode == 0, result.stderr
    assert (out / "saliency_1.png").is_file() and (out / "saliency_2.png").is_file()
    assert not (out / "saliency_3.png").exists()
    assert "Grad-CAM of that output" in (out / "report.html").read_text()
