"""The fast prediction path: export parity, ONNX through infer.py, streaming, reduced-size JPEG decoding."""

import gc

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_command, run_script
from PIL import Image

from perspective.data import list_images, load_image
from perspective.export import export
from perspective.models import load_checkpoint
from perspective.models.backbones import Preprocessing
from perspective.models.transforms import eval_transform
from perspective.prediction import Predictor
from perspective.prediction.runtimes import OnnxModel


@pytest.fixture(scope="module")
def exported(trained_regression, tmp_path_factory):
    _, best = trained_regression
    out = tmp_path_factory.mktemp("export")
    result = run_script("export.py", "-c", str(best), "--format", "onnx", "-o", str(out / "m.onnx"), "-q")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "max abs difference" in result.stdout
    return best, out / "m.onnx"


def test_onnx_and_torchscript_agree_with_pytorch_within_1e_4(exported, regression_dir, tmp_path):
    best, onnx_path = exported
    model = load_checkpoint(best)
    transform = eval_transform(Preprocessing.from_dict(model.hparams.preprocessing))
    images = torch.stack([transform(load_image(p))
                          for p in list_images(regression_dir / "images")[:6]])
    with torch.inference_mode():
        reference = model.predict_outputs(images).numpy()
    onnx_out = OnnxModel(onnx_path).predict_outputs(images).numpy()
    assert np.abs(onnx_out - reference).max() <= 1e-4
    export(model, tmp_path / "m.pt", "torchscript")
    scripted = torch.jit.load(str(tmp_path / "m.pt"))
    with torch.inference_mode():
        assert np.abs(scripted(images).numpy() - reference).max() <= 1e-4


def test_infer_with_an_onnx_model_writes_the_same_csv(exported, regression_dir, tmp_path):
    best, onnx_path = exported
    args = ["-d", str(regression_dir / "images"), "-q", "--labels", str(regression_dir / "labels.csv")]
    a = run_command("infer", *args, "-c", str(onnx_path), "-r", str(tmp_path / "onnx.csv"))
    b = run_command("infer", *args, "-c", str(best), "--precision", "32", "-r", str(tmp_path / "pt.csv"))
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    onnx_rows, pt_rows = pd.read_csv(tmp_path / "onnx.csv"), pd.read_csv(tmp_path / "pt.csv")
    assert list(onnx_rows.columns) == list(pt_rows.columns)
    assert (onnx_rows["path"] == pt_rows["path"]).all()
    np.testing.assert_allclose(onnx_rows[["redness", "greenness"]], pt_rows[["redness", "greenness"]], atol=1e-4)


def test_a_failed_parity_check_writes_nothing(trained_regression, tmp_path):
    from perspective.errors import UserError

    with pytest.raises(UserError, match="parity check"):
        export(load_checkpoint(trained_regression[1]), tmp_path / "m.onnx", "onnx", tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_prediction_streams_rows_without_keeping_tensors(trained_regression, regression_dir):
    """Rows are plain Python values, and the live tensors do not grow with the number of images."""
    predictor = Predictor(load_checkpoint(trained_regression[1]), "cpu", "32")
    paths = [str(p) for p in list_images(regression_dir / "images")] * 3  # 288 images, batches of 8

    def live_tensors() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))

    rows = predictor.predict_paths(paths, batch_size=8, workers=0, progress=False)
    kept = [next(rows) for _ in range(16)]
    early = live_tensors()
    for i, row in enumerate(rows):
        kept.append(row)
        if i == 200:
            late = live_tensors()
    assert len(kept) == len(paths)
    assert late <= early + 2, f"{late - early} more live tensors after 200 more images"
    assert all(isinstance(v, (str, float, bool)) for row in kept for v in row.values())


def test_reduced_size_jpeg_decoding_keeps_at_least_the_needed_size(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(tmp_path / "a.jpg", quality=90)
    Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.jpg", 224).size == (320, 240)  # 1/2 scale: both sides still >= 224
    assert load_image(tmp_path / "a.jpg", 100).size == (160, 120)  # 1/4 scale
    assert load_image(tmp_path / "a.jpg", 300).size == (640, 480)  # 1/2 would give 240 < 300
    assert load_image(tmp_path / "a.png", 100).size == (640, 480)  # only JPEG decodes at reduced size


def test_the_in_turn_loader_yields_what_a_dataloader_yields(regression_dir, tmp_path):
    """Threads taking turns with the model (the CPU path) and DataLoader processes (the GPU path) agree."""
    from torch.utils.data import DataLoader

    from perspective.data.datasets import ImageFileDataset, InTurnLoader
    from perspective.models.backbones import default_preprocessing
    from perspective.models.transforms import eval_resize

    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    paths = [*list_images(regression_dir / "images")[:9], tmp_path / "broken.jpg", tmp_path / "missing.png"]
    pre = default_preprocessing("resnet18", 32)
    dataset = ImageFileDataset(paths, eval_resize(pre), 32, pre.decode_size)
    expected = list(DataLoader(dataset, batch_size=4, num_workers=2))
    for threads in (0, 3):
        loader = InTurnLoader(dataset, batch_size=4, threads=threads)
        got = list(loader)
        assert len(got) == len(loader) == len(expected) == 3
        for (images, indices, errors), (images_, indices_, errors_) in zip(got, expected):
            assert torch.equal(images, images_) and torch.equal(indices, indices_) and errors == errors_
    assert [bool(e) for e in got[-1][2]] == [False, True, True]
    assert got[-1][0][1:].count_nonzero() == 0  # unreadable images are zeros, flagged by their error


def test_decoding_threads_do_not_change_predictions(trained_regression, regression_dir):
    predictor = Predictor(load_checkpoint(trained_regression[1]), "cpu", "32")
    paths = list_images(regression_dir / "images")[:20]
    alone = list(predictor.predict_paths(paths, batch_size=8, workers=0, progress=False))
    threaded = list(predictor.predict_paths(paths, batch_size=8, workers=2, progress=False))
    assert alone == threaded and len(alone) == 20 and all(row["error"] == "" for row in alone)
