"""The shipped model and sample set: what a new user runs first."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, run_script

from perspective.data import list_images
from perspective.models import load_checkpoint, shipped_checkpoint, slim_checkpoint
from perspective.prediction import Predictor

MAIN_SCORES = ["perspective_score_hood", "perspective_score_backdoor_left"]


def r2(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(1 - ((pred - truth) ** 2).sum() / ((truth - truth.mean()) ** 2).sum())


def test_sample_set_has_24_labelled_images():
    labels = pd.read_csv(ROOT / "sample_set" / "labels.csv")
    assert len(labels) == 24 and len(list_images(ROOT / "sample_set")) == 24
    assert all((ROOT / "sample_set" / f).is_file() for f in labels["filename"])


def test_shipped_model_is_small_and_reproduces_sample_set_labels_from_any_folder(tmp_path):
    """What a new user runs first: no -c, any current folder, R² >= 0.8 on the two main scores."""
    assert shipped_checkpoint().stat().st_size < 25 * 2**20
    result = run_script("infer.py", "-d", str(ROOT / "sample_set"), "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(tmp_path / "last_results.csv")
    labels = pd.read_csv(ROOT / "sample_set" / "labels.csv")
    frame["filename"] = frame["path"].map(lambda p: p.rsplit("/", 1)[-1])
    merged = labels.merge(frame, on="filename", suffixes=("", "_pred"))
    assert len(merged) == 24 and frame["error"].isna().all()
    scores = {t: r2(merged[f"{t}_pred"].to_numpy(), merged[t].to_numpy()) for t in MAIN_SCORES}
    assert min(scores.values()) >= 0.8, scores


@pytest.mark.skipif(not torch.cpu._is_avx512_bf16_supported(), reason="this CPU has no native bf16")
def test_bf16_prediction_stays_within_0_02_of_fp32():
    model = load_checkpoint(shipped_checkpoint())
    paths = [str(p) for p in list_images(ROOT / "sample_set")]
    outputs = {}
    for precision in ("32", "bf16"):
        rows = list(Predictor(model, "cpu", precision).predict_paths(paths, batch_size=8, progress=False))
        outputs[precision] = np.array([[r[n] for n in model.names] for r in rows])
    assert np.abs(outputs["bf16"] - outputs["32"]).max() <= 0.02


def test_slim_checkpoint_predicts_like_the_training_checkpoint(trained_regression, regression_dir, tmp_path):
    _, best = trained_regression
    slim = slim_checkpoint(best, tmp_path / "slim.ckpt")
    assert slim.stat().st_size < best.stat().st_size / 2
    paths = [str(p) for p in list_images(regression_dir / "images")][:16]
    full_rows = Predictor(load_checkpoint(best), "cpu", "32").predict_paths(paths, progress=False)
    slim_rows = Predictor(load_checkpoint(slim), "cpu", "32").predict_paths(paths, progress=False)
    for a, b in zip(full_rows, slim_rows, strict=True):
        assert a["redness"] == pytest.approx(b["redness"], abs=5e-3)


def test_the_shipped_model_mirrors_with_its_training_pairs_for_tta():
    """It predates checkpoints that record their flip permutation: the default pairs, as its training had."""
    from perspective.models import load_checkpoint, shipped_checkpoint
    from perspective.prediction import mirror_permutation

    model = load_checkpoint(shipped_checkpoint())
    names = model.names
    permutation = mirror_permutation(model)
    assert names[permutation[names.index("perspective_score_backdoor_left")]] == "perspective_score_backdoor_right"
    assert names[permutation[names.index("perspective_score_hood")]] == "perspective_score_hood"
